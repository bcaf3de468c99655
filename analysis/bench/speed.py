"""Benchmark: the bundled HMSA model on cascade (0.5, 1, 2) at 512 x 1024 against the 1 s target.

``python -m analysis.bench speed`` loads ``hmsa_core.load_model()`` (the bundled ``hmsa-lite``;
when its weights are not there yet, a randomly initialised ``lite`` model of the same
architecture, and it says so), runs ``hmsa_core.infer`` with the cache disabled once to warm up
and then ``--repeats`` times, and prints the median seconds of each scale's forward pass, of
the merge and of the whole call.
"""

from __future__ import annotations

import statistics
import time

import torch

import hmsa_core
from analysis.bench.merge import bench_image
from analysis.cli_args import bench_parser
from hmsa_core.api import DEFAULT_MODEL, bundled_model_path
from hmsa_core.models.base import MultiScaleSegmenter

CASCADE = (0.5, 1.0, 2.0)
TARGET_S = 1.0


def bench_model() -> tuple[MultiScaleSegmenter, str]:
    """Returns the bundled default model, or a random-init ``lite`` when its file is missing,
    with a description of which it is."""
    path = bundled_model_path(DEFAULT_MODEL)
    if path.is_file():
        return hmsa_core.load_model(device="cpu"), f"bundled {DEFAULT_MODEL} ({path.name})"
    torch.manual_seed(0)
    model = hmsa_core.build("lite", num_classes=19).eval()
    return (
        model,
        f"lite with RANDOM weights (bundled {path.name} not found; default architecture, timings indicative only)",
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints its table; returns 0."""
    parser = bench_parser("speed", __doc__, "--height 512 --width 1024")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1024)
    args = parser.parse_args(argv)
    repeats = max(1, args.repeats)

    model, which = bench_model()
    image, source = bench_image((args.height, args.width))
    hmsa_core.infer(image, CASCADE, model=model, cache=None)  # warm-up
    per_scale: dict[float, list[float]] = {s: [] for s in CASCADE}
    totals: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = hmsa_core.infer(image, CASCADE, model=model, cache=None)
        totals.append(time.perf_counter() - start)
        for s in CASCADE:
            per_scale[s].append(result.per_scale[s].cost.seconds)
    forward = [sum(per_scale[s][i] for s in CASCADE) for i in range(repeats)]
    rest = [t - f for t, f in zip(totals, forward)]
    median = statistics.median

    print(
        f"speed benchmark: {which}, {args.width} x {args.height} {source}, cascade {CASCADE}, "
        f"cache disabled, CPU with {torch.get_num_threads()} thread(s), "
        f"median of {repeats} runs after a warm-up"
    )
    print()
    print("| part | median (s) | min-max (s) |")
    print("|---|---:|---:|")
    for s in CASCADE:
        gflops = result.per_scale[s].cost.gflops
        print(
            f"| forward at scale {s:g} ({gflops:.2f} GFLOPs) | {median(per_scale[s]):.3f} | "
            f"{min(per_scale[s]):.3f}-{max(per_scale[s]):.3f} |"
        )
    print(
        f"| forward passes, total | {median(forward):.3f} | {min(forward):.3f}-{max(forward):.3f} |"
    )
    print(
        f"| input preparation + merge + result | {median(rest):.3f} | {min(rest):.3f}-{max(rest):.3f} |"
    )
    print(
        f"| hmsa_core.infer, end to end | {median(totals):.3f} | {min(totals):.3f}-{max(totals):.3f} |"
    )
    print()
    ok = median(totals) < TARGET_S
    print(
        f"end to end {median(totals):.3f} s against the {TARGET_S:g} s target: "
        f"{100 * median(totals) / TARGET_S:.0f}% of it, {'ok' if ok else 'MISSED'}"
    )
    return 0
