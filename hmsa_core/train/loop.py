"""The training loop: data in memory, two-scale (or explicit) steps, validation, checkpoints."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hmsa_core.checkpoints.native import save_native
from hmsa_core.data.synthscapes import SynthScapes, generate_scene
from hmsa_core.merge import ExplicitMerger
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.registry import build
from hmsa_core.train import distributed as dist_utils
from hmsa_core.train.augment import AugmentParams, random_crop
from hmsa_core.train.config import TrainConfig
from hmsa_core.train.cost import compare_recipes
from hmsa_core.train.evaluate import Scorer, ValRow
from hmsa_core.train.losses import class_weights
from hmsa_core.train.step import StepModule

__all__ = ["StepModule", "TrainResult", "train"]

CHECKPOINT_NAME = "checkpoint.pt"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class SceneBank:
    """Training scenes held in memory.

    Attributes:
        images: ``(N, H, W, 3)`` uint8.
        masks: ``(N, H, W)`` uint8 trainIds (255 ignore).
    """

    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_scenes(
    indices: list[int], size: tuple[int, int], seed: int, progress: bool = False
) -> SceneBank:
    """Returns the :class:`SceneBank` of the SynthScapes train scenes ``indices``."""
    images = torch.empty((len(indices), *size, 3), dtype=torch.uint8)
    masks = torch.empty((len(indices), *size), dtype=torch.uint8)
    for k, index in enumerate(tqdm(indices, desc="scenes", disable=not progress)):
        sample = generate_scene(index, seed, size, split="train")
        images[k] = torch.from_numpy(sample.image)
        masks[k] = torch.from_numpy(sample.mask.astype(np.uint8))
    return SceneBank(images, masks)


def make_batch(
    bank: SceneBank, step: int, batch: int, params: AugmentParams, seed: int, rank: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``((B, 3, h, w) RGB in [0, 1], (B, h, w) int64 ids)`` for ``step`` on ``rank``.

    The draw depends only on ``(seed, rank, step)``, so a resumed run sees the same batches.
    """
    rng = np.random.default_rng([seed, rank, step, 0xDA7A])
    picks = rng.integers(0, len(bank), batch)
    crops = [random_crop(bank.images[i], bank.masks[i], params, rng) for i in picks]
    return torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])


def poly_lr(base: float, step: int, steps: int, power: float) -> float:
    """Returns the poly-schedule learning rate ``base * (1 - step / steps) ** power``."""
    return base * (1 - min(step, steps) / steps) ** power


def train_step(
    step_module: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    lr: float,
) -> float:
    """Runs one SGD step at learning rate ``lr``; returns the total loss before the update."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    total, _, _ = step_module(x, target)
    total.backward()
    optimizer.step()
    return float(total.detach())


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """Returns SGD with the config's momentum and weight decay."""
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig
) -> None:
    """Writes model, optimiser, step and config (plain tensors and dicts) atomically to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "config": cfg.to_json(),
        },
        tmp,
    )
    os.replace(tmp, path)


#: Config fields that may differ between a run and its resumption (where and how long to run
#: this time, how often to report); every other field shapes the training and must match.
#: ``threads`` is not among them: CPU kernels split their sums by thread count, so the same
#: recipe run with 1 and 2 threads ends with different weights.
RESUMABLE_CHANGES = frozenset({"out", "resume", "stop_after", "val_every", "ckpt_every"})


def config_mismatch(saved: str, current: TrainConfig) -> list[str]:
    """Returns ``"field: saved -> current"`` for every training-relevant field that differs
    between a checkpoint's stored config (JSON) and ``current``; empty when they agree."""
    before = json.loads(saved)
    now = json.loads(current.to_json())
    return [
        f"{key}: {before.get(key)!r} -> {now.get(key)!r}"
        for key in sorted(set(before) | set(now))
        if key not in RESUMABLE_CHANGES and before.get(key) != now.get(key)
    ]


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> int:
    """Loads a checkpoint written by :func:`save_checkpoint` (``weights_only=True``); returns its
    step. ``ValueError`` when it is unreadable or was written with a different training config
    (architecture, data, schedule...: resuming would silently change the run)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        differences = config_mismatch(state["config"], cfg)
        if differences:
            raise ValueError(
                f"cannot resume from {path}: it was written with another config ("
                + "; ".join(differences)
                + "); use a new --out or the original flags"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])
    except (KeyError, RuntimeError, OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot resume from {path}: {exc}") from exc


@dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        start_step: the step it started (or resumed) at.
        steps: the step it ended at.
        losses: total loss of every step run in this process (rank 0's in DDP).
        val: the last validation scores (``as_dict`` form) by row name.
        weights: the final native weights file (rank 0), or ``None`` on other ranks.
        checkpoint: the resumable checkpoint.
        seconds: wall time of the training steps.
        cost: the explicit/HMSA per-step comparison, when measured.
    """

    start_step: int
    steps: int
    losses: list[float] = field(default_factory=list)
    val: dict = field(default_factory=dict)
    weights: Path | None = None
    checkpoint: Path | None = None
    seconds: float = 0.0
    cost: dict = field(default_factory=dict)


