"""`hmsa_core.infer`: every accepted input form, the per-scale cache, costs and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from hmsa_core.cache import ByteLRUCache
from hmsa_core.limits import InputLimits

H, W = 48, 80


@pytest.fixture(scope="module")
def rgb_u8():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


class CountingModel(torch.nn.Module):
    """Wraps a segmenter and counts forward passes (the engine sees the same interface)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0
        for name in ("arch", "labels", "min_input_side", "mean", "std", "has_attention", "has_aux"):
            setattr(self, name, getattr(inner, name))

    def normalize(self, x):
        return self.inner.normalize(x)

    def forward(self, x):
        if x.device.type != "meta":  # FLOP counting runs on the meta device: no arithmetic
            self.calls += 1
        return self.inner(x)


def write(tmp_path, name, array, mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def input_forms(tmp_path, rgb_u8):
    gray = rgb_u8[:, :, 0]
    rgba = np.dstack([rgb_u8, np.full((H, W), 255, np.uint8)])
    pal = Image.fromarray(rgb_u8).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal_path = tmp_path / "palette.png"
    pal.save(pal_path)
    g16 = gray.astype(np.uint16) * 257
    g16_path = tmp_path / "gray16.png"
    Image.fromarray(g16).save(g16_path)
    return {
        "png path": write(tmp_path, "rgb.png", rgb_u8),
        "str path": str(write(tmp_path, "rgb2.png", rgb_u8)),
        "jpeg": write(tmp_path, "rgb.jpg", rgb_u8),
        "bytes": (tmp_path / "rgb.png").read_bytes(),
        "PIL": Image.fromarray(rgb_u8),
        "grayscale png": write(tmp_path, "gray.png", gray),
        "rgba png": write(tmp_path, "rgba.png", rgba),
        "palette png": pal_path,
        "16-bit png": g16_path,
        "uint8 (H,W,3)": rgb_u8,
        "uint8 (H,W)": gray,
        "uint8 (H,W,4)": rgba,
        "uint16 (H,W,3)": rgb_u8.astype(np.uint16) * 257,
        "float (H,W,3)": rgb_u8.astype(np.float32) / 255,
        "float64 (H,W)": gray.astype(np.float64) / 255,
        "tensor (3,H,W)": torch.randn(3, H, W),
        "tensor (1,3,H,W)": torch.randn(1, 3, H, W),
    }


def test_every_input_form_gives_full_resolution_results(tmp_path, model, rgb_u8):
    for name, image in input_forms(tmp_path, rgb_u8).items():
        result = hmsa_core.infer(image, (0.5, 1.0), model=model, cache=None)
        assert result.pred.shape == (H, W), name
        assert result.logits.shape == (19, H, W), name
        assert result.image.shape == (H, W, 3) and result.image.dtype == np.uint8, name
        torch.testing.assert_close(result.probs.sum(0), torch.ones(H, W))
        assert set(result.per_scale) == {0.5, 1.0}
        assert result.per_scale[0.5].logits.shape == (19, H // 2, W // 2)
        assert result.per_scale[0.5].attention.shape == (H // 2, W // 2)


def test_equivalent_inputs_give_equal_predictions(tmp_path, model, rgb_u8):
    a = hmsa_core.infer(rgb_u8, (1.0,), model=model, cache=None)
    b = hmsa_core.infer(rgb_u8.astype(np.uint16) * 257, (1.0,), model=model, cache=None)
    c = hmsa_core.infer(write(tmp_path, "x.png", rgb_u8), (1.0,), model=model, cache=None)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(a.logits, c.logits)


def test_cache_hit_returns_identical_tensors_without_a_forward_pass(model, rgb_u8):
    counting = CountingModel(model)
    cache = ByteLRUCache(64 * 1024 * 1024)
    first = hmsa_core.infer(rgb_u8, (0.5, 1.0, 2.0), model=counting, precision="fp32", cache=cache)
    assert counting.calls == 3
    second = hmsa_core.infer(
        rgb_u8, (0.5, 1.0), model=counting, precision="fp32", method="mean", cache=cache
    )
    assert counting.calls == 3
    assert second.per_scale[1.0].output.logits is first.per_scale[1.0].output.logits
    assert second.cost.cached_scales == (0.5, 1.0)
    assert second.cost.seconds == 0.0
    hmsa_core.infer(rgb_u8, (0.25, 1.0), model=counting, precision="fp32", cache=cache)
    assert counting.calls == 4  # only 0.25 was new
    other = rgb_u8.copy()
    other[0, 0, 0] ^= 1
    hmsa_core.infer(other, (1.0,), model=counting, precision="fp32", cache=cache)
    assert counting.calls == 5  # a different image is a different key


def test_cache_misses_after_the_weights_change_in_place(model, rgb_u8):
    counting = CountingModel(copy.deepcopy(model))
    cache = ByteLRUCache(64 * 1024 * 1024)
    first = hmsa_core.infer(rgb_u8, (1.0,), model=counting, precision="fp32", cache=cache)
    with torch.no_grad():
        next(counting.parameters()).mul_(0.5)
    second = hmsa_core.infer(rgb_u8, (1.0,), model=counting, precision="fp32", cache=cache)
    assert counting.calls == 2 and second.cost.cached_scales == ()
    assert not torch.equal(first.logits, second.logits)


def test_remerge_needs_no_forward_pass(model, rgb_u8):
    counting = CountingModel(model)
    result = hmsa_core.infer(rgb_u8, (0.5, 1.0, 2.0), model=counting, precision="fp32", cache=None)
    again = result.remerge("max", scales=(0.5, 2.0))
    assert counting.calls == 3
    assert again.scales == (0.5, 2.0) and again.method == "max"
    expected = hmsa_core.merge(
        {s: result.per_scale[s] for s in (0.5, 2.0)}, "max", output_size=(H, W)
    )
    torch.testing.assert_close(again.logits, expected.logits[0])
    with pytest.raises(ValueError, match="not computed"):
        result.remerge(scales=(0.25, 1.0))


def test_cache_is_bounded_in_bytes():
    cache = ByteLRUCache(100)
    cache.put("a", 1, 60)
    cache.put("b", 2, 30)
    cache.put("c", 3, 30)  # evicts "a"
    assert cache.get("a") is None and cache.get("b") == 2 and cache.get("c") == 3
    cache.put("huge", 4, 1000)
    assert "huge" not in cache
    assert cache.stats().bytes <= 100


def test_costs_are_positive_and_flops_scale_with_pixels(model, rgb_u8):
    result = hmsa_core.infer(rgb_u8, (0.5, 1.0, 2.0), model=model, cache=None)
    for cost in result.cost.per_scale:
        assert cost.flops > 0 and cost.seconds > 0 and cost.peak_bytes > 0
        assert not cost.cached
    ratio = result.per_scale[2.0].cost.flops / result.per_scale[1.0].cost.flops
    assert 3.5 < ratio < 4.5  # 4x the pixels, about 4x the FLOPs
    ahead = hmsa_core.estimate_cascade(model, (H, W), (0.5, 1.0, 2.0))
    assert ahead.flops == result.cost.flops


def test_return_attn_false_drops_attention_maps(model, rgb_u8):
    result = hmsa_core.infer(rgb_u8, (0.5, 1.0), model=model, return_attn=False, cache=None)
    assert result.weights == {}
    assert all(r.attention is None for r in result.per_scale.values())


BAD_IMAGES = {
    "1-D array": (np.zeros(10, np.uint8), "at least 2-D"),
    "5 channels": (np.zeros((8, 8, 5), np.uint8), r"\(H, W, 3\)"),
    "int32 dtype": (np.zeros((8, 8, 3), np.int32), "unsupported image dtype"),
    "NaN": (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    "float out of range": (np.full((8, 8, 3), -3.0, np.float32), r"\[0, 1\]"),
    "empty": (np.zeros((0, 8, 3), np.uint8), "empty"),
    "wrong tensor": (torch.zeros(2, 3, 8, 8), "normalised"),
    "integer tensor": (torch.zeros(3, 8, 8, dtype=torch.int64), "floating point"),
    "missing file": ("/nonexistent/image.png", "not found"),
    "text bytes": (b"hello, I am not an image", "not a readable image"),
    "zero bytes": (b"", "empty"),
    "a list": ([[1, 2], [3, 4]], "unsupported image type"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_raise_clear_value_errors(model, name):
    image, message = BAD_IMAGES[name]
    with pytest.raises(ValueError, match=message):
        hmsa_core.infer(image, (1.0,), model=model, cache=None)


BAD_CASCADES = {
    "empty": ([], "empty"),
    "zero": ([0], "greater than 0"),
    "negative": ([-1], "greater than 0"),
    "nan": ([float("nan")], "finite"),
    "inf": ([float("inf")], "finite"),
    "too large": ([100], "maximum"),
    "too many": ([0.1 * i for i in range(1, 31)], "at most 8"),
    "not numbers": (["a"], "numbers"),
    "bad text": ("0.5, one", "not a number"),
    "too small for the trunk": ([0.05], "minimum side"),
}


@pytest.mark.parametrize("name", sorted(BAD_CASCADES))
def test_bad_cascades_raise_clear_value_errors(model, rgb_u8, name):
    scales, message = BAD_CASCADES[name]
    with pytest.raises(ValueError, match=message):
        hmsa_core.infer(rgb_u8, scales, model=model, cache=None)


def test_duplicate_scales_are_removed_and_text_cascades_parse(model, rgb_u8):
    result = hmsa_core.infer(rgb_u8, "1, 0.5, 1.0", model=model, cache=None)
    assert result.scales == (0.5, 1.0)


def test_unknown_method_and_precision_are_refused(model, rgb_u8):
    with pytest.raises(ValueError, match="unknown merge method"):
        hmsa_core.infer(rgb_u8, (1.0,), model=model, method="vote", cache=None)
    with pytest.raises(ValueError, match="only supported on CUDA"):
        hmsa_core.infer(rgb_u8, (1.0,), model=model, precision="fp16", cache=None)


def test_the_largest_scale_is_pinned_at_four(model):
    small = np.random.default_rng(2).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    result = hmsa_core.infer(small, (4.0,), model=model, cache=None, limits=InputLimits())
    assert result.per_scale[4.0].logits.shape == (19, 128, 160)
    with pytest.raises(ValueError, match=r"scale 4.001 is above the maximum of 4"):
        hmsa_core.infer(small, (1.0, 4.001), model=model, cache=None, limits=InputLimits())


EIGHT = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)


def test_the_number_of_scales_is_pinned_at_eight(model):
    small = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    result = hmsa_core.infer(small, EIGHT, model=model, cache=None, limits=InputLimits())
    assert result.scales == EIGHT
    with pytest.raises(ValueError, match=r"9 distinct scales given; at most 8 are allowed"):
        hmsa_core.infer(small, (*EIGHT, 2.5), model=model, cache=None, limits=InputLimits())
    nine_values = (1.0, *EIGHT)  # nine values, eight distinct scales
    again = hmsa_core.infer(small, nine_values, model=model, cache=None, limits=InputLimits())
    assert again.scales == EIGHT
    text = "2, 1, 0.5, 1.0, 0.50, 2.0, 0.25, 1, 0.25"  # nine values, four distinct
    assert hmsa_core.infer(small, text, model=model, cache=None).scales == (0.25, 0.5, 1.0, 2.0)


def test_a_too_small_scale_names_the_scale_and_the_size_it_would_give(model, rgb_u8):
    message = (
        r"scale 0.05 turns the 80 x 48 image into 4 x 2 pixels, below the model's minimum "
        r"side of 8"
    )
    with pytest.raises(ValueError, match=message):
        hmsa_core.infer(rgb_u8, (0.05, 1.0), model=model, cache=None, limits=InputLimits())
    with pytest.raises(ValueError, match=r"scale 0.1 turns the 80 x 48 image into 8 x 4 pixels"):
        hmsa_core.infer(rgb_u8, "0.1, 1", model=model, cache=None)


def test_a_tensor_image_keeps_the_display_rgb_of_the_array_it_came_from(model, rgb_u8):
    from hmsa_core.inference import prepare_input

    tensor = prepare_input(rgb_u8, model).tensor
    again = prepare_input(tensor, model)
    assert np.array_equal(again.rgb, rgb_u8)
    assert again.tensor.device == tensor.device
    assert torch.equal(again.tensor, tensor)


@pytest.mark.parametrize("precision", ["fp32", "auto"])  # auto also builds the folded copy
def test_passes_run_in_eval_mode_and_leave_each_modules_mode_as_it_was(model, rgb_u8, precision):
    reference = hmsa_core.infer(rgb_u8, (1.0,), model=model, cache=None, precision=precision)
    mixed = copy.deepcopy(model).train()
    mixed.classifier.eval()
    before = {name: m.training for name, m in mixed.named_modules()}
    result = hmsa_core.infer(rgb_u8, (1.0,), model=mixed, cache=None, precision=precision)
    assert {name: m.training for name, m in mixed.named_modules()} == before
    assert torch.equal(result.logits, reference.logits)  # BatchNorm used its running stats
