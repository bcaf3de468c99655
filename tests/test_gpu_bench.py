"""``python -m analysis.bench gpu``: on CUDA it times eager, CUDA graphs, streams, gating and
``torch.compile`` side by side (run by scripts/gpu_check.sh on a lent GPU); without CUDA it
refuses with the fix, and ``--device cpu`` runs the rows that need no GPU, so the table's
wiring is checked here."""

from __future__ import annotations

import pytest
import torch

from analysis.bench.gpu import Measured, decide_auto, main


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_without_cuda_the_gpu_bench_says_how_to_run_its_cpu_rows(capsys):
    assert main(["--size", "64x128"]) == 2
    assert "needs CUDA (or --device cpu)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_cpu_rows_print_agreement_with_fp32_and_with_eager_auto(capsys):
    argv = ["--device", "cpu", "--size", "64x128", "--repeats", "1", "--checkpoint", "recipe"]
    assert main([*argv, "--gates", "0.02", "--gate-by", "bound", "confidence"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("command: python -m analysis.bench gpu --device cpu")
    assert "316 BatchNorms folded" in out  # every BatchNorm of the official model
    decision = out.strip().splitlines()[-1]
    # timing decides between eager and the (exact) tiled row; a gated row never qualifies
    assert decision.startswith(("auto on CUDA: keep eager", "auto on CUDA: auto, tiled")), decision
    assert "gate" not in decision
    rows = {
        cells[1].strip(): [c.strip() for c in cells[2:-1]]
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith("| path")
        for cells in [line.split("|")]
    }
    assert list(rows) == [
        "fp32 (TF32 off)",
        "bf16 autocast, unfolded (before folding)",
        "auto: bf16 folded channels-last, eager",
        "auto, tiled at 2,097,152 px",
        "auto + gate 0.02, eager",
        "auto + gate 0.02 by confidence, eager",
    ]  # graphs, streams and compile rows need CUDA
    assert rows["fp32 (TF32 off)"][5] == "100.000%"
    assert rows["auto: bf16 folded channels-last, eager"][6] == "100.000%"
    for cells in rows.values():
        assert float(cells[0]) > 0 and set(cells[2].split()) >= {"0.5:", "1:", "2:"}


def test_auto_takes_the_fastest_exact_path_without_a_long_first_call():
    eager = Measured("auto: bf16 folded channels-last, eager", 0.28, 0.7, True)
    graphs = Measured("fast: CUDA graphs, every scale", 0.24, 0.7, True)
    gated = Measured("graphs every scale + gate 0.02", 0.16, 0.6, True, gated=True)
    compiled = Measured("fast: torch.compile, every scale", 0.21, 89.0, True)
    line = decide_auto([eager, graphs, gated, compiled])
    assert line.startswith("auto on CUDA: fast: CUDA graphs, every scale (0.2400 s, 86%")
    assert "keep eager" in decide_auto([eager, gated, compiled])
