"""One plan for running and costing: the windows a pass runs are exactly the windows the cost
estimate counts, for tiled, gated and flipped cascades; options are checked in one place."""

from __future__ import annotations

import pytest
import torch

import hmsa_core
from hmsa_core.gated_pass import needed_for
from hmsa_core.limits import InputLimits
from hmsa_core.passes import run_plan
from hmsa_core.plan import plan_cascade
from hmsa_core.results import mirror

CASCADE = (0.5, 1.0, 2.0)


def _image() -> torch.Tensor:
    """A (1, 3, 128, 256) input: flat on the left, noise on the right (gating splits it)."""
    image = torch.zeros((1, 3, 128, 256))
    gen = torch.Generator().manual_seed(5)
    image[..., :, 128:] = torch.randn((1, 3, 128, 128), generator=gen) * 2
    return image


def _check_runs_as_planned(model, image, options):
    """Runs ``options``' plan and checks every pass against it; returns the passes' windows."""
    plan = plan_cascade(model, tuple(image.shape[-2:]), CASCADE, options)
    results = run_plan(model, image, plan)
    estimate = hmsa_core.estimate_cascade(model, tuple(image.shape[-2:]), CASCADE, options=options)
    assert [(c.scale, c.flipped) for c in estimate.per_scale] == [
        (p.scale, p.flip) for p in plan.passes
    ]
    ran = {}
    for p, expected in zip(plan.passes, estimate.per_scale, strict=True):
        r = results[p.scale]
        outcome = r.flipped_pass if p.flip else r.plain_pass
        assert outcome is not None
        if p.gated:
            lower = {
                s: results[s].flipped if p.flip else results[s].output
                for s in plan.scales
                if s < p.scale
            }
            if p.flip:
                lower = {s: mirror(o) for s, o in lower.items()}
            windows = plan.gated_windows(p, needed_for(plan, p, lower))
            planned = p.windows if windows is None else windows
        else:
            planned = p.windows
        assert outcome.windows == planned, (p.scale, p.flip)
        full = p.input_size[0] * p.input_size[1]
        area = full if planned is None else sum(w.area for w in planned)
        assert outcome.cost.flops == round(p.estimate.flops * area / full)
        if not p.gated:
            assert outcome.cost.flops == expected.flops == p.flops
        ran[(p.scale, p.flip)] = outcome
    return plan, ran


def test_tiled_passes_run_the_windows_the_estimate_counts(lite):
    limits = InputLimits(max_tile_pixels=160 * 160, tile_overlap=32)
    options = hmsa_core.InferOptions(precision="fp32", limits=limits)
    plan, ran = _check_runs_as_planned(lite, _image(), options)
    assert len(plan.pass_for(2.0).windows) > 1  # really tiled
    assert ran[(2.0, False)].cost.flops > plan.pass_for(2.0).estimate.flops  # overlaps paid


def test_gated_and_flipped_passes_run_the_windows_the_plan_gives(lite):
    image = _image()
    plain = hmsa_core.run_scales(lite, image, (0.5,), precision="fp32")
    env = 1 - plain[0.5].output.attention
    left, right = float(env[..., :, :48].amax()), float(env[..., :, 80:].amax())
    tau = (min(left, right) + max(left, right)) / 2
    limits = InputLimits(gate_tile=64, tile_overlap=32)
    options = hmsa_core.InferOptions(precision="fp32", gate=tau, flip=True, limits=limits)
    plan, ran = _check_runs_as_planned(lite, image, options)
    partial = [k for k, o in ran.items() if o.windows is not None and o.computed is not None]
    if not partial:
        pytest.skip("the attention of this image does not split the tiles")
    assert any(flip for _, flip in partial) and any(not flip for _, flip in partial)
    for key in partial:
        outcome = ran[key]
        p = plan.pass_for(*key)
        area = sum(w.area for w in outcome.windows)
        assert outcome.cost.flops == round(
            p.estimate.flops * area / (p.input_size[0] * p.input_size[1])
        )
        assert outcome.cost.flops + outcome.cost.flops_saved == p.flops


def test_options_are_checked_once_with_clear_messages(lite):
    with pytest.raises(ValueError, match=r"gate must be in \[0, 1\)"):
        hmsa_core.InferOptions(gate=1.5)
    with pytest.raises(ValueError, match="gate_by must be one of bound"):
        hmsa_core.InferOptions(gate_by="guess")
    with pytest.raises(ValueError, match="precision must be one of"):
        hmsa_core.InferOptions(precision="fp8")
    with pytest.raises(ValueError, match="hierarchical merge only"):
        hmsa_core.infer(_image(), CASCADE, model=lite, method="mean", gate=0.1, cache=None)
    options = hmsa_core.InferOptions(flip=True)
    assert plan_cascade(lite, (128, 256), CASCADE, options) is plan_cascade(
        lite, (128, 256), CASCADE, options
    )  # computed once
