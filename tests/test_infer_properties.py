"""Property tests: `infer` and `merge` over random sizes, cascades and dtypes.

Two kinds of property: over *valid* inputs (multi-scale cascades the model can run) the
result has the input's shape and effective weights that sum to 1; over *arbitrary* inputs
nothing but a ``ValueError`` with a message ever escapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hmsa_core
from hmsa_core.limits import InputLimits
from hmsa_core.merge import merge
from hmsa_core.models import build
from hmsa_core.models.base import ScaleOutput

MODEL = build("lite", 7).eval()
LIMITS = InputLimits()  # the defaults, whatever the environment says
#: Scales a valid cascade draws from; at 32 px the smallest gives the model's 8 px minimum.
SCALE_GRID = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
DTYPES = (np.uint8, np.uint16, np.float32, np.float64)

scale_values = st.one_of(
    st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 2.0]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)


def pixel_values(dtype: type, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Returns a valid image of ``dtype``: the full integer range, or floats in [0, 1]."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    return rng.random(shape).astype(dtype)


@st.composite
def valid_images(draw, low: int = 32, high: int = 96) -> np.ndarray:
    """Well-formed images of 32 to 96 px a side, any accepted dtype and channel layout."""
    h, w = draw(st.integers(low, high)), draw(st.integers(low, high))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    shape = (h, w) if channels is None else (h, w, channels)
    return pixel_values(draw(st.sampled_from(DTYPES)), shape, draw(st.integers(0, 2**16)))


@st.composite
def valid_cascades(draw) -> tuple[float, ...]:
    """2 to 4 distinct scales from :data:`SCALE_GRID`, in any order."""
    return tuple(draw(st.lists(st.sampled_from(SCALE_GRID), min_size=2, max_size=4, unique=True)))


@st.composite
def arbitrary_images(draw) -> np.ndarray:
    """Images of 1 to 48 px a side, 0 to 5 channels, any of :data:`DTYPES`; floats may hold
    any value (NaN, infinities, negatives, huge), placed at random pixels."""
    h, w = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    shape = (h, w) if channels is None else (h, w, channels)
    dtype = draw(st.sampled_from(DTYPES))
    arr = pixel_values(dtype, shape, draw(st.integers(0, 2**16)))
    if np.issubdtype(dtype, np.floating):
        specials = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3))
        flat = arr.reshape(-1)
        for value in specials:
            flat[draw(st.integers(0, flat.size - 1))] = value  # float32 may overflow to inf
        if draw(st.booleans()):
            arr = arr * draw(st.sampled_from([255.0, 1.03, 300.0, -1.0]))
    return arr


def assert_well_formed(result: hmsa_core.InferenceResult, size: tuple[int, int]) -> None:
    """The merged result has the input's size and effective weights that sum to 1."""
    h, w = size
    assert result.pred.shape == (h, w)
    assert result.logits.shape == (7, h, w)
    assert torch.isfinite(result.logits).all()
    assert int(result.pred.min()) >= 0 and int(result.pred.max()) < 7
    total = sum(result.weights.values())
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_images(), valid_cascades(), st.sampled_from(["hierarchical", "mean", "max"]))
def test_valid_multi_scale_cascades_give_input_sized_results(image, scales, method):
    result = hmsa_core.infer(image, scales, model=MODEL, method=method, cache=None, limits=LIMITS)
    h, w = image.shape[:2]
    assert result.scales == tuple(sorted(scales))
    assert_well_formed(result, (h, w))
    assert set(result.weights) == set(scales)
    for s, scale_result in result.per_scale.items():
        assert scale_result.logits.shape == (7, int(h * s), int(w * s))
        assert scale_result.attention.shape == (int(h * s), int(w * s))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    arbitrary_images(),
    st.lists(scale_values, min_size=0, max_size=5),
    st.sampled_from(["hierarchical", "mean", "max"]),
)
def test_infer_never_crashes_except_with_value_error(image, scales, method):
    non_finite = np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all()
    # An array of a layout no reader accepts is refused for its shape before its values.
    accepted_layout = image.ndim == 2 or image.shape[2] in (1, 3, 4)
    try:
        result = hmsa_core.infer(
            image, scales, model=MODEL, method=method, cache=None, limits=LIMITS
        )
    except ValueError as exc:
        assert str(exc)  # a message, never an empty error
        if non_finite and accepted_layout:
            assert "NaN or infinite" in str(exc)
        return
    assert not non_finite, "NaN/inf pixels must be refused"
    assert_well_formed(result, image.shape[:2])


