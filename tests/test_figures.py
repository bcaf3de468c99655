"""Every figure builds for every merge method and cascade, with and without ground truth."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import hmsa_core
from analysis.compare import compare_methods
from analysis.figures import (
    ATTENTION_SCALE,
    attention_scales,
    blend,
    cost_figure,
    error_map,
    heatmap_rgb,
    iou_bars_figure,
    method_comparison_figure,
    overlay_figure,
    pareto_figure,
    pareto_front,
    sample_logits,
    scale_grid_figure,
    scale_panels,
    stride_for,
)
from analysis.sweep import REFERENCE_AGREEMENT, SweepRow, SweepTable, subset_rows
from hmsa_core.labels import CITYSCAPES
from hmsa_core.models.base import resize

SIZE = (64, 96)
CASCADES = [(1.0,), (0.5,), (0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0)]
METHODS = ["hierarchical", "mean", "max", "single", "explicit"]


@pytest.fixture(scope="module")
def full(model) -> hmsa_core.InferenceResult:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    return hmsa_core.infer(image, (0.25, 0.5, 1.0, 2.0), model=model, cache=None)


@pytest.fixture(scope="module")
def gt() -> np.ndarray:
    rng = np.random.default_rng(1)
    mask = rng.integers(0, 19, SIZE)
    mask[:4] = 255
    return mask


def _images(fig: go.Figure) -> list[go.Image]:
    return [t for t in fig.data if isinstance(t, go.Image)]


@pytest.mark.parametrize("cascade", CASCADES, ids=lambda c: ",".join(f"{s:g}" for s in c))
@pytest.mark.parametrize("with_gt", [False, True], ids=["no-gt", "gt"])
def test_every_figure_builds_for_every_method_and_cascade(
    full, model, gt, cascade, with_gt
) -> None:
    for method in ["hierarchical", "mean", "max", *(f"single:{s:g}" for s in cascade)]:
        result = full.remerge(method, cascade)
        overlay = overlay_figure(result, opacity=0.4)
        assert len(_images(overlay)) == 1
        hover = next(t for t in overlay.data if isinstance(t, go.Heatmap))
        # merged probability, then per scale its probability and its effective weight
        assert np.asarray(hover.customdata).shape[-1] == 1 + 2 * len(cascade)
        grid = scale_grid_figure(result)
        assert len(_images(grid)) == 2 * len(cascade)
        assert len([t for t in grid.data if isinstance(t, go.Heatmap)]) == 2 * len(cascade)
        assert grid.layout.coloraxis.cmin == 0.0 and grid.layout.coloraxis.cmax == 1.0
    comparison = compare_methods(
        full.remerge("hierarchical", cascade), METHODS, gt=gt if with_gt else None, model=model
    )
    assert "explicit" in comparison.skipped
    fig = method_comparison_figure(comparison)
    n = len(comparison.methods)
    assert len(_images(fig)) == n * (2 if with_gt else 1)
    if with_gt:
        bars = iou_bars_figure(comparison)
        assert len(bars.data) == n
    else:
        with pytest.raises(ValueError, match="ground-truth"):
            iou_bars_figure(comparison)
    cost = cost_figure(comparison.base.cost)
    gflops = sum(t.y[0] for t in cost.data if t.x[0] == "GFLOPs")
    assert gflops == pytest.approx(comparison.base.cost.gflops)


@pytest.mark.parametrize("with_gt", [False, True], ids=["no-gt", "gt"])
def test_pareto_of_every_subset_of_one_image(full, gt, with_gt) -> None:
    table = subset_rows(
        full.remerge("hierarchical", (0.5, 1.0, 2.0)),
        ["hierarchical", "mean", "single"],
        gt=gt if with_gt else None,
    )
    fig = pareto_figure(table)
    assert [t.name for t in fig.data] == ["single", "hierarchical", "mean", "Pareto frontier"]
    points = sum(len(t.x) for t in fig.data if t.name != "Pareto frontier")
    assert points == len(table.rows)
    singles = next(t for t in fig.data if t.name == "single")
    # each one-scale subset once, named "single <s>"; the singles of larger subsets name them
    assert [x for x in singles.text if "(" not in x] == ["single 0.5", "single 1", "single 2"]


def test_explicit_panel_appears_for_an_explicit_model(gt) -> None:
    torch.manual_seed(2)
    model = hmsa_core.build("explicit_lite", 19).eval()
    image = np.random.default_rng(3).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    result = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, method="explicit", cache=None)
    comparison = compare_methods(result, METHODS, gt=gt, model=model)
    assert "explicit" in comparison.methods and "hierarchical" in comparison.skipped
    fig = method_comparison_figure(comparison)
    assert any(name.startswith("explicit") for name in (a.text for a in fig.layout.annotations))
    grid = scale_grid_figure(result)  # no attention: only weights heatmaps
    assert len([t for t in grid.data if isinstance(t, go.Heatmap)]) == 3
    overlay_figure(result)
    iou_bars_figure(comparison)


def test_overlay_legend_lists_exactly_the_predicted_classes(full) -> None:
    fig = overlay_figure(full)
    legend = {t.name for t in fig.data if isinstance(t, go.Scatter)}
    expected = {CITYSCAPES.names[c] for c in np.unique(full.pred.numpy())}
    assert legend == expected


def test_sampled_logits_equal_resizing_then_indexing(full) -> None:
    logits = full.per_scale[0.5].logits
    rows, cols = np.array([0, 7, 31, 63]), np.array([0, 5, 50, 95])
    expected = resize(logits[None], SIZE)[0][:, rows][:, :, cols]
    torch.testing.assert_close(sample_logits(logits, SIZE, (rows, cols)), expected)


def test_large_images_are_strided_under_the_limit() -> None:
    assert stride_for((512, 1024), 1024) == 1
    assert stride_for((1024, 2048), 1024) == 2
    assert stride_for((1000, 3001), 1024) == 3


def test_error_map_and_blend_colours() -> None:
    pred = np.array([[1, 2], [3, 4]])
    truth = np.array([[1, 0], [255, 4]])
    errors = error_map(pred, truth, 255)
    assert tuple(errors[0, 0]) == tuple(errors[1, 1]) != tuple(errors[0, 1])
    assert tuple(errors[1, 0]) not in (tuple(errors[0, 0]), tuple(errors[0, 1]))
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    np.testing.assert_array_equal(blend(rgb, np.full_like(rgb, 200), 0.5), np.full_like(rgb, 100))
    with pytest.raises(ValueError):
        blend(rgb, rgb, 1.5)


def _row(cascade: tuple[float, ...], method: str, miou: float, gflops: float) -> SweepRow:
    return SweepRow(cascade, method, miou, miou, {}, gflops, 0.1)


def test_pareto_front_keeps_only_undominated_rows() -> None:
    rows = [
        _row((0.5,), "single:0.5", 0.50, 1.0),
        _row((1.0,), "single:1", 0.60, 4.0),
        _row((0.5, 1.0), "mean", 0.55, 5.0),  # dominated by single:1
        _row((0.5, 1.0), "hierarchical", 0.70, 5.0),
        _row((2.0,), "single:2", 0.65, 16.0),  # dominated by hierarchical (0.5, 1)
        _row((0.5, 1.0, 2.0), "hierarchical", 0.75, 21.0),
        _row((0.5, 1.0, 2.0), "explicit", math.nan, 21.0),  # n/a
    ]
    front = pareto_front(rows)
    assert [(r.cascade, r.method) for r in front] == [
        ((0.5,), "single:0.5"),
        ((1.0,), "single:1"),
        ((0.5, 1.0), "hierarchical"),
        ((0.5, 1.0, 2.0), "hierarchical"),
    ]
    table = SweepTable(tuple(rows), CITYSCAPES, 3, REFERENCE_AGREEMENT)
    fig = pareto_figure(table)
    assert "agreement" in fig.layout.yaxis.title.text
    frontier = next(t for t in fig.data if t.name == "Pareto frontier")
    assert list(frontier.x) == [1.0, 4.0, 5.0, 21.0]
    with pytest.raises(ValueError):
        pareto_figure(SweepTable((rows[-1],), CITYSCAPES, 1))


def test_heatmap_rgb_uses_one_fixed_colour_scale() -> None:
    import plotly.colors

    ramp = np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]], dtype=np.float32)
    rgb = heatmap_rgb(ramp)
    assert rgb.shape == (1, 6, 3) and rgb.dtype == np.uint8
    ends = plotly.colors.sample_colorscale(ATTENTION_SCALE, [0.0, 1.0])
    first, last = (tuple(round(v) for v in plotly.colors.unlabel_rgb(c)) for c in ends)
    assert tuple(rgb[0, 0]) == first and tuple(rgb[0, 2]) == last
    assert tuple(rgb[0, 3]) == last and tuple(rgb[0, 4]) == first and tuple(rgb[0, 5]) == first
    np.testing.assert_array_equal(heatmap_rgb(torch.tensor([[5.0]]), 0.0, 10.0), rgb[:, 1:2])
    with pytest.raises(ValueError, match="vmax"):
        heatmap_rgb(ramp, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        heatmap_rgb(np.zeros((2, 2, 2)))


def test_scale_panels_give_every_scale_its_images(full) -> None:
    panels = scale_panels(full)
    assert [p.scale for p in panels] == [0.25, 0.5, 1.0, 2.0]
    for p in panels:
        per = full.per_scale[p.scale]
        h, w = per.logits.shape[-2:]
        assert p.prediction.shape == (h, w, 3) and p.prediction.dtype == np.uint8
        np.testing.assert_array_equal(p.prediction, full.labels.colorize(per.logits.argmax(0)))
        assert p.attention is not None and p.attention.shape == (h, w, 3)
        np.testing.assert_array_equal(p.attention, heatmap_rgb(per.attention))
        assert p.weight is not None and p.weight.shape == (*SIZE, 3)
        np.testing.assert_array_equal(p.weight, heatmap_rgb(full.weights[p.scale]))
        assert p.mean_attention == pytest.approx(float(per.attention.mean()))
        assert p.mean_weight == pytest.approx(float(full.weights[p.scale].mean()))
    assert sum(p.mean_weight for p in panels) == pytest.approx(1.0, abs=1e-4)
    assert [p.attention_used for p in panels] == [True, True, True, False]
    assert attention_scales(full.scales) == (0.25, 0.5, 1.0)
    bare_panels = scale_panels(dataclasses.replace(full, weights={}))
    assert all(p.weight is None and p.mean_weight is None for p in bare_panels)