def _val_rows(model: MultiScaleSegmenter) -> list[ValRow]:
    if isinstance(model, ExplicitMerger):
        scales = tuple(model.train_scales)  # type: ignore[attr-defined]
        return [(f"explicit {scales}", scales, "explicit")]
    return [
        ("HMSA (0.5, 1)", (0.5, 1.0), "hierarchical"),
        ("HMSA (0.5, 1, 2)", (0.5, 1.0, 2.0), "hierarchical"),
    ]


def validate(
    model: MultiScaleSegmenter, cfg: TrainConfig, scorer: Scorer | None, final: bool = False
) -> dict:
    """Returns val scores by row from ``scorer``: HMSA (0.5, 1) (and (0.5, 1, 2) when ``final``),
    or explicit; ``{}`` without a scorer or val scenes."""
    if scorer is None or cfg.val_scenes == 0:
        return {}
    rows = _val_rows(model)
    if not final:
        rows = rows[:1]
    data = SynthScapes("val", cfg.val_scenes, cfg.scene_size, cfg.data_seed)
    scores = scorer(model, data, rows)
    model.train()
    return scores


def train(
    cfg: TrainConfig,
    command: str = "",
    measure_cost: bool = True,
    export: Path | None = None,
    scorer: Scorer | None = None,
) -> TrainResult:
    """Trains ``cfg.arch`` on SynthScapes and returns the :class:`TrainResult`.

    Under torchrun every rank trains on its shard of the scenes with DDP; rank 0 validates with
    ``scorer`` (see :mod:`hmsa_core.train.evaluate`; ``None`` skips validation), writes
    ``out/checkpoint.pt`` every ``ckpt_every`` steps and the final ``out/model.safetensors``
    (with ``command`` and the metrics in its metadata).

    The weights depend only on the config: same config (``threads`` included), same bits on
    CPU; the run is wrapped in :func:`deterministic_kernels`.
    """
    info = dist_utils.setup()
    try:
        with deterministic_kernels():
            return _train(cfg, info, command, measure_cost, export, scorer)
    finally:
        dist_utils.cleanup(info)


@contextlib.contextmanager
def deterministic_kernels() -> Iterator[None]:
    """Runs the body with PyTorch's deterministic algorithms (warning where an op has none) and
    oneDNN's deterministic mode, then restores the previous settings."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.mkldnn.deterministic,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.mkldnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.mkldnn.deterministic = before[2]


def _train(
    cfg: TrainConfig,
    info: dist_utils.DistInfo,
    command: str,
    measure_cost: bool,
    export: Path | None,
    scorer: Scorer | None,
) -> TrainResult:
    torch.set_num_threads(cfg.threads)
    if torch.get_num_threads() != cfg.threads:
        raise ValueError(
            f"could not run with {cfg.threads} threads (got {torch.get_num_threads()})"
        )
    if cfg.batch % info.world_size:
        raise ValueError(f"batch {cfg.batch} does not split over {info.world_size} processes")
    log = print if info.is_main else (lambda *a, **k: None)

    cost: dict = {}
    if measure_cost and info.is_main:
        comparison = compare_recipes(cfg.hparams, cfg.crop, cfg.batch, info.device)
        log(comparison.describe())
        cost = comparison.as_metrics()
    dist_utils.barrier(info)

    model, step_module, runner, optimizer, start = _setup_model(cfg, info, log)
    bank = _scene_bank(cfg, info, model, step_module, log)
    ckpt = cfg.out / CHECKPOINT_NAME
    result = TrainResult(start_step=start, steps=start, checkpoint=ckpt, cost=cost)
    _run_steps(cfg, info, model, runner, optimizer, bank, result, scorer, log)
    if info.distributed:  # every rank records its parameters, to check DDP kept them equal
        cfg.out.mkdir(parents=True, exist_ok=True)
        digest = dist_utils.parameter_digest(model)
        (cfg.out / f"parameter_digest_rank{info.rank}.txt").write_text(digest)
    dist_utils.broadcast_buffers(model, info)
    if info.is_main:
        _finish(cfg, info.world_size, model, step_module, result, scorer, command, export, log)
    dist_utils.barrier(info)
    return result


def _setup_model(
    cfg: TrainConfig, info: dist_utils.DistInfo, log: Callable[..., None]
) -> tuple[MultiScaleSegmenter, StepModule, nn.Module, torch.optim.SGD, int]:
    """Returns ``(model, step module, runner (DDP-wrapped when distributed), optimizer,
    start step)``, resumed from the checkpoint when ``cfg.resume`` finds one."""
    torch.manual_seed(cfg.seed)
    model = build(cfg.arch, **cfg.hparams).to(info.device).train()
    step_module = StepModule(model, cfg.aux_weight, cfg.scale_loss_weight)
    optimizer = make_optimizer(model, cfg)
    ckpt = cfg.out / CHECKPOINT_NAME
    start = 0
    if cfg.resume and ckpt.is_file():
        start = load_checkpoint(ckpt, model, optimizer, cfg)
        log(f"resumed from {ckpt} at step {start}")
    runner: nn.Module = step_module
    if info.distributed:
        runner = DistributedDataParallel(
            step_module, device_ids=[info.local_rank] if info.device.type == "cuda" else None
        )
    log(
        f"{cfg.arch}: {model.parameter_count():,} parameters, scales {step_module.scales}, "
        f"{info.world_size} process(es), batch {cfg.batch}, crop {cfg.crop}"
    )
    return model, step_module, runner, optimizer, start


def _scene_bank(
    cfg: TrainConfig,
    info: dist_utils.DistInfo,
    model: MultiScaleSegmenter,
    step_module: StepModule,
    log: Callable[..., None],
) -> SceneBank:
    """Returns this rank's :class:`SceneBank`, setting the class weights when asked for."""
    shard = dist_utils.shard(list(range(cfg.train_scenes)), info.rank, info.world_size)
    bank = load_scenes(shard, cfg.scene_size, cfg.data_seed, progress=info.is_main)
    if cfg.class_weight_power:
        counts = torch.bincount(bank.masks.flatten().long(), minlength=256)[: model.num_classes]
        counts = dist_utils.all_reduce_sum(counts.to(info.device), info)
        weight = class_weights(counts, cfg.class_weight_power)
        step_module.set_class_weight(weight.to(info.device))  # type: ignore[union-attr]
        log("class weights: " + ", ".join(f"{w:.2f}" for w in weight.tolist()))
    return bank


