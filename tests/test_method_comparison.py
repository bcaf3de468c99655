"""Comparing merge methods on one result: expansion, skipping with reasons, scores, gt checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from analysis.compare import compare_methods, method_cost, validate_gt
from analysis.metrics import score_prediction

SIZE = (64, 96)


@pytest.fixture(scope="module")
def explicit() -> hmsa_core.MultiScaleSegmenter:
    torch.manual_seed(1)
    return hmsa_core.build("explicit_lite", 19).eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def result(model, image) -> hmsa_core.InferenceResult:
    return hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, cache=None)


def test_single_expands_to_every_scale_and_matches_direct_merges(result, model) -> None:
    comparison = compare_methods(result, ["hierarchical", "mean", "single"], model=model)
    assert comparison.methods == ("hierarchical", "mean", "single:0.5", "single:1", "single:2")
    assert comparison.scores is None and comparison.gt is None
    for method, merged in comparison.results.items():
        direct = hmsa_core.merge(result.per_scale, method, output_size=result.size, model=model)
        assert torch.equal(merged.pred, direct.logits[0].argmax(0)), method


def test_explicit_is_skipped_with_a_reason_for_an_hmsa_model(result, model) -> None:
    comparison = compare_methods(result, ["hierarchical", "explicit"], model=model)
    assert comparison.methods == ("hierarchical",)
    assert "explicit" in comparison.skipped
    assert "explicit-attention model" in comparison.skipped["explicit"]


def test_explicit_runs_on_its_training_cascade_and_is_skipped_on_others(explicit, image) -> None:
    full = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=explicit, method="mean", cache=None)
    comparison = compare_methods(full, ["explicit", "hierarchical", "max"], model=explicit)
    assert comparison.methods == ("explicit", "max")
    assert "attention" in comparison.skipped["hierarchical"]  # no attention head to chain
    pair = full.remerge("mean", (0.5, 1.0))
    skipped = compare_methods(pair, ["explicit", "mean"], model=explicit).skipped
    assert "trained for (0.5, 1, 2)" in skipped["explicit"]


def test_scores_equal_scoring_each_prediction(result, model) -> None:
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 19, SIZE)
    gt[:5] = 255
    comparison = compare_methods(result, ["hierarchical", "max"], gt=gt, model=model)
    assert comparison.scores is not None
    for method in comparison.methods:
        expected = score_prediction(comparison.results[method].pred, gt, 19)
        np.testing.assert_array_equal(comparison.scores[method].iou, expected.iou)
    assert comparison.gt is not None and comparison.gt.dtype == np.int64


def test_unknown_method_and_empty_list_raise(result) -> None:
    with pytest.raises(ValueError, match="unknown merge method"):
        compare_methods(result, ["hierarchical", "median"])
    with pytest.raises(ValueError, match="no merge methods"):
        compare_methods(result, [])


def test_single_method_cost_is_that_scale_alone(result) -> None:
    comparison = compare_methods(result, ["single", "mean"])
    assert method_cost(comparison, "single:2").flops == result.per_scale[2.0].cost.flops
    assert method_cost(comparison, "mean").flops == result.cost.flops


def test_validate_gt_reads_png_bytes_and_rejects_bad_masks(result) -> None:
    mask = np.zeros(SIZE, dtype=np.uint8)
    mask[10:20, 30:40] = 13
    mask[0] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buffer, format="PNG")
    gt = validate_gt(buffer.getvalue(), result.size, result.labels)
    np.testing.assert_array_equal(gt, mask.astype(np.int64))
    with pytest.raises(ValueError, match="mask is 48 x 32 but the image is 96 x 64"):
        validate_gt(np.zeros((32, 48), dtype=np.uint8), result.size, result.labels)
    bad = mask.copy()
    bad[5, 5] = 40
    with pytest.raises(ValueError, match="40"):
        validate_gt(bad, result.size, result.labels)
    with pytest.raises(ValueError, match="mask is"):
        compare_methods(result, ["mean"], gt=np.zeros((10, 10), dtype=np.int64))
