"""The hierarchical merge (DESIGN 1.1) and the effective weights (DESIGN 1.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hmsa_core.merge import merge
from hmsa_core.models.base import ScaleOutput

CASCADES = [(1.0,), (0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0), (0.5, 1.0, 1.5, 2.0)]


def random_outputs(
    size: tuple[int, int], scales, classes: int = 5, seed: int = 0, attention=None
) -> dict[float, ScaleOutput]:
    """Per-scale random logits/attention at floor(H*s) x floor(W*s), like a real model's."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for s in scales:
        h, w = int(size[0] * s), int(size[1] * s)
        logits = torch.randn(1, classes, h, w, generator=g) * 3
        if attention is None:
            attn = torch.rand(1, 1, h, w, generator=g)
        else:
            attn = torch.full((1, 1, h, w), float(attention))
        out[s] = ScaleOutput(logits=logits, attention=attn)
    return out


def restated_hierarchical(outputs: dict[float, ScaleOutput]) -> torch.Tensor:
    """A literal, loop-by-loop restatement of DESIGN 1.1, written independently of the engine."""

    def bilinear(t, size):
        return F.interpolate(t, size=size, mode="bilinear", align_corners=False)

    order = sorted(outputs, reverse=True)
    pred = outputs[order[0]].logits
    for s in order[1:]:
        p, a = outputs[s].logits, outputs[s].attention
        if s >= 1.0:
            pred = a * p + (1 - a) * bilinear(pred, p.shape[-2:])
        else:
            pred = bilinear(a * p, pred.shape[-2:]) + (1 - bilinear(a, pred.shape[-2:])) * pred
    return pred


@pytest.mark.parametrize("cascade", CASCADES)
def test_hierarchical_matches_the_restated_algorithm_on_odd_sizes(cascade):
    outputs = random_outputs((37, 61), cascade, seed=len(cascade))
    merged = merge(outputs, "hierarchical")
    expected = restated_hierarchical(outputs)
    assert merged.logits.shape == (1, 5, 37, 61)
    torch.testing.assert_close(merged.logits, expected, rtol=0, atol=1e-5)


def test_hierarchical_multiplies_before_upsampling():
    """Taking up(a) * up(p) instead of up(a * p) is a different (wrong) result."""
    outputs = random_outputs((40, 64), (0.5, 1.0), seed=3)
    merged = merge(outputs, "hierarchical").logits
    p, a = outputs[0.5].logits, outputs[0.5].attention

    def up(t):
        return F.interpolate(t, size=(40, 64), mode="bilinear", align_corners=False)

    wrong = up(a) * up(p) + (1 - up(a)) * outputs[1.0].logits
    assert (merged - wrong).abs().max() > 1e-3


def test_cascade_without_one_is_resized_to_the_output_size():
    outputs = random_outputs((48, 80), (0.5, 2.0), seed=4)
    merged = merge(outputs, "hierarchical", output_size=(48, 80))
    p2, p05, a05 = outputs[2.0].logits, outputs[0.5].logits, outputs[0.5].attention
    big = p2.shape[-2:]
    mixed = (
        F.interpolate(a05 * p05, size=big, mode="bilinear", align_corners=False)
        + (1 - F.interpolate(a05, size=big, mode="bilinear", align_corners=False)) * p2
    )
    expected = F.interpolate(mixed, size=(48, 80), mode="bilinear", align_corners=False)
    torch.testing.assert_close(merged.logits, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="output_size"):
        merge(outputs, "hierarchical")


def test_all_attention_one_gives_the_lowest_scale():
    cascade = (0.5, 1.0, 2.0)
    outputs = random_outputs((32, 48), cascade, attention=1.0)
    merged = merge(outputs, "hierarchical").logits
    lowest = F.interpolate(outputs[0.5].logits, size=(32, 48), mode="bilinear", align_corners=False)
    torch.testing.assert_close(merged, lowest, rtol=0, atol=1e-5)


