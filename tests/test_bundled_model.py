"""The bundled models load with no argument, carry their provenance and segment val scenes well."""

from __future__ import annotations

import pytest
import torch

import hmsa_core
from analysis.sweep import sweep
from hmsa_core.api import bundled_model_path
from hmsa_core.checkpoints.native import read_native_info
from hmsa_core.data.synthscapes import SynthScapes


@pytest.fixture(scope="module")
def val_scenes() -> list:
    return SynthScapes("val", 2, (512, 1024))[:]


def test_default_model_is_the_bundled_hmsa_with_its_training_record() -> None:
    model = hmsa_core.load_model()
    assert model.arch == "lite" and model.has_attention
    info = model.checkpoint_info
    assert info.train_command.startswith("python -m hmsa_core.train --arch lite")
    assert info.metrics["val"]["HMSA (0.5, 1, 2)"]["miou"] > 0
    assert info.metrics["train_cost"]["flop_ratio"] > 3
    assert bundled_model_path("hmsa-lite").stat().st_size < 10_000_000  # the limit


def test_bundled_hmsa_beats_chance_by_a_wide_margin(val_scenes) -> None:
    torch.set_num_threads(2)
    model = hmsa_core.load_model("hmsa-lite", "cpu")
    row = sweep(model, val_scenes, [(0.5, 1.0)], ["hierarchical"], progress=False).rows[0]
    present = len(row.per_class_iou)
    assert present >= 8
    # Chance: a constant or random prediction scores mIoU below 1/present.
    assert row.miou > 4 / present
    assert row.pixel_accuracy > 0.7


def test_bundled_explicit_model_runs_only_its_cascade(val_scenes) -> None:
    model = hmsa_core.load_model("explicit-lite", "cpu")
    info = read_native_info(bundled_model_path("explicit-lite"))
    assert info.train_command.startswith("python -m hmsa_core.train --arch explicit_lite")
    assert tuple(info.hparams["train_scales"]) == (0.5, 1.0, 2.0)
    result = hmsa_core.infer(val_scenes[0].image, (0.5, 1.0, 2.0), model=model, method="explicit")
    assert result.pred.shape == (512, 1024)
    total = sum(result.weights.values())
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="trained for"):
        result.remerge("explicit", (0.5, 1.0), model=model)
