"""Datasets: SynthScapes (generated street-like scenes), Cityscapes layout, image/mask folders.

Every dataset is a sequence of :class:`SegmentationSample` (``len()`` and indexing).
"""

from hmsa_core.data.open import open_dataset
from hmsa_core.data.sample import SegmentationSample

__all__ = ["SegmentationSample", "open_dataset"]
