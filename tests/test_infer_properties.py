"""Property tests: `infer` and `merge` over random sizes, cascades and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hmsa_core
from hmsa_core.models import build

MODEL = build("lite", 7).eval()

scale_values = st.one_of(
    st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 2.0]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)


@st.composite
def images(draw):
    h = draw(st.integers(1, 48))
    w = draw(st.integers(1, 48))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16, np.float32, np.float64]))
    shape = (h, w) if channels is None else (h, w, channels)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if np.issubdtype(dtype, np.integer):
        arr = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        arr = rng.random(shape).astype(dtype)
    return arr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    images(),
    st.lists(scale_values, min_size=0, max_size=5),
    st.sampled_from(["hierarchical", "mean", "max"]),
)
def test_infer_never_crashes_except_with_value_error(image, scales, method):
    try:
        result = hmsa_core.infer(image, scales, model=MODEL, method=method, cache=None)
    except ValueError as exc:
        assert str(exc)  # a message, never an empty error
        return
    h, w = image.shape[:2]
    assert result.pred.shape == (h, w)
    assert result.logits.shape == (7, h, w)
    assert torch.isfinite(result.logits).all()
    total = sum(result.weights.values())
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("scales", [(0.5, 1.0, 2.0), (0.25, 0.75), (1.5,)])
def test_infer_shapes_follow_the_input_for_odd_sizes(scales):
    image = np.random.default_rng(3).random((37, 61, 3)).astype(np.float32)
    result = hmsa_core.infer(image, scales, model=MODEL, cache=None)
    assert result.pred.shape == (37, 61)
    for s, scale_result in result.per_scale.items():
        assert scale_result.logits.shape == (7, int(37 * s), int(61 * s))
