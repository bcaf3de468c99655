"""Gate criteria (DESIGN 1.8) and the windows gated passes run in: each criterion skips exactly
the tiles it should on hand-built maps, a gate that skips nothing is bit-identical to the
ungated cascade, batched kept windows equal unbatched ones (and the whole pass) for the lite
model, and the sweep's gated rows spend the FLOPs the cost report gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import hmsa_core
from analysis.figures import pareto_figure
from analysis.sweep import SweepTable, main, parse_gate_by, sweep
from hmsa_core.data.synthscapes import SynthScapes
from hmsa_core.gating import (
    GATE_OUTLIER_SHARE,
    footprint_radius,
    merge_rectangles,
    needed_tiles_by,
    tile_rectangles,
)
from hmsa_core.models.base import ScaleOutput
from hmsa_core.tiling import batch_groups, kept_window, run_batched

TILE = 8
SIZE = (32, 48)  # 4 x 6 tiles


def output(attention: torch.Tensor, logits: torch.Tensor | None = None) -> ScaleOutput:
    """Returns a batch-1 ScaleOutput of an ``(h, w)`` attention (logits 0 unless given)."""
    h, w = attention.shape
    if logits is None:
        logits = torch.zeros((1, 3, h, w))
    return ScaleOutput(logits=logits, attention=attention[None, None])


def attention_map() -> tuple[torch.Tensor, dict[tuple[int, int], str]]:
    """Returns an attention map of :data:`SIZE` whose remaining weight ``1 - a`` is 0.1 on
    every tile except: (0, 0) all 0.9; (1, 1) 3 pixels (4.7%) at 0.9; (2, 2) 4 pixels (6.3%)
    at 0.9; and the tiles' expected fate under ``"attention"`` at tau 0.3."""
    rest = torch.full(SIZE, 0.1)
    rest[0:8, 0:8] = 0.9
    rest[9, 9:12] = 0.9  # 3 of 64 pixels: at most the stated 5%
    rest[17, 17:21] = 0.9  # 4 of 64 pixels: more than 5%
    assert 3 / 64 <= GATE_OUTLIER_SHARE < 4 / 64
    return 1 - rest, {(0, 0): "keep", (1, 1): "skip", (2, 2): "keep"}


def test_the_attention_criterion_skips_tiles_all_but_the_stated_share_below_tau():
    attention, fate = attention_map()
    needed = needed_tiles_by("attention", {1.0: output(attention)}, SIZE, 2, TILE, 0.3)
    expected = torch.zeros((4, 6), dtype=torch.bool)
    for (r, c), what in fate.items():
        expected[r, c] = what == "keep"
    assert torch.equal(needed, expected)


def test_the_bound_criterion_keeps_every_tile_a_deferring_pixel_can_reach():
    attention, _ = attention_map()
    needed = needed_tiles_by("bound", {1.0: output(attention)}, SIZE, 2, TILE, 0.3)
    radius = footprint_radius(2)
    above = (1 - attention).numpy() > 0.3
    reach = ndimage.binary_dilation(above, np.ones((2 * radius + 1,) * 2, bool))
    expected = torch.from_numpy(reach.reshape(4, TILE, 6, TILE).any(axis=(1, 3)))
    assert torch.equal(needed, expected)
    assert bool(needed[1, 1])  # the 3 outliers keep this tile under the bound


def confident_logits(top: torch.Tensor) -> torch.Tensor:
    """Returns ``(1, 3, h, w)`` logits whose softmax has top probability ``top`` ``(h, w)``
    (class 0; the two others share the rest)."""
    share = (1 - top) / 2
    return torch.stack([top.log(), share.log(), share.log()])[None]


