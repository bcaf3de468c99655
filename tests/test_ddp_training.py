"""Real torchrun with 2 CPU processes (gloo): DDP training ends with identical weights on both ranks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hmsa_core.checkpoints.native import read_native_info
from tests.browser import free_port

TINY = '{"stem_channels": 8, "fine_channels": 8, "coarse_channels": 16, "head_channels": 16, "attn_channels": 4}'


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights(tmp_path) -> None:
    """Each rank trains on its own shard; the digests are taken before any broadcast, so only
    DDP's gradient all-reduce can make the parameters agree."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "hmsa_core.train",
        "--arch",
        "lite",
        "--hparams",
        TINY,
        "--scene-size",
        "64x128",
        "--train-scenes",
        "4",
        "--val-scenes",
        "1",
        "--crop",
        "32x64",
        "--batch",
        "4",
        "--steps",
        "3",
        "--lr",
        "0.05",
        "--val-every",
        "0",
        "--threads",
        "1",
        "--no-cost",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    digests = [(out / f"parameter_digest_rank{r}.txt").read_text() for r in (0, 1)]
    assert len(digests[0]) == 64
    assert digests[0] == digests[1]
    info = read_native_info(out / "model.safetensors")
    assert info.train_command.startswith("torchrun --nproc_per_node 2 -m hmsa_core.train")
    assert info.metrics["train"]["world_size"] == 2
    assert info.metrics["train"]["steps"] == 3
