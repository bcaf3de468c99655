"""Exports both apps offer: indexed mask PNG, per-scale .npz, metrics JSON, cost table rows."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from analysis.compare import compare_methods
from analysis.exports import (
    MIOU_ROW,
    arrays_npz_bytes,
    cost_rows,
    iou_table,
    iou_table_rows,
    mask_png_bytes,
    metrics_json,
)
from tests.tiny_models import noise_result

SIZE = (64, 96)


@pytest.fixture(scope="module")
def result(model) -> hmsa_core.InferenceResult:
    return noise_result(model, SIZE, seed=0)


def test_indexed_png_round_trip_gives_prediction_and_palette(result) -> None:
    img = Image.open(io.BytesIO(mask_png_bytes(result)))
    assert img.format == "PNG" and img.mode == "P"
    np.testing.assert_array_equal(np.asarray(img), result.pred.numpy())
    palette = np.asarray(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
    np.testing.assert_array_equal(palette[:19], np.asarray(result.labels.colors, dtype=np.uint8))
    # the colours a viewer shows are the label set's colours
    np.testing.assert_array_equal(
        np.asarray(img.convert("RGB")), result.labels.colorize(result.pred)
    )


def test_npz_holds_every_scale_and_the_merged_maps(result) -> None:
    data = np.load(io.BytesIO(arrays_npz_bytes(result)))
    np.testing.assert_array_equal(data["scales"], [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(data["pred"], result.pred.numpy())
    assert data["logits"].dtype == np.float16
    np.testing.assert_allclose(data["logits"], result.logits.numpy(), rtol=1e-3, atol=1e-3)
    for scale, key in ((0.5, "0.5"), (1.0, "1"), (2.0, "2")):
        per = result.per_scale[scale]
        np.testing.assert_allclose(data[f"logits_{key}"], per.logits.numpy(), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(data[f"attention_{key}"], per.attention.numpy(), atol=1e-3)
        assert data[f"logits_{key}"].shape == per.logits.shape
        assert data[f"weights_{key}"].shape == SIZE
    total = sum(data[f"weights_{k}"].astype(np.float32) for k in ("0.5", "1", "2"))
    np.testing.assert_allclose(total, 1.0, atol=2e-3)
    assert list(data["class_names"]) == list(result.labels.names)
    assert str(data["method"]) == "hierarchical"
    probs = torch.softmax(result.logits, 0)
    np.testing.assert_allclose(data["top_prob"], probs.max(0).values.numpy(), atol=2e-3)
    assert data["margin"].shape == data["entropy"].shape == SIZE
    assert data["top_prob_0.5"].shape == result.per_scale[0.5].logits.shape[1:]


def test_npz_options_exact_float32_and_without_logits(result) -> None:
    exact = np.load(io.BytesIO(arrays_npz_bytes(result, dtype=np.float32, compress=True)))
    np.testing.assert_array_equal(exact["logits_2"], result.per_scale[2.0].logits.numpy())
    small = np.load(io.BytesIO(arrays_npz_bytes(result, include_logits=False)))
    assert not any(k.startswith("logits") for k in small.files)
    assert {"pred", "attention_1", "weights_1"} <= set(small.files)


def test_metrics_json_per_method_with_and_without_gt(result, model) -> None:
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 19, SIZE)
    comparison = compare_methods(result, ["hierarchical", "single", "explicit"], gt=gt, model=model)
    data = json.loads(metrics_json(comparison))
    assert set(data["methods"]) == {"hierarchical", "single:0.5", "single:1", "single:2"}
    assert "explicit" in data["skipped"]
    hier = data["methods"]["hierarchical"]
    assert hier["miou"] == pytest.approx(comparison.scores["hierarchical"].miou)
    assert set(hier["per_class_iou"]) <= set(result.labels.names)
    assert hier["gflops"] == pytest.approx(result.cost.gflops)
    assert data["methods"]["single:2"]["gflops"] == pytest.approx(result.per_scale[2.0].cost.gflops)
    plain = json.loads(metrics_json(compare_methods(result, ["mean"])))
    assert "miou" not in plain["methods"]["mean"] and plain["reference"] is None


def test_cost_rows_one_per_scale_marking_cached(model) -> None:
    image = np.full((*SIZE, 3), 120, dtype=np.uint8)
    cache = hmsa_core.api.ByteLRUCache(64 * 2**20)
    hmsa_core.infer(image, (1.0,), model=model, cache=cache)
    result = hmsa_core.infer(image, (0.5, 1.0), model=model, cache=cache)
    rows = cost_rows(result.cost)
    assert [r["scale"] for r in rows] == [0.5, 1.0]
    assert [r["source"] for r in rows] == ["computed", "cached"]
    assert rows[0]["input size"] == "48 x 32"
    assert rows[1]["GFLOPs"] == pytest.approx(result.per_scale[1.0].cost.gflops, rel=1e-3)
    assert all(r["peak MB"] > 0 for r in rows)
    with_total = cost_rows(result.cost, total=True)
    assert with_total[-1]["scale"] == "total" and len(with_total) == 3


def test_iou_table_rows_hold_every_present_class_then_miou(result, model) -> None:
    gt = np.zeros(SIZE, dtype=np.int64)
    gt[:, SIZE[1] // 2 :] = 18  # two ground-truth classes; the predictions add others
    gt[:4] = 255
    comparison = compare_methods(result, ["hierarchical", "mean", "single"], gt=gt, model=model)
    rows = iou_table_rows(comparison)
    methods = list(comparison.methods)
    present = np.zeros(19, dtype=bool)
    for scores in comparison.scores.values():
        present |= scores.present
    assert [r.class_id for r in rows[:-1]] == list(np.flatnonzero(present))
    assert {0, 18} <= {r.class_id for r in rows[:-1]}
    assert rows[-1].name == MIOU_ROW and rows[-1].is_mean and not rows[0].is_mean
    for row in rows:
        assert list(row.values) == methods
    for method in methods:
        scores = comparison.scores[method]
        assert rows[-1].values[method] == pytest.approx(scores.miou)
        for row in rows[:-1]:
            expected = scores.iou[row.class_id] if scores.present[row.class_id] else None
            assert row.values[method] == (
                None if expected is None else pytest.approx(float(expected))
            )
            assert row.name == result.labels.names[row.class_id]

    headers, table = iou_table(comparison, percent=True, digits=2)
    assert headers == ["class", *methods] and len(table) == len(rows)
    assert table[-1][0] == MIOU_ROW
    assert table[-1][1] == round(100 * comparison.scores["hierarchical"].miou, 2)
    fractions = iou_table(comparison)[1]
    assert fractions[-1][1] == round(comparison.scores["hierarchical"].miou, 4)
    assert iou_table_rows(compare_methods(result, ["mean"])) == []
    assert iou_table(compare_methods(result, ["mean"])) == ([], [])
