"""Passes above ``max_tile_pixels`` run in overlapping tiles blended smoothly: for the lite
model (bounded receptive field) the tiled pass equals the whole pass when the overlap covers
the receptive field."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hmsa_core
from hmsa_core.inference import run_scales
from hmsa_core.limits import InputLimits, limits_from_env
from hmsa_core.tiling import blend_weights, plan_tiles, round_up


@pytest.fixture(scope="module")
def model():
    return hmsa_core.load_model("hmsa-lite", "cpu")


def receptive_radius(model) -> int:
    """Returns the largest distance (pixels) between an output pixel and an input pixel that
    changes it, measured from the gradient of one centre pixel's outputs."""
    x = torch.zeros(1, 3, 256, 256, requires_grad=True)
    out = model(x)
    (out.logits[0, :, 128, 128].sum() + out.attention[0, 0, 128, 128]).backward()
    ys, xs = torch.nonzero(x.grad.abs().sum((0, 1)) > 0, as_tuple=True)
    return int(max(128 - ys.min(), ys.max() - 128, 128 - xs.min(), xs.max() - 128))


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(32, 700),
    w=st.integers(32, 700),
    budget_side=st.integers(300, 600),
    overlap=st.sampled_from([0, 32, 64, 96]),
)
def test_tiles_cover_the_image_once_within_the_budget(h, w, budget_side, overlap):
    budget = budget_side * budget_side
    windows = plan_tiles((h, w), budget, overlap, align=32)
    owned = torch.zeros((h, w), dtype=torch.int32)
    for win in windows:
        top, bottom, left, right = win.core
        owned[top:bottom, left:right] += 1
        assert win.area <= budget or (len(windows) == 1 and h * w <= budget)
        assert win.box[0] % 32 == 0 and win.box[2] % 32 == 0  # offsets keep the stride grid
    assert bool((owned == 1).all())


@settings(max_examples=15, deadline=None)
@given(h=st.integers(300, 700), w=st.integers(300, 700), overlap=st.sampled_from([32, 64, 96]))
def test_blend_weights_sum_to_one_everywhere(h, w, overlap):
    windows = plan_tiles((h, w), 300 * 300, overlap, align=32)
    total = torch.zeros((h, w))
    for win in windows:
        top, bottom, left, right = win.box
        total[top:bottom, left:right] += blend_weights(win, (h, w), overlap)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_a_budget_too_small_for_the_overlap_says_what_to_raise():
    with pytest.raises(ValueError, match="HMSA_MAX_TILE_PIXELS=10,000 is too small"):
        plan_tiles((512, 512), 10_000, 96)


def test_tile_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HMSA_MAX_TILE_PIXELS", "123456")
    monkeypatch.setenv("HMSA_TILE_OVERLAP", "64")
    limits = limits_from_env()
    assert (limits.max_tile_pixels, limits.tile_overlap) == (123456, 64)


def test_tiled_lite_pass_equals_the_whole_pass_when_the_overlap_covers_its_field(model):
    radius = receptive_radius(model)
    overlap = round_up(2 * radius, 32)
    image = torch.randn((1, 3, 160, 256), generator=torch.Generator().manual_seed(3))
    whole = run_scales(model, image, (1.0, 2.0), precision="fp32", cache=None)
    limits = InputLimits(max_tile_pixels=(128 + 2 * overlap) ** 2, tile_overlap=overlap)
    tiled = run_scales(model, image, (1.0, 2.0), precision="fp32", cache=None, limits=limits)
    for scale in (2.0,):
        size = whole[scale].cost.input_size
        assert len(plan_tiles(size, limits.max_tile_pixels, overlap)) > 1  # really tiled
        for name in ("logits", "attention"):
            a = getattr(whole[scale].output, name)
            b = getattr(tiled[scale].output, name)
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (scale, name, (a - b).abs().max())
        assert tiled[scale].cost.flops > whole[scale].cost.flops  # overlaps are paid for
    # with too little overlap the tiles differ: the test above can fail
    small = InputLimits(max_tile_pixels=(128 + 64) ** 2, tile_overlap=32)
    rough = run_scales(model, image, (2.0,), precision="fp32", cache=None, limits=small)
    assert not torch.allclose(rough[2.0].output.logits, whole[2.0].output.logits, atol=1e-4)


def test_gpu_passes_run_whole_by_default_and_have_their_own_budget(monkeypatch):
    from hmsa_core.tiling import pass_tiles  # what the pass plan decides each pass's tiles by

    limits = InputLimits()
    assert limits.tile_pixels("cpu") == 2_097_152
    assert limits.tile_pixels("cuda") == limits.max_scaled_pixels

    def windows(device: str, size: tuple[int, int], budget: InputLimits):
        return pass_tiles(size, budget, device, 32)

    assert windows("cuda", (2048, 4096), limits) is None  # the 2.0 pass of 1024 x 2048, whole
    assert len(windows("cpu", (2048, 4096), limits)) > 1
    monkeypatch.setenv("HMSA_CUDA_MAX_TILE_PIXELS", "1048576")
    small_gpu = limits_from_env()
    assert small_gpu.tile_pixels("cuda") == 1_048_576
    assert small_gpu.tile_pixels("cpu") == 2_097_152
    assert len(windows("cuda", (2048, 4096), small_gpu)) > 1
