"""The ``hmsa`` command: installed console script, subcommands with worked examples in their help,
both spellings of scales everywhere, and ``hmsa segment`` over files and folders."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hmsa_core
from analysis import cli, report, scale_stats, segment, sweep
from analysis.cascades import parse_cascades

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


def test_the_console_script_is_installed_and_lists_every_command() -> None:
    exe = shutil.which("hmsa")
    assert exe is not None, "pip install -e . installs the hmsa command"
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in cli.COMMANDS:
        assert name in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].strip().startswith("hmsa ")


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_subcommand_help_ends_with_a_worked_example(name: str, capsys) -> None:
    assert cli.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    tail = out.rstrip().splitlines()
    example_at = max(i for i, line in enumerate(tail) if line.startswith("example"))
    assert example_at >= len(tail) - 4, out
    assert any(("hmsa" in line or "python -m" in line) for line in tail[example_at + 1 :])


def test_an_unknown_command_is_refused_with_the_choices(capsys) -> None:
    assert cli.main(["segmnt"]) == 2
    assert "unknown command 'segmnt'; choose from segment, report" in capsys.readouterr().err


@pytest.mark.parametrize(
    "parser", [report.build_parser(), scale_stats.build_parser(), segment.build_parser()]
)
def test_both_spellings_of_scales_parse_the_same(parser) -> None:
    head = ["img.png"] if parser.prog == "hmsa segment" else []
    comma = parser.parse_args([*head, "--scales", "0.5,1,2"]).scales
    spaced = parser.parse_args([*head, "--scales", "0.5", "1", "2"]).scales
    mixed = parser.parse_args([*head, "--scales", "0.5,", "1", "2"]).scales
    assert comma == spaced == mixed == (0.5, 1.0, 2.0)
    assert parser.parse_args(head).scales == (0.5, 1.0, 2.0)


def test_a_bad_scale_is_a_usage_error_naming_it(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        report.build_parser().parse_args(["--scales", "0.5", "one"])
    assert stop.value.code == 2
    assert "'one' is not a number" in capsys.readouterr().err


def test_sweep_cascades_take_both_spellings() -> None:
    parser = sweep.build_parser()
    spaced = parse_cascades(parser.parse_args(["--cascades", "0.5", "1", "2"]).cascades)
    comma = parse_cascades(parser.parse_args(["--cascades", "0.5,1,2"]).cascades)
    several = parse_cascades(parser.parse_args(["--cascades", "0.5,1;0.5", "1", "2"]).cascades)
    assert spaced == comma == ((0.5, 1.0, 2.0),)
    assert several == ((0.5, 1.0), (0.5, 1.0, 2.0))


def _small_copy(src: Path, dst: Path, mask: bool = False) -> None:
    img = Image.open(src)
    img.resize((256, 128), Image.Resampling.NEAREST if mask else Image.Resampling.BILINEAR).save(
        dst
    )


def test_segment_writes_one_set_per_image_and_reports_a_bad_file(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    (folder / "masks").mkdir(parents=True)
    _small_copy(SAMPLES / "synthscapes_val_000.png", folder / "a.png")
    _small_copy(SAMPLES / "synthscapes_val_000_mask.png", folder / "masks" / "a.png", mask=True)
    _small_copy(SAMPLES / "synthscapes_val_001.png", folder / "b.png")
    _small_copy(SAMPLES / "synthscapes_val_001_mask.png", folder / "b_mask.png", mask=True)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    lone = tmp_path / "lone.png"
    _small_copy(SAMPLES / "synthscapes_val_002.png", lone)
    out = tmp_path / "out"

    code = cli.main(
        ["segment", str(folder), str(lone), "--scales", "0.5", "1", "--out", str(out),
         "--no-progress"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.png" in captured.err and "error:" in captured.err
    assert "wrote 3 of 4 image(s)" in captured.out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}.{ext}" for n in ("a", "b", "lone") for ext in ("png", "npz", "json")
    )
    expected = hmsa_core.infer(folder / "a.png", (0.5, 1.0), cache=None)
    mask_png = Image.open(out / "a.png")
    assert mask_png.mode == "P"
    assert np.array_equal(np.asarray(mask_png), expected.pred.numpy())
    maps = np.load(out / "a.npz")
    assert {"attention_0.5", "weights_0.5", "weights_1", "pred"} <= set(maps.files)
    assert "logits_1" not in maps.files  # only with --logits
    metrics = json.loads((out / "a.json").read_text())
    assert metrics["mask"].endswith("masks/a.png") and metrics["cascade"] == [0.5, 1.0]
    assert 0 < metrics["methods"]["hierarchical"]["miou"] <= 1
    assert json.loads((out / "b.json").read_text())["mask"].endswith("b_mask.png")
    lone_metrics = json.loads((out / "lone.json").read_text())
    assert lone_metrics["mask"] is None and "miou" not in lone_metrics["methods"]["hierarchical"]


def test_segment_refuses_missing_inputs_and_unknown_methods(tmp_path: Path, capsys) -> None:
    assert cli.main(["segment", str(tmp_path / "nowhere.png"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    image = tmp_path / "x.png"
    _small_copy(SAMPLES / "synthscapes_val_000.png", image)
    assert cli.main(["segment", str(image), "--method", "median", "--out", str(tmp_path)]) == 2
    assert "unknown merge method 'median'" in capsys.readouterr().err


def test_python_m_report_accepts_spaced_scales(tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    _small_copy(SAMPLES / "synthscapes_val_000.png", image)
    out = tmp_path / "r.html"
    code = report.main(
        ["--image", str(image), "--scales", "0.5", "1", "--no-subsets", "--methods",
         "hierarchical,mean", "--out", str(out)]
    )  # fmt: skip
    assert code == 0 and out.stat().st_size > 0


def test_hmsa_train_validates_with_the_analysis_scorer(tmp_path: Path) -> None:
    tiny = (
        '{"stem_channels": 8, "fine_channels": 8, "coarse_channels": 16, '
        '"head_channels": 16, "attn_channels": 4}'
    )
    code = cli.main(
        ["train", "--arch", "lite", "--hparams", tiny, "--scene-size", "64x128",
         "--train-scenes", "2", "--val-scenes", "1", "--crop", "32x64", "--batch", "2",
         "--steps", "2", "--val-every", "0", "--threads", "1", "--no-cost",
         "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 0
    from hmsa_core.checkpoints.native import read_native_info

    info = read_native_info(tmp_path / "run" / "model.safetensors")
    assert set(info.metrics["val"]) == {"HMSA (0.5, 1)", "HMSA (0.5, 1, 2)"}
    assert 0 <= info.metrics["val"]["HMSA (0.5, 1)"]["miou"] <= 1


def test_hmsa_download_offline_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    monkeypatch.setenv("HMSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "models"))
    assert cli.main(["download", "cityscapes", "--quiet"]) == 1
    assert "HMSA_OFFLINE" in capsys.readouterr().err