@pytest.mark.parametrize("scales", [(0.5, 1.0, 2.0), (0.25, 0.75), (1.5,)])
def test_infer_shapes_follow_the_input_for_odd_sizes(scales):
    image = np.random.default_rng(3).random((37, 61, 3)).astype(np.float32)
    result = hmsa_core.infer(image, scales, model=MODEL, cache=None)
    assert result.pred.shape == (37, 61)
    for s, scale_result in result.per_scale.items():
        assert scale_result.logits.shape == (7, int(37 * s), int(61 * s))


FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
OTHER_DTYPES = (torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64)
#: What can be wrong with one scale's output, relative to the others.
DEFECTS = ("none", "dtype", "classes", "batch", "attention_shape", "aux_classes", "empty")


@st.composite
def merge_cases(draw) -> tuple[dict[float, ScaleOutput], tuple[int, int], str]:
    """Per-scale outputs of 1 to 4 scales in random floating dtypes, with at most one defect
    (a non-floating dtype, or a class count, batch, attention or aux shape that disagrees)."""
    scales = sorted(
        draw(st.lists(st.sampled_from(SCALE_GRID), min_size=1, max_size=4, unique=True))
    )
    size = (draw(st.integers(8, 24)), draw(st.integers(8, 24)))
    batch, classes = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    defect = draw(st.sampled_from(DEFECTS))
    bad = draw(st.sampled_from(scales))
    g = torch.Generator().manual_seed(draw(st.integers(0, 1000)))
    outputs = {}
    for s in scales:
        h, w = max(1, int(size[0] * s)), max(1, int(size[1] * s))
        b, c, dtype = batch, classes, draw(st.sampled_from(FLOAT_DTYPES))
        attn_shape, aux_c = (b, 1, h, w), c
        if s == bad and len(scales) > 1:
            b += defect == "batch"
            c += defect == "classes"
            attn_shape = (b, 1, h + 1, w) if defect == "attention_shape" else (b, 1, h, w)
            aux_c = c + 1 if defect == "aux_classes" else c
        if s == bad and defect == "empty":
            h = 0
            attn_shape = (b, 1, h, w)
        logits = (torch.randn(b, c, h, w, generator=g) * 3).to(dtype)
        if s == bad and defect == "dtype":
            logits = logits.to(draw(st.sampled_from(OTHER_DTYPES)))
        attention = torch.rand(*attn_shape, generator=g).to(dtype)
        aux = torch.randn(b, aux_c, h, w, generator=g).to(dtype)
        outputs[s] = ScaleOutput(logits, attention, aux)
    return outputs, size, defect if len(scales) > 1 or defect in ("dtype", "empty") else "none"


@settings(max_examples=80, deadline=None)
@given(merge_cases(), st.sampled_from(["hierarchical", "mean", "max"]))
def test_merge_takes_any_floating_dtype_and_refuses_mismatches_with_value_error(case, method):
    outputs, size, defect = case
    if defect != "none":
        with pytest.raises(ValueError, match=r"scale \d"):
            merge(outputs, method, output_size=size)
        return
    merged = merge(outputs, method, output_size=size)
    batch, classes = next(iter(outputs.values())).logits.shape[:2]
    assert merged.logits.shape == (batch, classes, *size)
    assert merged.logits.is_floating_point()
    assert merged.aux_logits is not None and merged.aux_logits.shape == merged.logits.shape
    total = sum(w.double() for w in merged.weights.values())
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-2)  # bfloat16 has 8 bits


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(FLOAT_DTYPES), st.sampled_from(FLOAT_DTYPES))
def test_mixed_floating_dtypes_merge_in_their_promoted_dtype(low, high):
    assume(low != high)
    g = torch.Generator().manual_seed(0)
    outputs = {
        0.5: ScaleOutput(torch.randn(1, 3, 8, 8, generator=g).to(low), torch.rand(1, 1, 8, 8)),
        1.0: ScaleOutput(torch.randn(1, 3, 16, 16, generator=g).to(high), torch.rand(1, 1, 16, 16)),
    }
    merged = merge(outputs, "hierarchical")
    assert merged.logits.dtype == torch.promote_types(torch.promote_types(low, high), torch.float32)
