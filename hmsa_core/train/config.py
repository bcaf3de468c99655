"""The training configuration: one frozen dataclass, built from CLI flags."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

HMSA_TRAIN_SCALES: tuple[float, ...] = (0.5, 1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (the official recipe's values by default).

    Attributes:
        arch: registry architecture (``lite`` trains HMSA on (0.5, 1); ``explicit_lite`` the
            explicit baseline on its ``train_scales``).
        hparams: architecture hyper-parameters.
        scene_size: ``(H, W)`` of the generated SynthScapes scenes.
        train_scenes: number of training scenes (generated once, kept in memory).
        val_scenes: number of val scenes for the periodic validation.
        crop: ``(h, w)`` training crop.
        batch: global batch size (split over DDP ranks).
        steps: optimiser steps.
        lr: initial learning rate; poly decay ``lr * (1 - step/steps) ** poly_power``.
        poly_power: exponent of the poly schedule.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        scale_min, scale_max: random rescaling range of the scene before cropping.
        jitter: colour-jitter strength (brightness, contrast, saturation).
        class_uniform: share of crops centred on a uniformly drawn class of the scene.
        class_weight_power: cross-entropy class weights ``(median_freq / freq_c) ** power``
            from the training pixels (0: plain cross-entropy, the official criterion).
        aux_weight: weight of the auxiliary loss (models with an aux head).
        scale_loss_weight: weight of the per-scale supervision of each training scale.
        val_every: validate every this many steps (0: only at the end).
        ckpt_every: write the resumable checkpoint every this many steps.
        seed: seed of data order, augmentation and initialisation.
        out: output folder (checkpoint, final weights, log).
        resume: continue from ``out/checkpoint.pt`` when it exists.
        threads: torch intra-op threads per process. Part of the recipe: CPU kernels split
            their sums by thread count, so the weights are bit-identical between runs with the
            same threads and differ (slightly) between thread counts; a resume must keep it.
        data_seed: the SynthScapes dataset seed.
        stop_after: stop (checkpointed) once this many steps are done, to train in chunks on
            a shared machine and ``resume`` later; 0 runs to ``steps``. The schedule always
            follows ``steps``.
    """

    arch: str = "lite"
    hparams: dict = field(default_factory=dict)
    scene_size: tuple[int, int] = (512, 1024)
    train_scenes: int = 300
    val_scenes: int = 20
    crop: tuple[int, int] = (256, 512)
    batch: int = 8
    steps: int = 2000
    lr: float = 5e-3
    poly_power: float = 2.0
    momentum: float = 0.9
    weight_decay: float = 1e-4
    scale_min: float = 0.5
    scale_max: float = 2.0
    jitter: float = 0.25
    class_uniform: float = 0.5
    class_weight_power: float = 0.0
    aux_weight: float = 0.4
    scale_loss_weight: float = 0.05
    val_every: int = 500
    ckpt_every: int = 100
    seed: int = 0
    out: Path = Path("runs/train")
    resume: bool = False
    threads: int = 2
    data_seed: int = 0
    stop_after: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append("steps must be >= 1")
        if self.batch < 1:
            problems.append("batch must be >= 1")
        if not 0 < self.scale_min <= self.scale_max:
            problems.append("need 0 < scale_min <= scale_max")
        if any(c < 16 for c in self.crop) or any(s < 16 for s in self.scene_size):
            problems.append("crop and scene size must be at least 16 x 16")
        if self.lr <= 0:
            problems.append("lr must be > 0")
        if self.train_scenes < 1 or self.val_scenes < 0:
            problems.append("need train_scenes >= 1 and val_scenes >= 0")
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))

    def to_json(self) -> str:
        """Returns the config as a JSON string (paths as strings)."""
        data = asdict(self)
        data["out"] = str(self.out)
        return json.dumps(data, sort_keys=True)


def _pair(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 256x512, got {text!r}") from exc
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """Returns the CLI parser of ``python -m hmsa_core.train``."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m hmsa_core.train",
        description="Train an HMSA (two-scale) or explicit-attention model on SynthScapes. "
        "Same flags (threads included), same weights, bit for bit, on CPU.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example (the bundled hmsa-lite recipe, assets/models/README.md):\n"
        "  python -m hmsa_core.train --arch lite --steps 500 --batch 8 --crop 192x384 --lr 0.03 \\\n"
        "      --class-uniform 0.5 --class-weight-power 0.5 --train-scenes 300 --val-scenes 20 \\\n"
        "      --val-every 250 --out runs/hmsa_lite_final",
    )
    p.add_argument("--arch", default=d.arch, help="lite (HMSA) or explicit_lite")
    p.add_argument("--hparams", default="{}", help="JSON dict of architecture hyper-parameters")
    p.add_argument("--scene-size", type=_pair, default=d.scene_size, help="HxW of scenes")
    p.add_argument("--train-scenes", type=int, default=d.train_scenes)
    p.add_argument("--val-scenes", type=int, default=d.val_scenes)
    p.add_argument("--crop", type=_pair, default=d.crop, help="HxW training crop")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--poly-power", type=float, default=d.poly_power)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scale-min", type=float, default=d.scale_min)
    p.add_argument("--scale-max", type=float, default=d.scale_max)
    p.add_argument("--jitter", type=float, default=d.jitter)
    p.add_argument(
        "--class-uniform",
        type=float,
        default=d.class_uniform,
        help="share of crops centred on a uniformly drawn class",
    )
    p.add_argument(
        "--class-weight-power",
        type=float,
        default=d.class_weight_power,
        help="class-weighted cross-entropy: (median_freq / freq) ** POWER; 0 = plain",
    )
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--data-seed", type=int, default=d.data_seed)
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument(
        "--stop-after",
        type=int,
        default=d.stop_after,
        help="stop (checkpointed) after this many steps; resume later",
    )
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        help="also copy the final .safetensors weights to this path",
    )
    p.add_argument(
        "--no-cost",
        action="store_true",
        help="skip measuring the explicit/HMSA per-step cost ratio at start",
    )
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Returns the :class:`TrainConfig` of parsed CLI arguments. Raises ``ValueError`` on bad JSON."""
    try:
        hparams = json.loads(args.hparams)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--hparams is not valid JSON: {exc}") from exc
    if not isinstance(hparams, dict):
        raise ValueError("--hparams must be a JSON object")
    return TrainConfig(
        arch=args.arch,
        hparams=hparams,
        scene_size=tuple(args.scene_size),
        train_scenes=args.train_scenes,
        val_scenes=args.val_scenes,
        crop=tuple(args.crop),
        batch=args.batch,
        steps=args.steps,
        lr=args.lr,
        poly_power=args.poly_power,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        scale_min=args.scale_min,
        scale_max=args.scale_max,
        jitter=args.jitter,
        class_uniform=args.class_uniform,
        class_weight_power=args.class_weight_power,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        threads=args.threads,
        data_seed=args.data_seed,
        stop_after=args.stop_after,
    )