def _run_steps(
    cfg: TrainConfig,
    info: dist_utils.DistInfo,
    model: MultiScaleSegmenter,
    runner: nn.Module,
    optimizer: torch.optim.SGD,
    bank: SceneBank,
    result: TrainResult,
    scorer: Scorer | None,
    log: Callable[..., None],
) -> None:
    """Runs the training steps from ``result.start_step``, recording losses, steps and seconds
    in ``result``; checkpoints and validates on the configured steps."""
    local_batch = cfg.batch // info.world_size
    params = AugmentParams(cfg.crop, cfg.scale_min, cfg.scale_max, cfg.jitter, cfg.class_uniform)
    mean = torch.tensor(model.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.std).view(1, 3, 1, 1)
    start = result.start_step
    bar = tqdm(
        range(start, cfg.steps),
        initial=start,
        total=cfg.steps,
        disable=not info.is_main,
        desc=cfg.arch,
        mininterval=5.0,
    )
    t0 = time.perf_counter()
    end = min(cfg.steps, cfg.stop_after) if cfg.stop_after > 0 else cfg.steps
    for step in bar:
        if step >= end:
            break
        rgb, target = make_batch(bank, step, local_batch, params, cfg.seed, info.rank)
        x = ((rgb - mean) / std).to(info.device)
        lr = poly_lr(cfg.lr, step, cfg.steps, cfg.poly_power)
        loss = train_step(runner, optimizer, x, target.to(info.device), lr)
        result.losses.append(loss)
        result.steps = step + 1
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
        last = step + 1 == end
        if (step + 1) % cfg.ckpt_every == 0 or last:
            dist_utils.broadcast_buffers(model, info)
            if info.is_main:
                save_checkpoint(cfg.out / CHECKPOINT_NAME, model, optimizer, step + 1, cfg)
        if cfg.val_every and (step + 1) % cfg.val_every == 0 and not last:
            if info.is_main:
                scores = validate(model, cfg, scorer)
                log(
                    f"step {step + 1}: val {json.dumps({k: round(v['miou'], 4) for k, v in scores.items()})}"
                )
            dist_utils.barrier(info)
    result.seconds = time.perf_counter() - t0
    bar.close()


def _finish(
    cfg: TrainConfig,
    world_size: int,
    model: MultiScaleSegmenter,
    step_module: StepModule,
    result: TrainResult,
    scorer: Scorer | None,
    command: str,
    export: Path | None,
    log: Callable[..., None],
) -> None:
    """Validates the final model and saves its weights (and ``export``) with the run's metrics
    (main process only); sets ``result.val`` and ``result.weights``."""
    result.val = validate(model, cfg, scorer, final=True)
    log(f"final val: {json.dumps({k: round(v['miou'], 4) for k, v in result.val.items()})}")
    steps_run = result.steps - result.start_step
    metrics = {
        "val": result.val,
        "val_images": cfg.val_scenes,
        "val_scene_size": list(cfg.scene_size),
        "train": {
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "seconds_per_step": round(result.seconds / max(steps_run, 1), 3),
            "world_size": world_size,
            "scales": list(step_module.scales),
            "final_loss": result.losses[-1] if result.losses else None,
        },
        "train_cost": result.cost,
    }
    extra = {"config": json.loads(cfg.to_json())}
    result.weights = save_native(
        model.eval(), cfg.out / WEIGHTS_NAME, train_command=command, metrics=metrics, extra=extra
    )
    if export is not None:
        save_native(model, export, train_command=command, metrics=metrics, extra=extra)
        log(f"exported {export}")
    log(f"wrote {result.weights}")
