"""The validation scorer of training runs (passed to :func:`hmsa_core.train.train`).

Scoring is :func:`analysis.sweep.sweep` (one forward pass per scale per image, every row merged
from the same outputs), the same code that produces the README's reproduction table, so the
numbers stored in a checkpoint's metadata and the ones in the table are computed alike.
Registered as the ``hmsa_core.validation`` entry point, which ``python -m hmsa_core.train`` uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.sweep import sweep
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.train.evaluate import ValRow


def validation_scores(
    model: MultiScaleSegmenter, samples: Sequence[SegmentationSample], rows: Sequence[ValRow]
) -> dict[str, dict]:
    """Returns row name -> ``{"miou", "pixel_accuracy", "per_class_iou"}`` over ``samples``.

    Runs in this process alone, even inside a DDP process group (rank 0 validates).
    """
    cascades = list(dict.fromkeys(tuple(sorted(c)) for _, c, _ in rows))
    methods = list(dict.fromkeys(m for _, _, m in rows))
    table = sweep(model, samples, cascades, methods, progress=False, shard=False)
    return {name: table.row(cascade, method).scores_dict() for name, cascade, method in rows}
