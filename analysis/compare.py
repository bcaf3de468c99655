"""Comparing merge methods on one image: re-merge an inference result, score it, say what was skipped.

Every method is re-merged from the result's per-scale outputs (no forward pass), so comparing
HMSA with mean, max, single scales and explicit attention costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from analysis.cascades import expand_methods
from analysis.metrics import SegmentationScores, score_prediction
from hmsa_core.cost import CascadeCost
from hmsa_core.images import ImageLike, load_mask
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet
from hmsa_core.merge import ExplicitMerger, parse_method
from hmsa_core.models.base import MultiScaleSegmenter

DEFAULT_METHODS: tuple[str, ...] = ("hierarchical", "mean", "max", "single", "explicit")


def validate_gt(mask: ImageLike, size: tuple[int, int], labels: LabelSet) -> np.ndarray:
    """Returns the ``(H, W)`` int64 ground truth of ``mask`` after checking it fits the image.

    Args:
        mask: anything :func:`hmsa_core.images.load_mask` accepts (path, bytes, PIL image,
            array, tensor) holding class ids.
        size: ``(H, W)`` of the image the mask belongs to.
        labels: the label set the ids must belong to (``0..C-1`` and the ignore index).

    Raises:
        ValueError: unreadable mask, a size other than the image's, or ids outside the set.
    """
    gt = load_mask(mask)
    h, w = int(size[0]), int(size[1])
    if gt.shape != (h, w):
        raise ValueError(
            f"mask is {gt.shape[1]} x {gt.shape[0]} but the image is {w} x {h}; "
            "give the ground truth of this image at its size"
        )
    labels.validate_mask(gt)
    return gt


@dataclass
class MethodComparison:
    """Merge methods applied to one inference result.

    Attributes:
        base: the result the methods were re-merged from.
        results: method -> its re-merged :class:`InferenceResult`, in the requested order.
        scores: method -> :class:`SegmentationScores` against ``gt``; ``None`` without ground truth.
        gt: ``(H, W)`` int64 ground truth, or ``None``.
        skipped: method -> why it could not be merged (e.g. explicit attention on another cascade).
    """

    base: InferenceResult
    results: dict[str, InferenceResult]
    scores: dict[str, SegmentationScores] | None
    gt: np.ndarray | None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def methods(self) -> tuple[str, ...]:
        """Returns the methods that were merged, in order."""
        return tuple(self.results)

    @property
    def labels(self) -> LabelSet:
        """Returns the label set of the predictions."""
        return self.base.labels


def _explicit_skip_reason(result: InferenceResult, model: MultiScaleSegmenter | None) -> str | None:
    """Returns why ``explicit`` cannot merge ``result`` with ``model``, or ``None`` if it can try."""
    if model is None or not isinstance(model, ExplicitMerger):
        name = getattr(model, "arch", None) or result.model_name or "this model"
        return f"explicit attention needs an explicit-attention model; {name} has none"
    train_scales = getattr(model, "train_scales", None)
    if train_scales is not None and tuple(train_scales) != tuple(result.scales):
        trained = ", ".join(f"{s:g}" for s in train_scales)
        got = ", ".join(f"{s:g}" for s in result.scales)
        return f"explicit attention was trained for ({trained}) and cannot run ({got})"
    return None


def compare_methods(
    result: InferenceResult,
    methods: Sequence[str] = DEFAULT_METHODS,
    gt: np.ndarray | None = None,
    model: MultiScaleSegmenter | None = None,
) -> MethodComparison:
    """Returns the :class:`MethodComparison` of re-merging ``result`` with every method.

    ``"single"`` expands to ``"single:<s>"`` for each scale of the result. A method that cannot
    merge this result (explicit attention without an explicit model or on another cascade,
    hierarchical on a model without attention, a single scale not computed) goes to
    ``skipped`` with the reason; no forward pass is run.

    Args:
        result: an inference result of one image.
        methods: merge method names (see :func:`hmsa_core.merge`), ``"single"`` for every scale.
        gt: ``(H, W)`` ground truth (see :func:`validate_gt`); scores are computed when given.
        model: the model, needed only for ``"explicit"``.

    Raises:
        ValueError: no methods, an unknown method name, or ``gt`` of the wrong size or ids.
    """
    expanded = expand_methods(result.scales, [m.strip() for m in methods if m.strip()])
    if not expanded:
        raise ValueError("no merge methods to compare; give e.g. 'hierarchical,mean,max,single'")
    for method in expanded:
        parse_method(method)  # raises ValueError naming an unknown method
    if gt is not None:
        gt = validate_gt(gt, result.size, result.labels)
    results: dict[str, InferenceResult] = {}
    skipped: dict[str, str] = {}
    for method in expanded:
        if method == "explicit":
            reason = _explicit_skip_reason(result, model)
            if reason is not None:
                skipped[method] = reason
                continue
        try:
            results[method] = result.remerge(method, model=model)
        except ValueError as exc:
            skipped[method] = str(exc)
    scores = None
    if gt is not None:
        c = result.labels.num_classes
        scores = {
            m: score_prediction(r.pred, gt, c, result.labels.ignore_index)
            for m, r in results.items()
        }
    return MethodComparison(base=result, results=results, scores=scores, gt=gt, skipped=skipped)


def method_cost(comparison: MethodComparison, method: str) -> CascadeCost:
    """Returns the forward-pass cost a method needs on its own: one scale's for ``single:<s>``,
    the whole cascade's otherwise."""
    cost = comparison.base.cost
    kind, scale = parse_method(method)
    if kind == "single":
        return CascadeCost(tuple(c for c in cost.per_scale if c.scale == scale))
    return cost
