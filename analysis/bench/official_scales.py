"""Time, FLOPs and memory of the official model per scale:
``python -m analysis.bench official-scales [--size 256x512] [--cascades 1 0.5,1,2]``.

Every distinct scale of the requested cascades is run ``--repeats`` times (median seconds);
each cascade's table is assembled from those passes, as passes at different scales are
independent. On CUDA the passes run under bf16 autocast and peak memory is the allocator's
measurement; on CPU they run in float32 and peak memory is the meta-run estimate. The
counted FLOPs of one 1024x2048 pass (meta device, no arithmetic) are compared with DESIGN's
3.06 TFLOP.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

import torch

from analysis.bench.official import bench_parser, load_bench_model, parse_size
from hmsa_core.cascade import parse_scales
from hmsa_core.cost import ScaleCost, estimate_pass
from hmsa_core.inference import run_scales
from hmsa_core.limits import DEFAULT_LIMITS
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH

DEFAULT_CASCADES = ("1.0", "0.5,1.0,2.0", "0.25,0.5,1.0,2.0")
DESIGN_PASS_TFLOPS = 3.06
FULL_SIZE = (1024, 2048)


@dataclass(frozen=True)
class ScaleTiming:
    """Median measurement of one scale's pass.

    Attributes:
        cost: the last pass's :class:`ScaleCost` (FLOPs, peak memory, input size).
        seconds: median wall seconds over the repeats.
    """

    cost: ScaleCost
    seconds: float


def time_scales(
    model: MultiScaleSegmenter,
    size: tuple[int, int],
    scales: tuple[float, ...],
    repeats: int,
    precision: str,
) -> dict[float, ScaleTiming]:
    """Returns scale -> :class:`ScaleTiming` for every scale, after one warm-up pass of each."""
    device = next(model.parameters()).device
    image = torch.randn((1, 3, *size), generator=torch.Generator().manual_seed(0)).to(device)
    limits = replace(DEFAULT_LIMITS, max_scales=16)
    run_scales(model, image, scales, precision=precision, limits=limits)  # warm-up
    seconds: dict[float, list[float]] = {s: [] for s in scales}
    last: dict[float, ScaleCost] = {}
    for _ in range(repeats):
        for scale, result in run_scales(
            model, image, scales, precision=precision, limits=limits
        ).items():
            seconds[scale].append(result.cost.seconds)
            last[scale] = result.cost
    return {s: ScaleTiming(last[s], statistics.median(seconds[s])) for s in scales}


def format_cascade(
    cascade: tuple[float, ...], timings: dict[float, ScaleTiming], measured: bool
) -> str:
    """Returns the printed table of one cascade: per-scale rows and a total row."""
    mem = "peak MiB" if measured else "peak MiB (est.)"
    lines = [
        f"cascade ({', '.join(f'{s:g}' for s in cascade)})",
        f"  {'scale':>6} {'input':>11} {'seconds':>9} {'GFLOPs':>10} {mem:>16}",
    ]
    for s in cascade:
        t = timings[s]
        h, w = t.cost.input_size
        lines.append(
            f"  {s:>6g} {f'{h}x{w}':>11} {t.seconds:>9.3f} {t.cost.gflops:>10.1f} "
            f"{t.cost.peak_bytes / 2**20:>16.0f}"
        )
    total_s = sum(timings[s].seconds for s in cascade)
    total_g = sum(timings[s].cost.gflops for s in cascade)
    peak = max(timings[s].cost.peak_bytes for s in cascade)
    one = timings[1.0].cost.gflops if 1.0 in timings else None
    ratio = f"  ({total_g / one:.2f} passes of 1.0)" if one else ""
    lines.append(
        f"  {'total':>6} {'':>11} {total_s:>9.3f} {total_g:>10.1f} {peak / 2**20:>16.0f}{ratio}"
    )
    return "\n".join(lines)


def full_pass_line(model: MultiScaleSegmenter) -> str:
    """Returns the line reporting the counted TFLOPs of one 1024x2048 pass vs DESIGN's figure."""
    tflops = estimate_pass(model, FULL_SIZE).flops / 1e12
    return (
        f"counted FLOPs of one {FULL_SIZE[0]}x{FULL_SIZE[1]} pass: {tflops:.3f} TFLOP "
        f"(DESIGN: {DESIGN_PASS_TFLOPS} TFLOP; ratio {tflops / DESIGN_PASS_TFLOPS:.4f}); "
        "a multiply-add counts 2 FLOPs"
    )


def main(argv: list[str]) -> int:
    """Runs the benchmark and prints its tables; returns 0 (2 on bad input)."""
    parser = bench_parser(
        "official-scales", __doc__, "--size 256x512 --cascades 1 0.5,1,2", size="256x512"
    )
    parser.add_argument(
        "--cascades", nargs="+", default=list(DEFAULT_CASCADES), help="e.g. 1 0.5,1,2"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="passes per scale (default CPU 1, CUDA 5)"
    )
    parser.add_argument("--checkpoint", default=None, help="weights file (default: random init)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", default="fp32", help="CPU precision (default fp32)")
    args = parser.parse_args(argv)
    size = parse_size(args.size)
    cascades = [parse_scales(c) for c in args.cascades]
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    precision = "bf16" if on_cuda else args.precision
    if precision == "auto":
        from hmsa_core.precision import resolve_precision

        precision = resolve_precision("auto", device)
    repeats = args.repeats or (5 if on_cuda else 1)
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    model = load_bench_model(args.checkpoint, device)
    scales = tuple(sorted({s for c in cascades for s in c}))
    name = (
        torch.cuda.get_device_name(device)
        if on_cuda
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"{ARCH} at {size[0]}x{size[1]} on {name}, {precision}, median of {repeats} pass(es) per scale"
    )
    timings = time_scales(model, size, scales, repeats, precision)
    for cascade in cascades:
        print(format_cascade(tuple(sorted(cascade)), timings, measured=on_cuda))
    print(full_pass_line(model))
    return 0
