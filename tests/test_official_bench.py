"""``python -m analysis.bench official`` runs its configurations side by side and reports
agreement with the first; bad arguments get one clear line and exit code 2.
``python -m analysis.bench official-scales`` prints per-scale tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.bench.official_compare import main, run_one
from analysis.bench.official_scales import main as scales_main
from hmsa_core.limits import DEFAULT_LIMITS

PHOTO = sorted((Path(__file__).resolve().parents[1] / "assets" / "samples").glob("photo_*.jpg"))[0]
AGREEMENT = "argmax agreement"
LOGIT_DIFF = "max / mean abs logit diff"
EXACT_GATING = "exact-tile gating: moved / bound"
MARGIN = "max ref. margin at a disagreement"
COMPUTED = "computed per scale"


def table_rows(out: str) -> dict[str, dict[str, str]]:
    """Returns configuration -> column header -> cell of the printed markdown table."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(headers, row)) for row in rows}


@pytest.mark.slow
def test_the_side_by_side_table_has_every_row_and_the_reference_agrees_with_itself(capsys):
    argv = ["--size", "64x128", "--scales", "0.5,1", "--configs", "fp32,auto+gate0.02"]
    assert main([*argv, "--image", str(PHOTO), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert list(rows) == ["fp32", "auto+gate0.02"]
    reference = rows["fp32"]
    assert reference[AGREEMENT] == "100.00%" and reference[LOGIT_DIFF] == "0.000 / 0.0000"
    assert reference[EXACT_GATING] == reference[MARGIN] == "-"
    assert PHOTO.name in out and "top-2 logit margin" in out


def test_bad_arguments_get_one_line_and_exit_code_2(capsys, tmp_path):
    assert main(["--configs", "fp32,warp"]) == 2
    assert "unknown configuration" in capsys.readouterr().err
    assert main(["--image", str(tmp_path / "missing.jpg")]) == 2
    assert "no image file" in capsys.readouterr().err
    assert main(["--image", "fixture", "--size", "512x1024"]) == 2
    assert "pass --size 64x128" in capsys.readouterr().err


@pytest.mark.slow
def test_the_fixture_input_runs_at_its_own_size_with_the_recipe_weights(capsys):
    argv = ["--image", "fixture", "--size", "64x128", "--checkpoint", "recipe"]
    assert main([*argv, "--scales", "0.5,1,2", "--configs", "fp32,auto,fp32+gate0.02"]) == 0
    out = capsys.readouterr().out
    assert "the golden fixtures' input" in out and "weights recipe" in out
    rows = table_rows(out)
    auto = rows["auto"]
    assert float(auto[AGREEMENT].rstrip("%")) > 50.0  # same image, same weights
    # The exact-tile gating column: numbers on the gated row only. At 64 x 128 and tau 0.02
    # every tile of this input runs (computed fraction 1.00), so gating moves nothing and the
    # bound over no skipped tile is 0.
    assert auto[EXACT_GATING] == "-"
    gated = rows["fp32+gate0.02"]
    moved, bound = (float(v) for v in gated[EXACT_GATING].split("/"))
    assert (moved, bound) == (0.0, 0.0)
    assert gated[COMPUTED] == "0.5: 1.00, 1: 1.00, 2: 1.00"


@pytest.mark.slow
def test_exact_tile_gating_that_skips_tiles_moves_the_logits_within_the_bound(tmp_path):
    spec = {
        "checkpoint": "recipe",
        "size": [64, 128],
        "scales": [0.5, 1.0, 2.0],
        "precision": "fp32",
        "gate": 0.0,
        "max_tile_pixels": DEFAULT_LIMITS.max_tile_pixels,
        "image": "fixture",
        "pred_path": str(tmp_path / "pred.npy"),
        "exact_gates": [0.02, 0.5],
    }
    exact = run_one(spec)["exact_gating"]
    assert exact["0.02"] == (0.0, 0.0)  # nothing skipped at 0.02 (as the table shows)
    moved, bound = exact["0.5"]
    assert 0.0 < moved <= bound  # at 0.5 tiles are skipped: the logits move, within the bound


@pytest.mark.slow
def test_the_per_scale_program_prints_each_scale_and_a_total(capsys):
    assert scales_main(["--size", "64x128", "--cascades", "0.5,1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert [r[0] for r in rows[1:]] == ["0.5", "1", "total"]
    assert [r[1] for r in rows[1:3]] == ["32x64", "64x128"]
    assert float(rows[3][2]) == pytest.approx(float(rows[1][3]) + float(rows[2][3]), abs=0.2)
    assert "counted FLOPs of one 1024x2048 pass" in out
