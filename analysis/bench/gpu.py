"""GPU benchmark of the official model: eager vs the fast path, side by side in one run.

``python -m analysis.bench gpu [--size 1024x2048] [--scales 0.5,1,2] [--repeats 10]``

UNTESTED in the session that wrote it (no GPU was lent); it needs CUDA and refuses otherwise.
Rows: eager bf16 (``precision="auto"``, channels-last), fast path with CUDA graphs for the
small scales, fast path with ``torch.compile`` (compile time reported apart), and the passes
on separate CUDA streams. Each row: median wall seconds of the whole cascade (synchronised)
and the argmax agreement with the eager row. Random weights (fixed seed) unless
``--checkpoint``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import hmsa_core
from analysis.bench.official import load_bench_model, parse_size
from hmsa_core.cascade import parse_scales
from hmsa_core.fastpath import FastPathOptions, run_on_streams
from hmsa_core.merge import merge


def _timed(fn, repeats: int) -> tuple[float, torch.Tensor]:  # type: ignore[no-untyped-def]
    """Returns ``(median seconds, last prediction)`` of ``fn()`` after one warm-up call."""
    pred = fn()
    torch.cuda.synchronize()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        pred = fn()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), pred


def main(argv: list[str]) -> int:
    """Runs the comparison and prints a markdown table; returns 0 (2 without CUDA)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.bench gpu",
        description=__doc__,
        epilog="example:\n  python -m analysis.bench gpu --size 1024x2048 --scales 0.5,1,2 --repeats 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", default="1024x2048")
    parser.add_argument("--scales", default="0.5,1,2")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--small-pixels", type=int, default=512 * 1024)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: the GPU benchmark needs CUDA", file=sys.stderr)
        return 2
    size, scales = parse_size(args.size), parse_scales(args.scales)
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = load_bench_model(args.checkpoint, torch.device("cuda"))
    image = torch.randn((1, 3, *size), generator=torch.Generator().manual_seed(0)).cuda()

    def cascade(fast: FastPathOptions | None):  # type: ignore[no-untyped-def]
        return lambda: (
            hmsa_core.infer(
                image, scales, model=model, cache=None, fast_path=fast, return_attn=False
            ).pred
        )

    def streams() -> torch.Tensor:
        opts = FastPathOptions(mode="graphs", small_pixels=args.small_pixels, streams=True)
        outputs = run_on_streams(model, image, scales, "bf16", opts)
        return merge(outputs, output_size=size).logits[0].argmax(0)

    rows = [("eager bf16 (auto)", cascade(None))]
    rows.append(("fast: CUDA graphs", cascade(FastPathOptions("graphs", args.small_pixels))))
    rows.append(("fast: torch.compile", cascade(FastPathOptions("compile", args.small_pixels))))
    rows.append(("fast: graphs + streams", streams))
    print(
        f"{torch.cuda.get_device_name()} · {args.size} · ({args.scales}) · median of {args.repeats}"
    )
    print("| path | seconds | first call s | agreement with eager |")
    print("|---|---:|---:|---:|")
    reference = None
    for name, fn in rows:
        start = time.perf_counter()
        try:
            fn()
            torch.cuda.synchronize()
            first = time.perf_counter() - start
            seconds, pred = _timed(fn, args.repeats)
        except Exception as exc:  # report and go on: one failing path must not hide the others
            print(f"| {name} | failed: {type(exc).__name__}: {exc} | | |")
            continue
        pred = pred.cpu()
        reference = pred if reference is None else reference
        agree = float((pred == reference).float().mean())
        print(f"| {name} | {seconds:.4f} | {first:.2f} | {100 * agree:.3f}% |")
    return 0
