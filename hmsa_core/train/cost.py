"""Per-step training cost of a recipe: FLOPs, peak memory and seconds of forward + backward."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from hmsa_core.cost import LiveBytesMode, param_bytes
from hmsa_core.labels import IGNORE_INDEX
from hmsa_core.models.registry import build
from hmsa_core.train.step import StepModule


@dataclass(frozen=True)
class StepCost:
    """What one training step costs.

    Attributes:
        arch: the architecture.
        scales: the training scales of its recipe.
        batch: images per step.
        crop: ``(h, w)`` of the crop.
        flops: FLOPs of forward + loss + backward (FlopCounterMode; a multiply-add counts 2).
        peak_bytes: peak memory: CUDA allocator peak, or on CPU the peak of live tensors
            during forward + backward (LiveBytesMode) plus parameters, gradients and momentum.
        seconds: median wall time of a step (forward, backward, no optimiser update).
    """

    arch: str
    scales: tuple[float, ...]
    batch: int
    crop: tuple[int, int]
    flops: int
    peak_bytes: int
    seconds: float


@dataclass(frozen=True)
class RecipeComparison:
    """Explicit attention's per-step cost against HMSA's (same trunk, batch and crop).

    Attributes:
        hmsa: HMSA on (0.5, 1).
        explicit: explicit attention on its training scales.
        flop_ratio, memory_ratio, time_ratio: explicit / HMSA.
    """

    hmsa: StepCost
    explicit: StepCost
    flop_ratio: float
    memory_ratio: float
    time_ratio: float

    def as_metrics(self) -> dict:
        """Returns a JSON-serialisable dict for checkpoint metrics."""
        return {
            "hmsa_step": asdict(self.hmsa),
            "explicit_step": asdict(self.explicit),
            "flop_ratio": self.flop_ratio,
            "memory_ratio": self.memory_ratio,
            "time_ratio": self.time_ratio,
        }

    def describe(self) -> str:
        """Returns a few human-readable lines."""
        h, e = self.hmsa, self.explicit
        return (
            f"per training step (batch {h.batch}, crop {h.crop[0]}x{h.crop[1]}):\n"
            f"  HMSA (0.5, 1):        {h.flops / 1e9:8.1f} GFLOP  {h.peak_bytes / 2**20:8.0f} MiB  "
            f"{h.seconds:6.2f} s\n"
            f"  explicit (0.5, 1, 2): {e.flops / 1e9:8.1f} GFLOP  {e.peak_bytes / 2**20:8.0f} MiB  "
            f"{e.seconds:6.2f} s\n"
            f"  explicit / HMSA:      {self.flop_ratio:8.2f}x FLOP {self.memory_ratio:6.2f}x memory "
            f"{self.time_ratio:5.2f}x time"
        )


def _step_runner(
    arch: str, hparams: dict, crop: tuple[int, int], batch: int, device: torch.device, seed: int
):  # type: ignore[no-untyped-def]
    """Returns ``(model, step scales, run)``: ``run()`` does one forward + backward."""
    torch.manual_seed(seed)
    model = build(arch, **hparams).to(device).train()
    step = StepModule(model)
    x = torch.randn(batch, 3, *crop, device=device)
    target = torch.randint(0, model.num_classes, (batch, *crop), device=device)
    target[:, :2] = IGNORE_INDEX

    def run() -> None:
        model.zero_grad(set_to_none=True)
        total, _, _ = step(x, target)
        total.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return model, step.scales, run


def _count(model: torch.nn.Module, run, device: torch.device) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Returns ``(flops, peak bytes)`` of one ``run()``."""
    counter = FlopCounterMode(display=False)
    live = LiveBytesMode()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with counter, live:
        run()
    if device.type == "cuda":
        peak = int(torch.cuda.max_memory_allocated(device))
    else:
        peak = int(live.peak) + 3 * param_bytes(model)  # + grads + momentum
    return int(counter.get_total_flops()), peak


def _timed(run) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def compare_recipes(
    hparams: dict,
    crop: tuple[int, int],
    batch: int,
    device: torch.device | str = "cpu",
    repeats: int = 4,
) -> RecipeComparison:
    """Returns the :class:`RecipeComparison` of ``explicit_lite`` vs ``lite`` at this batch/crop.

    ``hparams`` are the shared :class:`~hmsa_core.models.lite.LiteConfig` fields
    (``train_scales`` applies to the explicit model only). Timed steps of the two recipes
    alternate and each keeps its fastest, so background load affects both alike.
    """
    device = torch.device(device)
    shared = {k: v for k, v in hparams.items() if k != "train_scales"}
    runners = {
        "lite": _step_runner("lite", shared, crop, batch, device, 0),
        "explicit_lite": _step_runner("explicit_lite", dict(hparams), crop, batch, device, 0),
    }
    counts, times = {}, {}
    for arch, (model, _, run) in runners.items():
        run()  # warm-up
        counts[arch] = _count(model, run, device)
        times[arch] = []
    for _ in range(repeats):
        for arch, (_, _, run) in runners.items():
            times[arch].append(_timed(run))
    costs = {
        arch: StepCost(
            arch,
            runners[arch][1],
            batch,
            tuple(crop),
            counts[arch][0],
            counts[arch][1],
            min(times[arch]),
        )
        for arch in runners
    }
    hmsa, explicit = costs["lite"], costs["explicit_lite"]
    return RecipeComparison(
        hmsa,
        explicit,
        explicit.flops / hmsa.flops,
        explicit.peak_bytes / hmsa.peak_bytes,
        explicit.seconds / hmsa.seconds,
    )


def main(argv: list[str] | None = None) -> None:
    """CLI: print the explicit/HMSA per-step cost comparison (``--crop HxW --batch B``)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="explicit vs HMSA training cost per step")
    parser.add_argument("--crop", default="192x384", help="HxW")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hparams", default="{}", help="JSON LiteConfig fields")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.crop.split("x"))
    comparison = compare_recipes(json.loads(args.hparams), (h, w), args.batch, "cpu", args.repeats)
    print(comparison.describe())


if __name__ == "__main__":
    main()
