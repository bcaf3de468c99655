"""Validation during training: the scorer is passed in, never imported from a layer above.

The engine does not score: a *scorer* ``scorer(model, samples, rows)`` returns row name ->
``{"miou", "pixel_accuracy", "per_class_iou"}``. The analysis layer provides the one this
project uses (:func:`analysis.train_validation.validation_scores`, the code that makes the
README's reproduction table) and registers it under the entry-point group
:data:`SCORER_GROUP`, which ``python -m hmsa_core.train`` looks up with :func:`installed_scorer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from hmsa_core.data.sample import SegmentationSample
from hmsa_core.models.base import MultiScaleSegmenter

#: A validation row: (name, cascade, merge method).
ValRow = tuple[str, tuple[float, ...], str]

#: ``scorer(model, samples, rows)`` -> row name -> ``{"miou", "pixel_accuracy", "per_class_iou"}``.
Scorer = Callable[[MultiScaleSegmenter, Sequence[SegmentationSample], Sequence[ValRow]], dict]

#: Entry-point group of validation scorers (the first one by name is used).
SCORER_GROUP = "hmsa_core.validation"


def installed_scorer() -> Scorer | None:
    """Returns the scorer registered under :data:`SCORER_GROUP` (loaded now), or ``None`` when
    no installed package registers one."""
    found = sorted(entry_points(group=SCORER_GROUP), key=lambda ep: ep.name)
    return found[0].load() if found else None
