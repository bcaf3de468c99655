"""The one form every dataset yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SegmentationSample:
    """One labelled image.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` int64 class ids (trainIds), 255 = ignore; ``None`` when unlabelled.
        name: a stable identifier (file stem or ``synthscapes/<split>/<index>``).
        instances: ``(H, W)`` int32 instance ids (0 = no instance) where the data has them
            (SynthScapes, Cityscapes ``*_instanceIds.png``), else ``None``.
        object_distance: instance id -> camera distance in metres (SynthScapes), else ``None``.
    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
    instances: np.ndarray | None = None
    object_distance: dict[int, float] | None = None
