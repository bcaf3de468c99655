"""The hierarchical merge (DESIGN 1.1) and the effective weights (DESIGN 1.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

import hmsa_core
from hmsa_core.cache import ByteLRUCache
from hmsa_core.merge import merge
from hmsa_core.models import build
from hmsa_core.models.base import ScaleOutput
from tests.tiny_models import tiny_official

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


def bilinear(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def resized_through(t: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """``t`` resized to each size in turn (a resize to its own size changes nothing)."""
    for size in sizes:
        if tuple(t.shape[-2:]) != tuple(size):
            t = bilinear(t, size)
    return t


def scale_size(size: tuple[int, int], s: float) -> tuple[int, int]:
    return int(size[0] * s), int(size[1] * s)


def working_scale(cascade) -> float:
    """The scale whose size the merge works at: the smallest >= 1.0, else the largest."""
    at_least_one = [s for s in cascade if s >= 1.0]
    return min(at_least_one) if at_least_one else max(cascade)


GRID = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0]


@st.composite
def attention_cases(draw):
    """Cascades of 2 to 5 grid scales (with and without 1.0 and 1.5) and an image size."""
    scales = draw(st.lists(st.sampled_from(GRID), min_size=2, max_size=5, unique=True))
    size = (draw(st.integers(16, 60)), draw(st.integers(16, 60)))
    return tuple(sorted(scales)), size, draw(st.integers(0, 1000))


def attention_property(test):
    """Returns ``test`` run on 30 drawn :func:`attention_cases` plus four fixed ones (cascades
    with and without 1.0, odd sizes)."""
    for case in [
        ((0.5, 1.5), (37, 61), 1),
        ((1.5, 2.0), (40, 48), 2),
        ((0.25, 0.5), (44, 60), 3),
        ((0.5, 1.0, 1.5, 2.0), (32, 48), 4),
    ]:
        test = example(case)(test)
    return settings(max_examples=30, deadline=None)(given(attention_cases())(test))


@attention_property
def test_all_attention_one_gives_the_lowest_scales_resized_logits(case):
    """a = 1 everywhere: each lower scale replaces everything above it, so the lowest scale's
    logits come out, resized to the working size and then to the output size."""
    cascade, size, seed = case
    outputs = random_outputs(size, cascade, seed=seed, attention=1.0)
    merged = merge(outputs, "hierarchical", output_size=size)
    lowest = outputs[cascade[0]].logits
    expected = resized_through(lowest, [scale_size(size, working_scale(cascade)), size])
    torch.testing.assert_close(merged.logits, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged.weights[cascade[0]], torch.ones(1, *size))


@attention_property
def test_all_attention_zero_gives_the_highest_scales_resized_logits(case):
    """a = 0 everywhere: the highest scale is kept, resized down through each scale >= 1.0
    below it (as the official merge does) and then to the output size."""
    cascade, size, seed = case
    outputs = random_outputs(size, cascade, seed=seed, attention=0.0)
    merged = merge(outputs, "hierarchical", output_size=size)
    highest = outputs[cascade[-1]].logits
    steps = [scale_size(size, s) for s in sorted(cascade, reverse=True)[1:] if s >= 1.0]
    expected = resized_through(highest, [*steps, size])
    torch.testing.assert_close(merged.logits, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(merged.weights[cascade[-1]], torch.ones(1, *size))


def with_aux(outputs: dict[float, ScaleOutput], seed: int) -> dict[float, ScaleOutput]:
    """The same outputs with random auxiliary logits added."""
    g = torch.Generator().manual_seed(seed)
    return {
        s: ScaleOutput(o.logits, o.attention, torch.randn(o.logits.shape, generator=g) * 3)
        for s, o in outputs.items()
    }


def aux_as_main(outputs: dict[float, ScaleOutput]) -> dict[float, ScaleOutput]:
    """The outputs with the aux logits in place of the main ones."""
    return {s: ScaleOutput(o.aux_logits, o.attention) for s, o in outputs.items()}


@pytest.mark.parametrize("cascade", CASCADES)
def test_aux_logits_are_merged_exactly_like_the_main_logits(cascade):
    outputs = with_aux(random_outputs((37, 61), cascade, seed=7), seed=8)
    merged = merge(outputs, "hierarchical")
    assert merged.aux_logits is not None and merged.aux_logits.shape == (1, 5, 37, 61)
    expected = restated_hierarchical(aux_as_main(outputs))
    torch.testing.assert_close(merged.aux_logits, expected, rtol=0, atol=1e-5)
    for method in ("mean", "max", f"single:{cascade[0]}"):
        again = merge(aux_as_main(outputs), method).logits
        torch.testing.assert_close(merge(outputs, method).aux_logits, again, rtol=0, atol=0)


def test_aux_logits_are_merged_only_when_every_scale_has_them():
    outputs = with_aux(random_outputs((24, 40), (0.5, 1.0), seed=9), seed=10)
    outputs[0.5] = ScaleOutput(outputs[0.5].logits, outputs[0.5].attention)
    assert merge(outputs, "hierarchical").aux_logits is None


def tiny_aux_model(classes: int = 5):
    """A small ``hrnet48_ocr_mscale`` (same code as the official model; it has aux logits)."""
    return tiny_official(classes)


def test_inference_result_exposes_merged_aux_logits():
    model = tiny_aux_model()
    assert model.has_aux
    image = np.random.default_rng(0).random((64, 96, 3)).astype(np.float32)
    result = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, cache=None, aux=True)
    assert result.aux_logits is not None and result.aux_logits.shape == (5, 64, 96)
    outputs = {s: r.output for s, r in result.per_scale.items()}
    assert all(o.aux_logits is not None for o in outputs.values())
    expected = restated_hierarchical(aux_as_main(outputs))[0]
    torch.testing.assert_close(result.aux_logits, expected, rtol=0, atol=1e-4)
    lite = hmsa_core.infer(image, (0.5, 1.0), model=build("lite", 5).eval(), cache=None)
    assert lite.aux_logits is None  # no aux head, no aux logits


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


def test_non_floating_or_mismatched_outputs_are_value_errors():
    outputs = random_outputs((16, 24), (0.5, 1.0))
    as_int = {s: ScaleOutput(o.logits.long(), o.attention) for s, o in outputs.items()}
    for method in ("hierarchical", "mean", "max", "single:1"):
        with pytest.raises(ValueError, match=r"scale 0.5: logits must be floating point, got"):
            merge(as_int, method)
    more_classes = dict(outputs)
    more_classes[1.0] = ScaleOutput(torch.zeros(1, 6, 16, 24), outputs[1.0].attention)
    with pytest.raises(ValueError, match=r"scale 1 has 6 classes and batch 1, but scale 0.5 has 5"):
        merge(more_classes, "mean")
    bigger_batch = dict(outputs)
    bigger_batch[1.0] = ScaleOutput(torch.zeros(2, 5, 16, 24), torch.zeros(2, 1, 16, 24))
    with pytest.raises(ValueError, match=r"scale 1 has 5 classes and batch 2"):
        merge(bigger_batch, "hierarchical")
    wrong_attention = dict(outputs)
    wrong_attention[0.5] = ScaleOutput(outputs[0.5].logits, torch.zeros(1, 1, 9, 12))
    with pytest.raises(ValueError, match=r"scale 0.5: attention must have shape \(1, 1, 8, 12\)"):
        merge(wrong_attention, "hierarchical")
    with pytest.raises(ValueError, match=r"output_size must be positive"):
        merge(outputs, "mean", output_size=(0, 24))


def test_aux_logits_are_dropped_by_default_without_changing_the_prediction():
    """``aux=False`` (the default) frees the aux maps pass by pass; the logits are the same,
    and a cached pass without aux is never served to a call that asks for aux."""
    model = tiny_aux_model()
    image = np.random.default_rng(1).random((64, 96, 3)).astype(np.float32)
    cache = ByteLRUCache(1 << 30)
    lean = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, cache=cache, precision="fp32")
    assert lean.aux_logits is None
    assert all(r.output.aux_logits is None for r in lean.per_scale.values())
    full = hmsa_core.infer(
        image, (0.5, 1.0, 2.0), model=model, cache=cache, precision="fp32", aux=True
    )
    assert not any(r.cost.cached for r in full.per_scale.values())
    assert all(r.output.aux_logits is not None for r in full.per_scale.values())
    torch.testing.assert_close(full.logits, lean.logits, rtol=0, atol=0)
