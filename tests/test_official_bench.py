"""``python -m analysis.bench official`` runs its configurations side by side and reports
agreement with the first; bad arguments get one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.bench.official_compare import main

PHOTO = sorted((Path(__file__).resolve().parents[1] / "assets" / "samples").glob("photo_*.jpg"))[0]


@pytest.mark.slow
def test_the_side_by_side_table_has_every_row_and_the_reference_agrees_with_itself(capsys):
    argv = ["--size", "64x128", "--scales", "0.5,1", "--configs", "fp32,auto+gate0.02"]
    assert main([*argv, "--image", str(PHOTO), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| fp32") or "gate0.02" in line]
    assert len(rows) == 2
    reference = [cell.strip() for cell in rows[0].split("|")]
    assert reference[11] == "100.00%" and reference[12] == "0.000 / 0.0000"
    assert reference[13] == reference[14] == "-"
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
    auto = next(line for line in out.splitlines() if line.startswith("| auto"))
    assert float(auto.split("|")[11].strip().rstrip("%")) > 50.0  # same image, same weights
    # The exact-tile gating column: numbers on the gated row only. (At 64 x 128 no tile is
    # skipped; the bound itself is tested in tests/test_attention_gating.py.)
    assert auto.split("|")[13].strip() == "-"
    gated = next(line for line in out.splitlines() if line.startswith("| fp32+gate")).split("|")
    moved, bound = (float(v) for v in gated[13].split("/"))
    assert moved >= 0 and bound >= 0
