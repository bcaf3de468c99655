"""Figure builders for ``InferenceResult.figure(kind)``, registered as ``hmsa_core.figures``
entry points in ``pyproject.toml`` (so ``hmsa_core`` finds them without importing ``analysis``).

Each builder takes the result and keyword options and returns the plotly figure that
:mod:`analysis.figures` draws for it: the same figures the explorer shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from analysis.compare import DEFAULT_METHODS, compare_methods
from analysis.figures import (
    cost_figure,
    iou_bars_figure,
    method_comparison_figure,
    overlay_figure,
    pareto_figure,
    scale_grid_figure,
)
from hmsa_core.images import ImageLike
from hmsa_core.inference import InferenceResult
from hmsa_core.models.base import MultiScaleSegmenter


def overlay(result: InferenceResult, opacity: float = 0.5) -> go.Figure:
    """Returns the input with the prediction blended in (hover shows each class's probability)."""
    return overlay_figure(result, opacity)


def scales(result: InferenceResult) -> go.Figure:
    """Returns the per-scale grid: input, prediction, attention and effective weight per scale."""
    return scale_grid_figure(result)


def methods(
    result: InferenceResult,
    gt: ImageLike | None = None,
    model: MultiScaleSegmenter | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
) -> go.Figure:
    """Returns one panel per merge method re-merged from ``result`` (error maps with ``gt``, a
    class-id mask of the image; ``model`` is needed only for ``"explicit"``)."""
    return method_comparison_figure(compare_methods(result, methods, gt, model))


def iou(
    result: InferenceResult,
    gt: ImageLike | None = None,
    model: MultiScaleSegmenter | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
) -> go.Figure:
    """Returns per-class IoU bars of every merge method against ``gt`` (required: a class-id
    mask of the image, path or array)."""
    if gt is None:
        raise ValueError("the 'iou' figure needs ground truth: result.figure('iou', gt=mask_path)")
    return iou_bars_figure(compare_methods(result, methods, gt, model))


def cost(result: InferenceResult) -> go.Figure:
    """Returns the cascade's GFLOPs and seconds per scale as stacked bars."""
    return cost_figure(result.cost)


def pareto(
    result: InferenceResult,
    gt: ImageLike | None = None,
    model: MultiScaleSegmenter | None = None,
    methods: Sequence[str] = ("hierarchical", "mean", "max"),
) -> go.Figure:
    """Returns accuracy against GFLOPs over every subset of the cascade x ``methods`` (scored
    against ``gt`` when given, else agreement with the full cascade)."""
    from analysis.compare import validate_gt
    from analysis.sweep import subset_rows

    target = None if gt is None else validate_gt(gt, result.size, result.labels)
    return pareto_figure(subset_rows(result, methods, target, model))