def test_all_attention_zero_gives_the_highest_scale():
    cascade = (0.5, 1.0, 2.0)
    outputs = random_outputs((32, 48), cascade, attention=0.0)
    merged = merge(outputs, "hierarchical").logits
    highest = F.interpolate(
        outputs[2.0].logits, size=(32, 48), mode="bilinear", align_corners=False
    )
    torch.testing.assert_close(merged, highest, rtol=0, atol=1e-5)


def test_effective_weights_reconstruct_the_merge_where_attention_is_smooth():
    """With spatially constant attention, sum_s w_s * up(p_s) equals the merged logits exactly."""
    g = torch.Generator().manual_seed(5)
    outputs = {}
    for s, a in ((0.5, 0.3), (1.0, 0.6), (2.0, 0.9)):
        h, w = int(32 * s), int(64 * s)
        outputs[s] = ScaleOutput(torch.randn(1, 4, h, w, generator=g), torch.full((1, 1, h, w), a))
    merged = merge(outputs, "hierarchical")
    rebuilt = sum(
        merged.weights[s][:, None]
        * F.interpolate(outputs[s].logits, size=(32, 64), mode="bilinear", align_corners=False)
        for s in outputs
    )
    torch.testing.assert_close(rebuilt, merged.logits, rtol=0, atol=1e-5)
    assert merged.weights[0.5].mean().item() == pytest.approx(0.3)
    assert merged.weights[1.0].mean().item() == pytest.approx(0.6 * 0.7)
    assert merged.weights[2.0].mean().item() == pytest.approx(0.4 * 0.7)


def test_mean_max_and_single():
    outputs = random_outputs((24, 40), (0.5, 1.0, 2.0), seed=6)
    resized = torch.stack(
        [
            F.interpolate(outputs[s].logits, size=(24, 40), mode="bilinear", align_corners=False)
            for s in (0.5, 1.0, 2.0)
        ]
    )
    torch.testing.assert_close(merge(outputs, "mean").logits, resized.mean(0))
    torch.testing.assert_close(merge(outputs, "max").logits, resized.max(0).values)
    torch.testing.assert_close(merge(outputs, "single:2.0").logits, resized[2])
    with pytest.raises(ValueError, match=r"scale 4 is not in the cascade"):
        merge(outputs, "single:4")
    with pytest.raises(ValueError, match="unknown merge method"):
        merge(outputs, "median")
    with pytest.raises(ValueError, match="empty cascade"):
        merge({}, "mean")


def test_model_without_attention_cannot_be_merged_hierarchically():
    outputs = random_outputs((16, 16), (0.5, 1.0))
    outputs[0.5] = ScaleOutput(outputs[0.5].logits, None)
    with pytest.raises(ValueError, match="no attention"):
        merge(outputs, "hierarchical")
    merge(outputs, "mean")  # other methods still work


def test_explicit_needs_an_explicit_model():
    with pytest.raises(ValueError, match="explicit"):
        merge(random_outputs((16, 16), (0.5, 1.0)), "explicit")


@st.composite
def cascades_and_sizes(draw):
    scales = draw(
        st.lists(
            st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 2.0]), min_size=1, max_size=5, unique=True
        )
    )
    h = draw(st.integers(16, 60))
    w = draw(st.integers(16, 60))
    return tuple(sorted(scales)), (h, w), draw(st.integers(0, 1000))


@settings(max_examples=40, deadline=None)
@given(cascades_and_sizes(), st.sampled_from(["hierarchical", "mean", "max"]))
def test_weights_sum_to_one_and_merge_is_deterministic(case, method):
    scales, size, seed = case
    outputs = random_outputs(size, scales, classes=3, seed=seed)
    first = merge(outputs, method, output_size=size)
    second = merge(outputs, method, output_size=size)
    assert first.logits.shape == (1, 3, *size)
    assert torch.equal(first.logits, second.logits)
    total = sum(first.weights.values())
    np.testing.assert_allclose(total.numpy(), 1.0, atol=1e-5)
    for w in first.weights.values():
        assert float(w.min()) >= -1e-6 and float(w.max()) <= 1 + 1e-6
