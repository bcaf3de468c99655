"""Attention-gated cascades: gate=0 is bit-identical, the stated error bound holds on random
per-scale outputs, and skipped fractions and FLOPs saved are reported correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hmsa_core
from hmsa_core.gating import gate_cascade, gate_error_bound, remaining_envelope, tile_rectangles
from hmsa_core.inference import run_scales
from hmsa_core.limits import InputLimits
from hmsa_core.merge import merge
from hmsa_core.models.base import ScaleOutput, resize, scaled_size


@pytest.fixture(scope="module")
def model(lite):
    """The trained bundled model: gating needs attention maps that mean something."""
    return lite


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)


def random_outputs(seed: int, base: tuple[int, int], scales, sharpness: float, with_aux: bool):
    """Returns scale -> ScaleOutput with random logits in [-5, 5] and a smooth random attention
    sigmoid(sharpness * field) (large sharpness: saturated regions, where gating skips tiles)."""
    gen = torch.Generator().manual_seed(seed)
    outputs = {}
    for s in scales:
        h, w = scaled_size(base, s)
        logits = torch.rand((1, 3, h, w), generator=gen) * 10 - 5
        coarse = torch.randn((1, 1, max(1, h // 8), max(1, w // 8)), generator=gen)
        attn = torch.sigmoid(sharpness * resize(coarse, (h, w)))
        aux = torch.rand((1, 3, h, w), generator=gen) * 10 - 5 if with_aux else None
        outputs[s] = ScaleOutput(logits=logits, attention=attn, aux_logits=aux)
    return outputs


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    cascade=st.sampled_from([(0.5, 1.0), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0), (1.0, 1.5)]),
    tau=st.sampled_from([0.01, 0.05, 0.1, 0.3]),
    sharpness=st.floats(0.5, 12.0),
    tile=st.sampled_from([2, 4, 8]),
)
def test_gated_merge_moves_by_at_most_the_stated_bound(seed, cascade, tau, sharpness, tile):
    outputs = random_outputs(seed, (24, 32), cascade, sharpness, with_aux=True)
    gated, covered = gate_cascade(outputs, tau, tile)
    exact = merge(outputs, output_size=(24, 32))
    approx = merge(gated, output_size=(24, 32))
    skipping = sum(1 for s in cascade if not bool(covered[s].all()))
    bound = gate_error_bound({s: o.logits for s, o in outputs.items()}, tau, skipping)
    assert float((exact.logits - approx.logits).abs().max()) <= bound + 1e-5
    aux_bound = gate_error_bound({s: o.aux_logits for s, o in outputs.items()}, tau, skipping)
    assert float((exact.aux_logits - approx.aux_logits).abs().max()) <= aux_bound + 1e-5


def test_gating_skips_tiles_when_attention_saturates():
    outputs = random_outputs(3, (96, 128), (0.5, 1.0, 2.0), sharpness=12.0, with_aux=False)
    _, covered = gate_cascade(outputs, 0.3, 4)
    assert bool(covered[0.5].all())
    assert not bool(covered[2.0].all())  # the test below would be vacuous otherwise


def test_tile_rectangles_cover_exactly_the_needed_tiles():
    needed = torch.rand((7, 9), generator=torch.Generator().manual_seed(0)) > 0.5
    rebuilt = torch.zeros_like(needed)
    for r0, r1, c0, c1 in tile_rectangles(needed):
        assert not bool(rebuilt[r0:r1, c0:c1].any())  # rectangles never overlap
        rebuilt[r0:r1, c0:c1] = True
    assert torch.equal(rebuilt, needed)


def test_gate_zero_is_bit_identical_to_the_ungated_cascade(model, image):
    plain = hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32")
    zero = hmsa_core.infer(
        image, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32", gate=0.0
    )
    assert torch.equal(plain.logits, zero.logits)
    for s in plain.scales:
        assert torch.equal(plain.per_scale[s].output.logits, zero.per_scale[s].output.logits)
        assert zero.per_scale[s].computed is None
        assert zero.cost.per_scale[plain.scales.index(s)].flops_saved == 0


def test_a_gated_run_reports_the_fraction_computed_and_the_flops_saved(model):
    # A gate just above the largest remaining weight scale 1.0 can get skips all of it.
    image = torch.zeros((1, 3, 128, 192))
    limits = InputLimits(gate_tile=64)
    plain = run_scales(model, image, (0.5, 1.0), precision="fp32", cache=None)
    envelope = remaining_envelope({0.5: plain[0.5].output.attention}, plain[1.0].cost.input_size, 2)
    tau = float(envelope.max()) + 1e-3
    gated = run_scales(
        model, image, (0.5, 1.0), precision="fp32", cache=None, gate=tau, limits=limits
    )
    top = gated[1.0].cost
    assert top.computed_fraction == 0.0 and top.flops == 0
    assert top.flops_saved == plain[1.0].cost.flops
    assert gated[1.0].computed is not None and not bool(gated[1.0].computed.any())
    assert gated[0.5].cost.computed_fraction == 1.0 and gated[0.5].computed is None
    assert torch.equal(gated[0.5].output.logits, plain[0.5].output.logits)
    total = hmsa_core.CascadeCost(tuple(gated[s].cost for s in (0.5, 1.0)))
    assert total.flops_saved == plain[1.0].cost.flops
    assert total.full_flops == sum(plain[s].cost.flops for s in plain)
    assert bool((gated[1.0].output.attention == 1).all())  # cuts off nothing above it


def test_a_partly_gated_pass_counts_flops_by_the_area_it_ran(model):
    gen = torch.Generator().manual_seed(5)
    image = torch.zeros((1, 3, 128, 256))
    image[..., :, 128:] = torch.randn((1, 3, 128, 128), generator=gen) * 2
    limits = InputLimits(gate_tile=64, tile_overlap=32)
    plain = run_scales(model, image, (0.5, 1.0), precision="fp32", cache=None)
    env = 1 - plain[0.5].output.attention
    left, right = float(env[..., :, :48].amax()), float(env[..., :, 80:].amax())
    tau = (min(left, right) + max(left, right)) / 2
    gated = run_scales(
        model, image, (0.5, 1.0), precision="fp32", cache=None, gate=tau, limits=limits
    )
    cost = gated[1.0].cost
    if cost.computed_fraction in (0.0, 1.0):
        pytest.skip("the attention of this image does not split the tiles")
    computed = gated[1.0].computed
    assert computed is not None
    assert cost.computed_fraction == pytest.approx(float(computed.float().mean()))
    assert cost.flops + cost.flops_saved == plain[1.0].cost.flops
    assert 0 < cost.flops < plain[1.0].cost.flops


def test_gates_are_refused_where_they_do_not_apply(model, image):
    with pytest.raises(ValueError, match="hierarchical merge only"):
        hmsa_core.infer(image, (0.5, 1.0), model=model, method="mean", gate=0.1, cache=None)
    with pytest.raises(ValueError, match=r"gate must be in \[0, 1\)"):
        hmsa_core.infer(image, (0.5, 1.0), model=model, gate=1.5, cache=None)
    explicit = hmsa_core.load_model("explicit-lite", "cpu")
    with pytest.raises(ValueError, match="needs a model with a scale-attention head"):
        hmsa_core.infer(image, (0.5, 1.0, 2.0), model=explicit, gate=0.1, cache=None)


def test_a_real_gated_run_computes_exact_tiles_and_stays_within_the_bound(model):
    # The lite model's receptive field (radius 43 px) fits in half the default 96 px overlap,
    # so the tiles a gated run computes equal the whole pass there, and the merge moves by at
    # most the bound stated for exact tiles.
    gen = torch.Generator().manual_seed(5)
    image = torch.zeros((1, 3, 128, 768))
    image[..., :, 512:] = torch.randn((1, 3, 128, 256), generator=gen) * 2
    limits = InputLimits(gate_tile=64)
    plain = run_scales(model, image, (0.5, 1.0), precision="fp32", cache=None)
    env = 1 - plain[0.5].output.attention
    left, right = float(env[..., :, :200].amax()), float(env[..., :, 280:].amax())
    if abs(left - right) < 1e-3:
        pytest.skip("the attention of this image does not split the tiles")
    tau = (left + right) / 2
    gated = run_scales(
        model, image, (0.5, 1.0), precision="fp32", cache=None, gate=tau, limits=limits
    )
    computed = gated[1.0].computed
    assert computed is not None and 0 < float(computed.float().mean()) < 1
    exact = plain[1.0].output.logits[0][:, computed]
    assert torch.allclose(gated[1.0].output.logits[0][:, computed], exact, atol=1e-4)
    outputs = {s: r.output for s, r in plain.items()}
    merged_plain = merge(outputs, "hierarchical").logits
    merged_gated = merge({s: r.output for s, r in gated.items()}, "hierarchical").logits
    bound = gate_error_bound({s: o.logits for s, o in outputs.items()}, tau, 1)
    assert float((merged_gated - merged_plain).abs().max()) <= bound + 1e-5
