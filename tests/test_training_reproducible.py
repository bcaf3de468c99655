"""Both training recipes rerun bit-identically on CPU, and a resume cannot change the thread count
(CPU kernels split their sums by thread count, so 1 and 2 threads give different weights)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hmsa_core.models.registry import build
from hmsa_core.train import TrainConfig, train
from tests.tiny_models import SMALL_LITE

SMALL = SMALL_LITE


def _config(arch: str, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        arch=arch,
        hparams=SMALL,
        scene_size=(96, 192),
        train_scenes=3,
        val_scenes=0,
        crop=(48, 96),
        batch=2,
        steps=3,
        lr=0.03,
        class_uniform=0.5,
        class_weight_power=0.5,
        val_every=0,
        out=out,
        threads=2,
    )
    return replace(base, **changes)


def _weights(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    result = train(cfg, command="test", measure_cost=False)
    assert result.checkpoint is not None
    return torch.load(result.checkpoint, weights_only=True)["model"]


@pytest.mark.parametrize("arch", ["lite", "explicit_lite"])
def test_two_runs_of_a_recipe_give_identical_weights(arch: str, tmp_path: Path) -> None:
    first = _weights(_config(arch, tmp_path / "a"))
    second = _weights(_config(arch, tmp_path / "b"))
    assert first.keys() == second.keys()
    different = [k for k in first if not torch.equal(first[k], second[k])]
    assert different == []
    # The runs trained: the weights are not the initialisation (same seed, same build).
    torch.manual_seed(_config(arch, tmp_path).seed)
    initial = build(arch, **SMALL).state_dict()
    assert any(not torch.equal(first[k], initial[k]) for k in first)


def test_training_leaves_the_global_determinism_settings_as_they_were(tmp_path: Path) -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.deterministic)
    train(_config("lite", tmp_path / "run", steps=1), command="test", measure_cost=False)
    after = (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.deterministic)
    assert after == before


def test_resuming_with_another_thread_count_is_refused(tmp_path: Path) -> None:
    train(_config("lite", tmp_path / "run", stop_after=1), command="test", measure_cost=False)
    changed = _config("lite", tmp_path / "run", resume=True, threads=1)
    with pytest.raises(ValueError, match=r"threads: 2 -> 1"):
        train(changed, command="test", measure_cost=False)