def test_the_confidence_criterion_reads_the_merge_of_the_lower_scales():
    top = torch.full(SIZE, 0.99)
    top[8:16, 0:8] = 0.5  # tile (1, 0) unsure everywhere
    top[0, 8:11] = 0.5  # tile (0, 1): 3 pixels unsure (skipped)
    top[24, 40:44] = 0.5  # tile (3, 5): 4 pixels unsure (kept)
    low = output(torch.full(SIZE, 0.5), confident_logits(top))
    needed = needed_tiles_by("confidence", {1.0: low}, SIZE, 2, TILE, 0.05)
    expected = torch.zeros((4, 6), dtype=torch.bool)
    expected[1, 0] = expected[3, 5] = True
    assert torch.equal(needed, expected)
    # Two lower scales: a confident 0.5 that leaves all its weight to an unsure 1.0 is unsure.
    half = (SIZE[0] // 2, SIZE[1] // 2)
    sure = output(torch.zeros(half), confident_logits(torch.full(half, 0.999)))
    unsure = output(torch.full(SIZE, 0.5), confident_logits(torch.full(SIZE, 0.5)))
    lower = {0.5: sure, 1.0: unsure}
    assert bool(needed_tiles_by("confidence", lower, SIZE, 3, TILE, 0.05).all())
    assert not bool(needed_tiles_by("confidence", {0.5: sure}, SIZE, 3, TILE, 0.05).any())


def test_unknown_criteria_are_refused_with_the_names():
    with pytest.raises(ValueError, match="bound, attention, confidence"):
        hmsa_core.InferOptions(gate=0.1, gate_by="guess")
    with pytest.raises(ValueError, match="is not a gate criterion"):
        parse_gate_by("attention,guess")
    assert parse_gate_by("attention, confidence") == ("attention", "confidence")
    assert hmsa_core.InferOptions(gate=0.1, gate_by="confidence").gate_approximate
    assert not hmsa_core.InferOptions(gate=0.1).gate_approximate


@pytest.fixture(scope="module")
def model():
    return hmsa_core.load_model("hmsa-lite", "cpu")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return SynthScapes("val", 1, size=(128, 256))[0].image


@pytest.mark.parametrize("criterion", ["attention", "confidence"])
def test_a_gate_that_skips_nothing_is_bit_identical_to_ungated(model, scene, criterion):
    plain = hmsa_core.infer(scene, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32")
    gated = hmsa_core.infer(
        scene,
        (0.5, 1.0, 2.0),
        model=model,
        cache=None,
        precision="fp32",
        gate=1e-7,
        gate_by=criterion,
    )
    assert torch.equal(plain.logits, gated.logits)
    for s in plain.scales:
        assert gated.per_scale[s].computed is None
    assert gated.cost.flops == plain.cost.flops and gated.cost.flops_saved == 0
    assert gated.cost.gate_by == criterion and gated.gate_approximate
    assert "approximate" in gated.gate_note and "2: 0%" in gated.gate_note


def test_a_gated_result_reports_its_criterion_and_skipped_share(model, scene):
    result = hmsa_core.infer(
        scene, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32", gate=0.9,
        gate_by="attention", limits=hmsa_core.InputLimits(gate_tile=32),
    )  # fmt: skip
    top = result.per_scale[2.0].cost
    assert top.gate_by == "attention" and top.gate == 0.9
    assert top.skipped_fraction > 0  # a tau of 0.9 skips some of 2.0 on a trained model
    assert top.skipped_fraction == pytest.approx(1 - top.computed_fraction)
    assert result.per_scale[0.5].cost.gate_by == ""  # the lowest scale is never gated
    assert f"2: {100 * top.skipped_fraction:.0f}%" in result.gate_note


def test_batched_kept_windows_equal_unbatched_ones_and_the_whole_pass(model):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((1, 3, 192, 320), generator=gen)
    margin = model.context_margin
    cores = [(0, 64, 0, 64), (64, 128, 128, 192), (128, 192, 256, 320), (0, 64, 192, 256)]
    windows = [kept_window(core, (192, 320), margin, model.tile_alignment) for core in cores]
    assert len({w.size for w in windows}) == 1  # shifted inside the image, not clipped
    assert len(batch_groups(windows, 10**9)) == 1
    with torch.no_grad():
        batched = run_batched(model, x, windows, 10**9)
        single = run_batched(model, x, windows, 1)  # one window per call
        whole = model(x)
    assert torch.equal(batched.covered, single.covered)
    for core in cores:
        t, b, left, r = core
        assert bool(batched.covered[t:b, left:r].all())
        for name in ("logits", "attention"):
            got = getattr(batched.output, name)[..., t:b, left:r]
            one = getattr(single.output, name)[..., t:b, left:r]
            ref = getattr(whole, name)[..., t:b, left:r]
            assert float((got - one).abs().max()) <= 1e-5
            assert float((got - ref).abs().max()) <= 1e-5
    assert int(batched.covered.sum()) == 4 * 64 * 64


def test_merged_rectangles_cover_the_needed_tiles_without_overlap():
    needed = torch.rand((8, 16), generator=torch.Generator().manual_seed(1)) > 0.6
    rects = merge_rectangles(tile_rectangles(needed), 128, 48)
    cover = torch.zeros_like(needed)
    for r0, r1, c0, c1 in rects:
        assert not bool(cover[r0:r1, c0:c1].any())
        cover[r0:r1, c0:c1] = True
    assert bool(cover[needed].all())
    assert len(rects) <= len(tile_rectangles(needed))


def test_the_sweeps_gate_rows_spend_the_flops_of_the_cost_report(model):
    data = SynthScapes("val", 1, size=(128, 256))
    table = sweep(
        model, data, [(0.5, 1.0, 2.0)], ["hierarchical"], precision="fp32", progress=False,
        gates=(0.0, 0.9), gate_by=("attention", "confidence"),
    )  # fmt: skip
    labels = {(r.gate, r.gate_by) for r in table.rows}
    assert labels == {(0.0, ""), (0.9, "attention"), (0.9, "confidence")}
    for criterion in ("attention", "confidence"):
        row = table.row((0.5, 1.0, 2.0), "hierarchical", 0.9, gate_by=criterion)
        result = hmsa_core.infer(
            data[0].image, (0.5, 1.0, 2.0), model=model, cache=None, precision="fp32",
            gate=0.9, gate_by=criterion,
        )  # fmt: skip
        assert row.gflops == pytest.approx(result.cost.gflops, rel=1e-12)
        assert not math.isnan(row.miou)
    assert "(gate 0.9, attention)" in table.to_markdown()
    assert "% of ungated GFLOPs" in table.to_markdown()


def test_the_gate_criterion_survives_the_csv(model, tmp_path):
    data = SynthScapes("val", 1, size=(64, 128))
    table = sweep(
        model, data, [(0.5, 1.0)], ["hierarchical"], precision="fp32", progress=False,
        gates=(0.5,), gate_by=("confidence",),
    )  # fmt: skip
    back = SweepTable.from_csv(table.to_csv(tmp_path / "s.csv"), table.labels)
    assert [(r.gate, r.gate_by) for r in back.rows] == [(r.gate, r.gate_by) for r in table.rows]
    for x, title in (("gflops", "GFLOPs per image"), ("seconds", "seconds per image")):
        fig = pareto_figure(back, x)  # the dataset page's chart, gate points per criterion
        names = [trace.name for trace in fig.data]
        assert "hierarchical gated by confidence" in names and "hierarchical" in names
        assert fig.layout.xaxis.title.text == title
        gated = next(t for t in fig.data if t.name == "hierarchical gated by confidence")
        row = back.row((0.5, 1.0), "hierarchical", 0.5, gate_by="confidence")
        assert list(gated.x) == [getattr(row, x)]


def test_the_sweep_command_refuses_an_unknown_criterion(capsys):
    code = main(["--data", "synthscapes:val:1", "--gates", "0.1", "--gate-by", "guess"])
    assert code == 2
    assert "not a gate criterion" in capsys.readouterr().err
