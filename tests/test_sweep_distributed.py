"""The sweep under real ``torchrun`` (2 CPU processes, gloo) gives the table of one process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hmsa_core
from analysis.sweep import SweepTable
from hmsa_core.checkpoints.native import save_native
from hmsa_core.labels import CITYSCAPES

ARGS = [
    "--cascades",
    "1;0.5,1;0.5,1,2",
    "--methods",
    "hierarchical,mean,max,single,explicit",
    "--no-progress",
]


def _write_dataset(root: Path, n: int = 5) -> None:
    """Writes ``n`` blocky 64 x 128 images with masks in ``root/masks`` (an odd count: uneven shards)."""
    rng = np.random.default_rng(7)
    (root / "masks").mkdir(parents=True)
    for i in range(n):
        image = np.kron(rng.integers(0, 256, (8, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)
        mask = np.kron(rng.integers(0, 8, (4, 8)), np.ones((16, 16))).astype(np.uint8)
        mask[:2] = 255
        Image.fromarray(image).save(root / f"img{i}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / f"img{i}.png")


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_torchrun_processes_give_the_single_process_table(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun")
    assert torchrun is not None, "torchrun is not installed"
    _write_dataset(tmp_path / "data")
    torch.manual_seed(0)
    model = hmsa_core.build("lite", num_classes=19)
    with torch.no_grad():  # a random classifier that predicts many classes, not one
        model.classifier.weight.normal_(0, 1.0)
    checkpoint = save_native(model, tmp_path / "lite.safetensors")
    common = ["--model", str(checkpoint), "--data", str(tmp_path / "data"), *ARGS]

    _run([sys.executable, "-m", "analysis.sweep", *common, "--out", "one.csv"], tmp_path)
    done = _run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "analysis.sweep", *common,
         "--out", "two.csv"],
        tmp_path,
    )  # fmt: skip
    assert "(2 process(es))" in done.stdout

    one = SweepTable.from_csv(tmp_path / "one.csv", CITYSCAPES)
    two = SweepTable.from_csv(tmp_path / "two.csv", CITYSCAPES)
    assert one.num_images == two.num_images == 5
    assert [(r.cascade, r.method) for r in one.rows] == [(r.cascade, r.method) for r in two.rows]
    for a, b in zip(one.rows, two.rows):
        assert a.available == b.available
        if a.available:
            assert a.miou == b.miou and a.per_class_iou == b.per_class_iou, (a.cascade, a.method)
            assert a.pixel_accuracy == b.pixel_accuracy
        assert a.gflops == pytest.approx(b.gflops, rel=1e-12)
    assert len({r.miou for r in one.rows if r.available}) > 1  # the rows really differ
