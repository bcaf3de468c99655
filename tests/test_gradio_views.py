"""The Gradio views' reshaping of results: per-scale gallery and mask preview (no server)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gradio")

import hmsa_core
from app.gradio_parts.views import mask_rgb, scale_gallery
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import CITYSCAPES


@pytest.fixture(scope="module")
def result() -> InferenceResult:
    """Returns an untrained lite model's (0.5, 1) result on a small random image."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = hmsa_core.build("lite", num_classes=19).eval()
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return hmsa_core.infer(rgb, (0.5, 1.0), model=model, cache=None)


def test_gallery_shows_prediction_attention_and_weight_per_scale_highest_first(
    result: InferenceResult,
) -> None:
    items = scale_gallery(result)
    captions = [caption for _, caption in items]
    assert [c.split(" (")[0] for c in captions] == [
        "1x prediction", "1x attention", "1x weight",
        "0.5x prediction", "0.5x attention", "0.5x weight",
    ]  # fmt: skip
    assert "unused by HMSA" in captions[1] and "unused" not in captions[4]
    shapes = [image.shape for image, _ in items]
    assert shapes == [(32, 48, 3)] * 3 + [(16, 24, 3), (16, 24, 3), (32, 48, 3)]
    assert all(image.dtype == np.uint8 for image, _ in items)
    shares = [float(result.weights[s].mean()) for s in (1.0, 0.5)]
    assert captions[2].endswith(f"({shares[0]:.0%} of merge)")
    assert captions[5].endswith(f"({shares[1]:.0%} of merge)")


def test_mask_preview_colours_ids_and_fits_the_side() -> None:
    ids = np.zeros((300, 1000), dtype=np.int64)
    ids[:, 500:] = 10
    ids[0, 0] = 255
    rgb = mask_rgb(ids, CITYSCAPES, 256)
    assert rgb.dtype == np.uint8 and rgb.shape == (75, 250, 3)
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # ignore is black
    assert tuple(rgb[10, 10]) == CITYSCAPES.colors[0]
    assert tuple(rgb[10, 200]) == CITYSCAPES.colors[10]


def test_the_run_progress_moves_by_each_pass_share_of_the_planned_flops():
    from app.common import planned_passes
    from app.gradio_parts.handlers import scale_progress

    model = hmsa_core.load_model("hmsa-lite")
    cascade = (0.5, 1.0, 2.0)
    passes = planned_passes(model, (64, 128), cascade, hmsa_core.InferOptions(flip=True))
    shown: list[tuple[float, str]] = []
    report = scale_progress(lambda value, desc: shown.append((value, desc)), passes)
    result = hmsa_core.infer(
        np.zeros((64, 128, 3), np.uint8), cascade, model=model, flip=True, cache=None,
        progress=report,
    )  # fmt: skip
    gflops = [g for _, g in passes]
    total = sum(gflops)
    assert len(shown) == len(result.cost.per_scale) == 6  # each scale and its mirrored pass
    assert [v for v, _ in shown] == pytest.approx([sum(gflops[: i + 1]) / total for i in range(6)])
    assert shown[3][0] < 0.5 < 4 / 6  # after 4 of 6 passes, the two 2.0 passes are left
    assert shown[5] == (pytest.approx(1.0), "scale 2 computed (pass 6/6)")
