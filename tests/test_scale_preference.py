"""Per-class scale preference: mean effective weight of each scale over each class's pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import hmsa_core
from analysis.scale_stats import (
    ScalePreference,
    accumulate,
    dataset_scale_preference,
    main,
    scale_preference,
    scale_preference_figure,
)
from hmsa_core.checkpoints.native import save_native
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.labels import CITYSCAPES
from tests.tiny_models import noise_result

SIZE = (32, 48)


@pytest.fixture(scope="module")
def result(model) -> hmsa_core.InferenceResult:
    return noise_result(model, SIZE, seed=0)


def test_rows_sum_to_one_per_class(result) -> None:
    gt = np.random.default_rng(1).integers(0, 19, SIZE)
    gt[0] = 255
    for mask in (None, gt):
        pref = scale_preference(result, mask)
        assert pref.weights.shape == (len(pref.class_ids), 3)
        np.testing.assert_allclose(pref.weights.sum(1), 1.0, atol=1e-5)
        assert pref.pixels.sum() == (SIZE[0] * SIZE[1] if mask is None else (gt != 255).sum())
    assert scale_preference(result, gt).source == "ground truth"


def test_hand_checkable_weights(result) -> None:
    """Left half road decided by scale 0.5, right half pole split 0.25/0.75 between 1 and 2."""
    h, w = result.size
    left = np.zeros(result.size, dtype=np.float32)
    left[:, : w // 2] = 1.0
    weights = {
        0.5: torch.from_numpy(left),
        1.0: torch.from_numpy((1 - left) * 0.25),
        2.0: torch.from_numpy((1 - left) * 0.75),
    }
    mask = np.where(left > 0, 0, 5)  # road left, pole right
    mask[0, 0] = 255
    pref = scale_preference(dataclasses.replace(result, weights=weights), mask)
    assert pref.class_names == ("road", "pole")
    np.testing.assert_allclose(pref.weights, [[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])
    assert list(pref.pixels) == [h * (w // 2) - 1, h * (w - w // 2)]
    np.testing.assert_allclose(pref.preferred_scale, [0.5, 2 ** (0.75)])
    table = pref.to_markdown()
    assert table.index("| pole |") < table.index("| road |")  # high-scale leaning first
    assert "| 25.0 | 75.0 |" in table


def test_accumulate_is_pixel_weighted() -> None:
    a = ScalePreference((0.5, 1.0), (0,), ("road",), np.array([[1.0, 0.0]]), np.array([30]))
    b = ScalePreference(
        (0.5, 1.0), (0, 5), ("road", "pole"), np.array([[0.0, 1.0], [0.2, 0.8]]), np.array([10, 4])
    )
    both = accumulate([a, b], CITYSCAPES)
    assert both.class_ids == (0, 5) and both.num_images == 2
    np.testing.assert_allclose(both.weights, [[0.75, 0.25], [0.2, 0.8]])
    np.testing.assert_array_equal(both.pixels, [40, 4])
    c = ScalePreference((0.5, 2.0), (0,), ("road",), np.array([[1.0, 0.0]]), np.array([1]))
    with pytest.raises(ValueError):
        accumulate([a, c], CITYSCAPES)
    with pytest.raises(ValueError):
        accumulate([], CITYSCAPES)


def test_dataset_preference_equals_accumulated_images(model) -> None:
    rng = np.random.default_rng(2)
    samples = [
        SegmentationSample(
            rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8), rng.integers(0, 19, SIZE), f"s{i}"
        )
        for i in range(3)
    ]
    pref = dataset_scale_preference(model, samples, (0.5, 1.0), max_images=2)
    singles = [
        scale_preference(hmsa_core.infer(s.image, (0.5, 1.0), model=model, cache=None), s.mask)
        for s in samples[:2]
    ]
    expected = accumulate(singles, model.labels)
    assert pref.num_images == 2 and pref.class_ids == expected.class_ids
    np.testing.assert_allclose(pref.weights, expected.weights, atol=1e-6)
    np.testing.assert_allclose(pref.weights.sum(1), 1.0, atol=1e-5)
    unlabelled = [SegmentationSample(samples[0].image, None, "u")]
    with pytest.raises(ValueError, match="no labelled image"):
        dataset_scale_preference(model, unlabelled, (0.5, 1.0))
    assert (
        dataset_scale_preference(model, unlabelled, (0.5, 1.0), use_ground_truth=False).source
        == "prediction"
    )


def test_bad_mask_is_refused(result) -> None:
    with pytest.raises(ValueError, match="mask is"):
        scale_preference(result, np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="outside"):
        scale_preference(result, np.full(SIZE, 77))


def test_heatmap_has_one_row_per_class(result) -> None:
    pref = scale_preference(result)
    fig = scale_preference_figure(pref)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert np.asarray(heat.z).shape == (len(pref.class_ids), 3)
    assert set(heat.y) == set(pref.class_names)


def test_command_line_prints_the_table(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    path = save_native(hmsa_core.build("lite", 19), tmp_path / "lite.safetensors")
    code = main(["--data", "synthscapes:val:1", "--scales", "0.5,1", "--model", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| class | pixels | w@0.5 (%) | w@1 (%) | preferred scale |" in out
    assert "| road |" in out
    assert main(["--data", "nowhere:at:all", "--model", str(path)]) == 2
