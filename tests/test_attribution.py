"""captum attributions: input-shaped, finite, and specific to the chosen class and target."""

from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import hmsa_core
from analysis.attribution import (
    attention_scales,
    attribute,
    attribution_figure,
    default_layer,
)
from hmsa_core.models.base import rescale_input

SIZE = (64, 96)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (8, 12, 3)), np.ones((8, 8, 1)))
    noise = rng.integers(-20, 20, (*SIZE, 3))
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def _two_predicted_classes(model, image, scale: float) -> tuple[int, int]:
    """Returns the two classes the scale predicts most often (so both select pixels)."""
    x = model.normalize(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    with torch.no_grad():
        pred = model(rescale_input(x, scale)).logits.argmax(1)
    counts = torch.bincount(pred.ravel(), minlength=19)
    top = torch.argsort(counts, descending=True)
    assert counts[top[1]] > 0, "the random model predicts a single class; change the seed"
    return int(top[0]), int(top[1])


@pytest.mark.parametrize("method", ["integrated_gradients", "grad_cam"])
@pytest.mark.parametrize("target", ["logits", "attention"])
def test_maps_match_input_are_finite_and_depend_on_class(model, image, method, target) -> None:
    scale = 1.0
    a, b = _two_predicted_classes(model, image, scale)
    seen: list[float] = []
    first = attribute(
        model, image, scale=scale, target_class=a, target=target, method=method, steps=4,
        progress=seen.append,
    )  # fmt: skip
    second = attribute(
        model, image, scale=scale, target_class=b, target=target, method=method, steps=4
    )
    for attr in (first, second):
        assert attr.map.shape == SIZE and attr.map.dtype == np.float32
        assert np.isfinite(attr.map).all()
        assert attr.input_rgb.shape == (*SIZE, 3)
        assert attr.class_pixels > 0
    assert np.abs(first.map).max() > 0
    assert not np.allclose(first.map, second.map)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    if method == "grad_cam":
        assert first.layer == "trunk.fuse" and (first.map >= 0).all()


def test_integrated_gradients_satisfy_completeness(model, image) -> None:
    """Attributions sum to f(input) - f(baseline) (approximately, with enough steps)."""
    attr = attribute(model, image, scale=0.5, target_class=3, steps=64, region=(10, 5, 60, 40))
    x = model.normalize(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)

    def target_sum(inp: torch.Tensor) -> float:
        with torch.no_grad():
            logits = torch.nn.functional.interpolate(
                model(rescale_input(inp, 0.5)).logits,
                size=SIZE,
                mode="bilinear",
                align_corners=False,
            )
        with torch.no_grad():
            pred = torch.nn.functional.interpolate(
                model(rescale_input(x, 0.5)).logits, size=SIZE, mode="bilinear", align_corners=False
            ).argmax(1)[0]
        sel = torch.zeros(SIZE, dtype=torch.bool)
        sel[5:40, 10:60] = True
        if (sel & (pred == 3)).any():
            sel &= pred == 3
        return float(logits[0, 3][sel].sum())

    delta = target_sum(x) - target_sum(torch.zeros_like(x))
    assert float(attr.map.sum()) == pytest.approx(delta, rel=0.1, abs=1e-3)


def test_large_inputs_are_worked_on_downsized_and_mapped_back(model) -> None:
    image = np.random.default_rng(1).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    attr = attribute(
        model,
        image,
        scale=1.0,
        target_class=0,
        method="grad_cam",
        max_side=64,
        region=(0, 0, 128, 64),
    )
    assert attr.working_size == (32, 64)
    assert attr.map.shape == (128, 256) and attr.input_rgb.shape == (128, 256, 3)
    assert np.array_equal(attr.input_rgb, image)
    assert attr.region == (0, 0, 128, 64)  # in the input's pixels, like the map


@pytest.mark.parametrize("method", ["grad_cam", "integrated_gradients"])
def test_map_of_a_512_by_1024_image_has_the_input_shape(model, method) -> None:
    """The spec: an attribution has the input's shape, whatever size the work ran at."""
    rng = np.random.default_rng(2)
    coarse = rng.integers(0, 256, (16, 32, 3)).astype(np.uint8)
    image = np.kron(coarse, np.ones((32, 32, 1), dtype=np.uint8))
    start = time.perf_counter()
    attr = attribute(model, image, scale=0.5, target_class=1, method=method, steps=2)
    seconds = time.perf_counter() - start
    print(f"\n{method} on 512 x 1024 (worked at {attr.working_size}): {seconds:.2f} s")
    assert attr.working_size == (256, 512)
    assert attr.map.shape == (512, 1024) and attr.map.dtype == np.float32
    assert attr.input_rgb.shape == (512, 1024, 3)
    assert np.isfinite(attr.map).all() and np.abs(attr.map).max() > 0
    assert attr.region == (0, 0, 1024, 512)
    fig = attribution_figure(attr)
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    assert heat.dx * np.asarray(heat.z).shape[1] >= 1024  # drawn over the whole input


def test_attention_scales_leave_out_the_largest() -> None:
    assert attention_scales((2.0, 0.5, 1.0)) == (0.5, 1.0)
    assert attention_scales((1.0,)) == ()
    assert attention_scales(()) == ()


def test_bad_arguments_raise_value_error(model, image) -> None:
    with pytest.raises(ValueError, match="target_class"):
        attribute(model, image, scale=1.0, target_class=19)
    with pytest.raises(ValueError, match="target must be"):
        attribute(model, image, scale=1.0, target_class=0, target="features")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method must be"):
        attribute(model, image, scale=1.0, target_class=0, method="saliency")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="region"):
        attribute(model, image, scale=1.0, target_class=0, region=(50, 50, 10, 10))
    with pytest.raises(ValueError, match="minimum side"):
        attribute(model, image, scale=0.05, target_class=0)
    with pytest.raises(ValueError, match="no layer named"):
        attribute(model, image, scale=1.0, target_class=0, method="grad_cam", layer="nope")
    explicit = hmsa_core.build("explicit_lite", 19).eval()
    with pytest.raises(ValueError, match="attention"):
        attribute(explicit, image, scale=1.0, target_class=0, target="attention")


def test_default_layer_falls_back_to_last_conv(model) -> None:
    assert default_layer(model)[0] == "trunk.fuse"

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3)
            self.b = torch.nn.Conv2d(4, 2, 1)

    assert default_layer(Plain())[0] == "b"


def test_figure_overlays_the_map_on_the_input(model, image) -> None:
    attr = attribute(model, image, scale=1.0, target_class=2, steps=2, region=(10, 10, 50, 40))
    fig = attribution_figure(attr, "building")
    assert sum(isinstance(t, go.Image) for t in fig.data) == 2
    heat = next(t for t in fig.data if isinstance(t, go.Heatmap))
    assert np.asarray(heat.z).shape == SIZE
    assert len(fig.layout.shapes) == 1  # the region outline
