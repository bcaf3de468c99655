"""The where-report of dataset runs: accumulated alongside the sweep, kept by a stopped run,
resumed by Continue, equal to one pass over every image; and 2 torchrun ranks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hmsa_core
from analysis import dataset_runs
from analysis.dataset_sources import DataSource
from analysis.sweep import sweep
from analysis.where_scales import WhereAccumulator
from hmsa_core.data.synthscapes import SynthScapes

SIZE = (64, 128)
CASCADES = [(0.5, 1.0), (0.5, 1.0, 2.0)]


@pytest.fixture(scope="module")
def model():
    return hmsa_core.load_model("hmsa-lite")


def test_stopped_run_keeps_the_where_report_and_continue_completes_it(model, tmp_path, monkeypatch):
    monkeypatch.setenv(dataset_runs.RESULTS_DIR_ENV, str(tmp_path / "results"))
    spec = dataset_runs.make_spec(
        "hmsa-lite", "w1", DataSource("synthscapes", count=3, size=SIZE), CASCADES, ["hierarchical"]
    )
    stopped = dataset_runs.run_dataset(spec, model, progress=lambda d, t, s: d >= 1)
    kept = stopped.where()
    assert kept is not None and kept.report is not None
    assert kept.report.num_images == 1 and [i for i, _ in kept.images] == [0]
    assert kept.report.object_source == "instances+components"
    assert kept.report.size.by_distance is not None

    resumed = dataset_runs.run_dataset(spec, model).where()
    assert resumed is not None and resumed.report.num_images == 3
    assert sorted(i for i, _ in resumed.images) == [0, 1, 2]

    acc = WhereAccumulator(model.labels, (0.5, 1.0, 2.0), model=model)
    sweep(model, SynthScapes("val", 3, SIZE), CASCADES, ["hierarchical"], progress=False, where=acc)
    assert json.dumps(resumed.report.to_dict()) == json.dumps(acc.report().to_dict())
    ranked = resumed.ranking()
    gains = [w.gain for _, w in ranked if w.gain == w.gain]
    assert gains == sorted(gains, reverse=True)


def _rounded(value: object) -> object:
    """Returns ``value`` with every float rounded to 9 digits (sums added in another order)."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_the_sweep_hands_its_merges_over_and_the_numbers_do_not_change(model) -> None:
    data = SynthScapes("val", 2, SIZE)
    fed = WhereAccumulator(model.labels, (0.5, 1.0, 2.0), model=model)
    sweep(model, data, [(0.5, 1.0, 2.0)], ["hierarchical", "mean", "max", "single"],
          progress=False, where=fed)  # fmt: skip
    alone = WhereAccumulator(model.labels, (0.5, 1.0, 2.0), model=model)
    for sample in data:
        result = hmsa_core.infer(sample.image, (0.5, 1.0, 2.0), model=model, cache=None)
        alone.add_outputs(result.per_scale, result.size, sample.mask, sample.instances,
                          sample.object_distance, sample.name)  # fmt: skip
    assert _rounded(fed.report().to_dict()) == _rounded(alone.report().to_dict())
    assert [i.name for i in fed.images] == [i.name for i in alone.images]


@pytest.mark.slow
def test_two_torchrun_ranks_give_the_single_process_where_report(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun")
    assert torchrun is not None, "torchrun is not installed"
    from hmsa_core.data.synthscapes import write_samples

    data = tmp_path / "data"
    write_samples(data, count=3, size=(48, 96), colors=0)
    (data / "masks").mkdir()
    for p in data.glob("*_mask.png"):
        p.rename(data / "masks" / p.name.replace("_mask", ""))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # fmt: skip
    common = ["-m", "analysis.where_cli", "--data", str(data), "--scales", "0.5,1", "--no-progress"]
    for command in (
        [sys.executable, *common, "--json", "one.json"],
        [torchrun, "--standalone", "--nproc_per_node", "2", *common, "--json", "two.json"],
    ):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert "(2 process(es))" in done.stdout
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["num_images"] == two["num_images"] == 3
    for key in ("summary", "size", "boundary", "calibration"):  # sums in another order
        assert _rounded(one[key]) == _rounded(two[key]), key
    assert sorted(i["name"] for i in one["images"]) == sorted(i["name"] for i in two["images"])
