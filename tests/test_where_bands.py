"""The where-analysis fast path (:mod:`analysis.where_bands`): row-band merges give exactly the
labels, top probabilities, weights and whole report of the plain full-size re-merge path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import hmsa_core
from analysis.calibration import top_probability
from analysis.where_bands import band_maps, exact_row_step, resize_rows
from analysis.where_scales import analyse_outputs, analyse_where
from hmsa_core.data.synthscapes import generate_scene
from hmsa_core.labels import generic_label_set
from hmsa_core.merge import merge
from hmsa_core.models.base import ScaleOutput, resize

METHODS = (
    "hierarchical", "mean", "max", "single:0.5", "single:1", "single:2", "mean@0.5,1",
    "max@1,2", "hierarchical@0.5,1",
)  # fmt: skip


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize(("h", "out_h"), [(10, 40), (20, 40), (30, 40), (60, 40), (80, 40)])
def test_a_band_of_rows_is_bit_identical_to_the_full_resize(h: int, out_h: int) -> None:
    x = torch.randn(3, h, 2 * h, generator=torch.Generator().manual_seed(h))
    size = (out_h, 70 if h != 80 else 40)
    full = resize(x[None], size)[0]
    step = exact_row_step(h, out_h)
    assert step is not None
    rows = 4 * step
    for y0 in range(0, out_h, rows):
        y1 = min(out_h, y0 + rows)
        assert torch.equal(resize_rows(x, size, y0, y1, step), full[:, y0:y1]), (h, y0)


def test_a_ratio_that_would_round_differently_is_not_banded() -> None:
    assert exact_row_step(20, 41) is None
    assert exact_row_step(20, 40) == 2


def _scene(size: tuple[int, int], model: hmsa_core.MultiScaleSegmenter, flip: bool = False):
    scene = generate_scene(3, size=size, split="val")
    result = hmsa_core.infer(scene.image, (0.5, 1.0, 2.0), model=model, cache=None, flip=flip)
    return scene, result


@pytest.mark.parametrize("size", [(64, 128), (45, 67)])  # exact bands; 0.5 resized in full
def test_band_maps_give_the_labels_and_top_probability_of_the_full_merges(
    model: hmsa_core.MultiScaleSegmenter, size: tuple[int, int]
) -> None:
    _, result = _scene(size, model)
    outputs = {s: r.output.logits[0] for s, r in result.per_scale.items()}
    methods = {
        "mean": ("mean", (0.5, 1.0, 2.0)), "max": ("max", (0.5, 1.0, 2.0)),
        "single:0.5": ("single:0.5", (0.5,)), "single:2": ("single:2", (2.0,)),
        "mean@1,2": ("mean", (1.0, 2.0)),
    }  # fmt: skip
    maps = band_maps(outputs, methods, result.size, 2, band_rows=8)
    own = band_maps(outputs, {"own": ("own", (0.5, 1.0, 2.0))}, result.size, 2, own=result.logits)
    pred, prob = top_probability(result.logits, 2)
    assert np.array_equal(own["own"].pred, pred.numpy())
    assert np.array_equal(own["own"].top_prob, prob.numpy())
    for name, (kind, cascade) in methods.items():
        merged = merge({s: result.per_scale[s] for s in cascade}, kind, output_size=result.size)
        pred, prob = top_probability(merged.logits[0], 2)
        assert np.array_equal(maps[name].pred, pred.numpy()), name
        assert np.array_equal(maps[name].top_prob, prob.numpy()), name
        if kind == "max":
            assert maps[name].weights.keys() == merged.weights.keys()
            for s, w in merged.weights.items():
                assert torch.equal(maps[name].weights[s], w), s


@pytest.mark.parametrize(
    ("size", "flip"), [((64, 128), False), ((45, 67), False), ((40, 64), True)]
)
def test_the_fast_report_equals_the_plain_remerge_report(
    model: hmsa_core.MultiScaleSegmenter, size: tuple[int, int], flip: bool
) -> None:
    scene, result = _scene(size, model, flip)
    kw = {"instances": scene.instances, "distances": scene.object_distance, "methods": METHODS}
    fast = analyse_where(result, scene.mask, **kw)  # type: ignore[arg-type]
    plain = analyse_where(result, scene.mask, fast=False, **kw)  # type: ignore[arg-type]
    assert fast.methods == METHODS
    assert _same(fast.to_dict(), plain.to_dict())
    assert fast.notes == plain.notes


def test_max_ties_go_to_the_first_scale_in_both_paths() -> None:
    """Three scales with equal logits inside every region: max takes the smallest scale's
    there, and the fast report (with its weights) equals the plain one."""
    labels = generic_label_set(3)
    mask = np.zeros((24, 40), np.int64)
    mask[4:12, 6:30] = 1
    mask[15:20, 2:8] = 2
    logits = torch.from_numpy(5.0 * np.eye(3, dtype=np.float32)[mask].transpose(2, 0, 1))[None]
    attention = torch.full((1, 1, 24, 40), 0.5)
    per_scale = {
        1.0: ScaleOutput(logits, attention),
        1.5: ScaleOutput(resize(logits, (36, 60)), torch.full((1, 1, 36, 60), 0.5)),
        2.0: ScaleOutput(resize(logits, (48, 80)), torch.full((1, 1, 48, 80), 0.5)),
    }
    fast = analyse_outputs(per_scale, mask.shape, mask, labels)  # type: ignore[arg-type]
    plain = analyse_outputs(per_scale, mask.shape, mask, labels, fast=False)  # type: ignore[arg-type]
    assert _same(fast.to_dict(), plain.to_dict())
    assert fast.size.by_size.mean_weight("max")[2, 0] > 0.9  # the first scale wins ties
