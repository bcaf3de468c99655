"""Benchmark: the where-analysis (object size, boundaries, calibration) beyond the inference.

``python -m analysis.bench where`` prints:

* one result of ``--size`` (default 1024 x 2048) with its SynthScapes mask: seconds of
  :func:`analysis.where_scales.analyse_where` (default methods: hierarchical, mean, max and
  every single scale, all re-merged from the held outputs: mean, max and single scales in row
  bands), the median of ``--repeats`` runs after a warm-up, the same with every method
  re-merged in full (``fast=False``, the reference path, timed in the same run so that both
  see the same machine load), and one run per method alone; and its peak extra memory
  (resident set sampled every 2 ms) against the result's own merged logits (targets: 0.5 s,
  2x);
* over ``--count`` SynthScapes val images at ``--dataset-size`` (default 512 x 1024): seconds
  of the sweep (default cascades, methods hierarchical, mean, max, single) alone and with the
  where accumulator (target: at most 20% more).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import torch

import hmsa_core
from analysis.bench.merge import load_bench_model, time_it
from analysis.cascades import parse_cascades
from analysis.sweep import DEFAULT_CASCADES, sweep
from analysis.where_scales import WhereAccumulator, analyse_where, default_methods
from hmsa_core.data.synthscapes import SynthScapes, generate_scene

TARGET_S = 0.5
TARGET_MEMORY = 2.0
TARGET_DATASET = 0.20
SWEEP_METHODS = ("hierarchical", "mean", "max", "single")


def _rss() -> int:
    """Returns this process's resident set size in bytes (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Returns the peak resident memory above the level before ``fn`` while it runs (sampled)."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], _rss()) - base


def bench_one(args: argparse.Namespace, model: hmsa_core.MultiScaleSegmenter) -> None:
    """Prints the seconds and peak memory of one result's analysis."""
    size = args.size
    scene = generate_scene(0, size=size, split="val")
    result = hmsa_core.infer(scene.image, args.scales, model=model, cache=None)
    mask = scene.mask
    logits_mib = result.logits.numel() * result.logits.element_size() / 2**20

    def run(methods: tuple[str, ...] | None = None, fast: bool = True) -> object:
        return analyse_where(
            result, mask, instances=scene.instances, distances=scene.object_distance,
            methods=methods, fast=fast,
        )  # fmt: skip

    whole = time_it(run, args.repeats)
    plain = time_it(lambda: run(fast=False), args.repeats)
    peak = peak_extra_bytes(run) / 2**20
    print(
        f"one {size[0]} x {size[1]} result, scales {args.scales}, {torch.get_num_threads()} threads"
    )
    print("| analysis | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    print(f"| all methods | {whole.median:.3f} | {whole.low:.3f} | {whole.high:.3f} |")
    print(
        f"| all methods, full re-merges (fast=False) | {plain.median:.3f} | {plain.low:.3f} | "
        f"{plain.high:.3f} |"
    )
    for m in default_methods(result.scales):
        t = time_it(lambda m=m: run((m,)), max(1, args.repeats // 2))
        print(f"| {m} alone | {t.median:.3f} | {t.low:.3f} | {t.high:.3f} |")
    verdict = "met" if whole.median <= TARGET_S else "MISSED"
    print(f"\ntime: {whole.median:.3f} s against a target of {TARGET_S} s: {verdict}")
    ratio = peak / logits_mib
    verdict = "met" if ratio <= TARGET_MEMORY else "MISSED"
    print(
        f"peak extra memory: {peak:.0f} MiB = {ratio:.2f}x the merged logits ({logits_mib:.0f} MiB); "
        f"target {TARGET_MEMORY}x: {verdict}"
    )


def bench_dataset(args: argparse.Namespace, model: hmsa_core.MultiScaleSegmenter) -> None:
    """Prints the sweep's seconds with and without the where accumulator."""
    data = SynthScapes("val", args.count, args.dataset_size)
    cascades = parse_cascades(args.cascades)
    scales = tuple(sorted({s for c in cascades for s in c}))
    times = {}
    for label in ("sweep", "sweep + where"):
        acc = WhereAccumulator(model.labels, scales, model=model) if label != "sweep" else None
        start = time.perf_counter()
        sweep(model, data, cascades, SWEEP_METHODS, progress=False, where=acc)
        times[label] = time.perf_counter() - start
    extra = times["sweep + where"] / times["sweep"] - 1.0
    h, w = args.dataset_size
    print(f"\n{args.count} SynthScapes val images at {h} x {w}, cascades {args.cascades!r}")
    print("| run | seconds | s/img |")
    print("|---|---:|---:|")
    for label, t in times.items():
        print(f"| {label} | {t:.1f} | {t / args.count:.2f} |")
    verdict = "met" if extra <= TARGET_DATASET else "MISSED"
    print(f"\nadded time: {100 * extra:.0f}% against a target of 20%: {verdict}")


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m analysis.bench where", description=__doc__)
    parser.add_argument("--model", default="hmsa-lite")
    parser.add_argument("--size", type=_size, default=(1024, 2048), help="HxW of the one result")
    parser.add_argument("--scales", default="0.5,1,2", help="cascade of the one result")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=10, help="images of the dataset part")
    parser.add_argument("--dataset-size", type=_size, default=(512, 1024), help="HxW")
    parser.add_argument("--cascades", default=DEFAULT_CASCADES, help="cascades of the sweep")
    parser.add_argument("--skip-dataset", action="store_true", help="only the one-result part")
    parser.add_argument("--skip-one", action="store_true", help="only the dataset part")
    args = parser.parse_args(argv)
    args.scales = tuple(float(s) for s in args.scales.split(","))
    model, described = load_bench_model(args.model)
    print(f"model: {described}")
    if not args.skip_one:
        bench_one(args, model)
    if not args.skip_dataset:
        bench_dataset(args, model)
    return 0
