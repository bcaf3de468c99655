"""Benchmark: the cheap part (merge + bookkeeping) against the expensive part (forward passes).

``python -m analysis.bench merge`` prints, for a 512 x 1024 image and cascade
(0.25, 0.5, 1.0, 2.0) with the ``lite`` model on CPU:

* total forward time, merge time (``hmsa_core.merge`` plus building the result as ``infer``
  does) and their ratio (target < 3%);
* a cascade change served entirely from the per-scale cache, via ``infer`` with the default
  cache and via ``result.remerge`` (target < 50 ms);
* a breakdown of the cached path (image preparation, cache key digest, merge, result).

Every timing is the median of ``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import hmsa_core
from analysis.cli_args import bench_parser
from hmsa_core.cache import tensor_digest
from hmsa_core.inference import _assemble, prepare_input, run_scales

CASCADE = (0.25, 0.5, 1.0, 2.0)
CHANGES = ((0.5, 1.0, 2.0), (0.25, 0.5, 1.0), (0.5, 1.0), (0.25, 0.5, 1.0, 2.0))
MERGE_TARGET = 0.03
CACHED_TARGET_S = 0.050


@dataclass(frozen=True)
class Timing:
    """Median and spread of repeated runs, in seconds."""

    median: float
    low: float
    high: float


def time_it(fn: Callable[[], object], repeats: int) -> Timing:
    """Returns the :class:`Timing` of ``repeats`` calls of ``fn`` (after one untimed warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(statistics.median(times), min(times), max(times))


def bench_image(size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Returns an ``(H, W, 3)`` uint8 test image and where it came from (a SynthScapes scene)."""
    try:
        from hmsa_core.data.synthscapes import generate_scene

        return generate_scene(0, size=size).image, "SynthScapes scene 0"
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (*size, 3), dtype=np.uint8), "random pixels"


def load_bench_model(name: str) -> tuple[hmsa_core.MultiScaleSegmenter, str]:
    """Returns the model to time and a description of it (bundled, file, or random init)."""
    from hmsa_core.models import available

    if name in available():
        return hmsa_core.build(name, num_classes=19).eval(), f"{name} (random init)"
    try:
        return hmsa_core.load_model(name, device="cpu"), f"{name} (trained weights)"
    except ValueError:
        if name != "hmsa-lite":
            raise
        return hmsa_core.build("lite", num_classes=19).eval(), "lite (random init: no asset)"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its table; returns 0."""
    parser = bench_parser("merge", __doc__, "--height 512 --width 1024 --repeats 5")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument(
        "--model",
        default="hmsa-lite",
        help="a bundled model name or path (falls back to random 'lite' if the asset is missing), "
        "or a registered architecture built with random weights, e.g. hrnet48_ocr_mscale",
    )
    args = parser.parse_args(argv)
    repeats = max(1, args.repeats)

    torch.manual_seed(0)
    model, model_desc = load_bench_model(args.model)
    image, source = bench_image((args.height, args.width))
    prepared = prepare_input(image, model)
    labels, arch = model.labels, model.arch

    forward = time_it(lambda: run_scales(model, prepared.tensor, CASCADE, cache=None), repeats)
    per_scale = run_scales(model, prepared.tensor, CASCADE, cache=None)

    def assemble() -> object:
        return _assemble(
            per_scale, "hierarchical", prepared.rgb, labels, model, arch, keep_attention=True
        )

    merge_only = time_it(
        lambda: hmsa_core.merge(per_scale, "hierarchical", output_size=prepared.size, model=model),
        repeats,
    )
    merge_total = time_it(assemble, repeats)

    cache = hmsa_core.DEFAULT_SCALE_CACHE
    result = hmsa_core.infer(image, CASCADE, model=model, cache=cache)  # fills the cache
    changes = iter(CHANGES * (repeats + 2))
    cached_infer = time_it(
        lambda: hmsa_core.infer(image, next(changes), model=model, cache=cache), repeats
    )
    changes = iter(CHANGES * (repeats + 2))
    remerge = time_it(lambda: result.remerge("hierarchical", next(changes)), repeats)
    remerge_mean = time_it(lambda: result.remerge("mean", (0.5, 1.0, 2.0)), repeats)
    by_cascade = {
        c: time_it(lambda c=c: result.remerge("hierarchical", c), repeats) for c in CHANGES
    }

    prepare = time_it(lambda: prepare_input(image, model), repeats)
    digest = time_it(lambda: tensor_digest(prepared.tensor), repeats)
    ratio = merge_total.median / forward.median

    print(
        f"merge benchmark: {model_desc}, {args.width} x {args.height} {source}, "
        f"cascade {CASCADE}, CPU with {torch.get_num_threads()} thread(s), "
        f"median of {repeats} runs after a warm-up"
    )
    print()
    print("| measurement | median (ms) | min-max (ms) | target | verdict |")
    print("|---|---:|---:|---|---|")

    def line(name: str, t: Timing, target: str = "", verdict: str = "") -> None:
        print(
            f"| {name} | {1e3 * t.median:.1f} | {1e3 * t.low:.1f}-{1e3 * t.high:.1f} | {target} | {verdict} |"
        )

    line("forward passes, 4 scales (run_scales, no cache)", forward)
    line("hmsa_core.merge (hierarchical + effective weights)", merge_only)
    line(
        "merge + result bookkeeping (as infer does it)",
        merge_total,
        f"< {100 * MERGE_TARGET:.0f}% of forward",
        f"{100 * ratio:.2f}% {_verdict(ratio < MERGE_TARGET)}",
    )
    line(
        "cascade change from cache: infer(default cache)",
        cached_infer,
        f"< {1e3 * CACHED_TARGET_S:.0f} ms",
        _verdict(cached_infer.median < CACHED_TARGET_S),
    )
    line(
        "cascade change from cache: result.remerge",
        remerge,
        f"< {1e3 * CACHED_TARGET_S:.0f} ms",
        _verdict(remerge.median < CACHED_TARGET_S),
    )
    line("method change: result.remerge('mean', (0.5, 1, 2))", remerge_mean)
    for cascade, t in by_cascade.items():
        line(
            f"  result.remerge to {cascade}",
            t,
            f"< {1e3 * CACHED_TARGET_S:.0f} ms",
            _verdict(t.median < CACHED_TARGET_S),
        )
    line("  part of infer: prepare_input (decode + normalise)", prepare)
    line("  part of infer: tensor_digest (cache key)", digest)
    print()
    print(f"merge / forward ratio: {100 * ratio:.2f}% (target < {100 * MERGE_TARGET:.0f}%)")
    return 0
