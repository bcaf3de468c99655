"""Two-scale HMSA training and the explicit baseline learn; checkpoints resume at the right step."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hmsa_core.checkpoints.native import read_native_info
from hmsa_core.models.registry import build
from hmsa_core.train import TrainConfig, train
from hmsa_core.train.augment import AugmentParams, random_crop
from hmsa_core.train.config import build_parser, config_from_args
from hmsa_core.train.loop import SceneBank, StepModule, load_scenes, make_optimizer, train_step
from hmsa_core.train.losses import class_weights
from tests.tiny_models import SMALL_LITE

SMALL = SMALL_LITE


def _fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    bank = load_scenes([0, 1], (64, 128), seed=0)
    params = AugmentParams((64, 128), 1.0, 1.0, 0.0)
    rng = np.random.default_rng(0)
    crops = [random_crop(bank.images[i], bank.masks[i], params, rng) for i in range(2)]
    rgb = torch.stack([c[0] for c in crops])
    target = torch.stack([c[1] for c in crops])
    return (rgb - 0.45) / 0.25, target


@pytest.mark.parametrize("arch", ["lite", "explicit_lite"])
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(arch: str) -> None:
    torch.manual_seed(0)
    model = build(arch, **SMALL).train()
    step = StepModule(model)
    assert step.scales == ((0.5, 1.0) if arch == "lite" else (0.5, 1.0, 2.0))
    cfg = TrainConfig(arch=arch, lr=0.05)
    optimizer = make_optimizer(model, cfg)
    x, target = _fixed_batch()
    losses = [train_step(step, optimizer, x, target, cfg.lr) for _ in range(12)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0]


def test_hmsa_loss_trains_the_attention_only_through_the_low_scale() -> None:
    torch.manual_seed(0)
    model = build("lite", **SMALL).train()
    x, target = _fixed_batch()
    total, main, joint = StepModule(model)(x, target)
    assert joint.shape == (2, 19, 64, 128)
    assert float(total.detach()) > float(main.detach()) > 0
    total.backward()
    assert model.scale_attn.out.weight.grad is not None
    assert float(model.scale_attn.out.weight.grad.abs().sum()) > 0


def test_random_crop_has_the_crop_size_and_keeps_labels_aligned() -> None:
    image = torch.zeros((64, 128, 3), dtype=torch.uint8)
    image[:, 64:] = 255
    mask = torch.zeros((64, 128), dtype=torch.uint8)
    mask[:, 64:] = 10
    bank = SceneBank(image[None], mask[None])
    params = AugmentParams((32, 64), 0.5, 2.0, 0.0)
    rng = np.random.default_rng(1)
    for _ in range(10):
        rgb, target = random_crop(bank.images[0], bank.masks[0], params, rng)
        assert rgb.shape == (3, 32, 64) and target.shape == (32, 64)
        labelled = target != 255
        bright = rgb.mean(0) > 0.5
        # Bilinear image vs nearest mask may differ only on the one-pixel boundary.
        agree = (bright[labelled] == (target[labelled] == 10)).float().mean()
        assert float(agree) > 0.9


def _tiny_config(tmp_path, steps: int, resume: bool = False, stop_after: int = 0) -> TrainConfig:
    return TrainConfig(
        arch="lite",
        hparams=SMALL,
        scene_size=(64, 128),
        train_scenes=3,
        val_scenes=1,
        crop=(32, 64),
        batch=2,
        steps=steps,
        lr=0.02,
        val_every=0,
        ckpt_every=2,
        out=tmp_path / "run",
        resume=resume,
        threads=1,
        stop_after=stop_after,
    )


def test_resume_continues_at_the_checkpointed_step(tmp_path) -> None:
    first = train(_tiny_config(tmp_path, 6, stop_after=4), command="test", measure_cost=False)
    assert first.steps == 4 and len(first.losses) == 4
    assert first.checkpoint is not None and first.checkpoint.is_file()
    state = torch.load(first.checkpoint, weights_only=True)
    assert state["step"] == 4
    second = train(_tiny_config(tmp_path, 6, resume=True), command="test", measure_cost=False)
    assert second.start_step == 4 and second.steps == 6 and len(second.losses) == 2
    # The same 6 steps in one go give the same weights (batches depend only on seed and step).
    straight = train(_tiny_config(tmp_path / "again", 6), command="test", measure_cost=False)
    a = torch.load(second.checkpoint, weights_only=True)["model"]
    b = torch.load(straight.checkpoint, weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    info = read_native_info(second.weights)
    assert info.train_command == "test" and "val" in info.metrics


def test_resume_with_a_different_config_is_refused(tmp_path) -> None:
    train(_tiny_config(tmp_path, 6, stop_after=2), command="test", measure_cost=False)
    changed = replace(_tiny_config(tmp_path, 6, resume=True), lr=0.5)
    with pytest.raises(ValueError, match=r"another config \(lr: 0.02 -> 0.5\)"):
        train(changed, command="test", measure_cost=False)


def test_cli_flags_build_the_config(tmp_path) -> None:
    args = build_parser().parse_args(
        ["--arch", "explicit_lite", "--crop", "128x256", "--steps", "10", "--out", str(tmp_path)]
    )
    cfg = config_from_args(args)
    assert cfg.arch == "explicit_lite" and cfg.crop == (128, 256) and cfg.steps == 10
    with pytest.raises(ValueError, match="JSON"):
        config_from_args(build_parser().parse_args(["--hparams", "{bad"]))
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def test_class_weights_favour_rare_classes_and_keep_the_mean_weight() -> None:
    counts = torch.tensor([900, 90, 9, 0, 1])
    assert class_weights(counts, 0.0) is None
    w = class_weights(counts, 0.5)
    assert w is not None
    assert w[4] > w[2] > w[1] > w[0]
    mean = float((w * counts).sum() / counts.sum())
    assert abs(mean - 1.0) < 1e-5


def test_class_uniform_crops_show_rare_classes_more_often() -> None:
    image = torch.zeros((64, 256, 3), dtype=torch.uint8)
    mask = torch.zeros((64, 256), dtype=torch.uint8)
    mask[30:34, 250:252] = 5  # a tiny pole at the right edge
    plain = AugmentParams((32, 64), 1.0, 1.0, 0.0, class_uniform=0.0)
    uniform = AugmentParams((32, 64), 1.0, 1.0, 0.0, class_uniform=1.0)
    rng = np.random.default_rng(0)
    hits_plain = sum(bool((random_crop(image, mask, plain, rng)[1] == 5).any()) for _ in range(40))
    hits_uniform = sum(
        bool((random_crop(image, mask, uniform, rng)[1] == 5).any()) for _ in range(40)
    )
    assert hits_uniform >= 15 > hits_plain
