"""GPU benchmark of the official model: eager vs the fast path, side by side in one run.

``python -m analysis.bench gpu [--size 1024x2048] [--scales 0.5,1,2] [--repeats 10]``

Needs CUDA and refuses otherwise. Every row runs the whole cascade through
:func:`hmsa_core.infer` (or, for the streams row, :func:`hmsa_core.fastpath.run_on_streams`
and the same merge) on one fixed random image, and reports the median wall seconds of the
synchronised cascade, the first call (graph capture, compilation), each scale's median pass
seconds, the allocator's peak memory, the FLOPs actually computed, and the argmax agreement
with the float32 row and with the eager ``auto`` row. Rows, in order:

- ``fp32`` (TF32 off: exact float32, the golden tests' path);
- ``bf16 autocast, unfolded``: the pass before BatchNorm folding (a no-op forward hook makes
  :func:`hmsa_core.folding.inference_copy` step aside);
- ``auto``: bf16, channels-last, BatchNorm folded, eager (what ``infer`` does by default);
- ``auto, tiled``: the same in tiles of the CPU's default budget (``HMSA_MAX_TILE_PIXELS``;
  GPU passes run whole by default, ``HMSA_CUDA_MAX_TILE_PIXELS``);
- CUDA graphs for the small scales, for every scale, and graphs with the passes on streams;
- ``gate`` rows (attention gating, eager and with graphs), for each ``--gates`` threshold and
  each ``--gate-by`` criterion (DESIGN 1.8: ``bound``, ``attention``, ``confidence``);
- ``torch.compile`` (``reduce-overhead``) for the small scales, then for every scale, last, as
  they compile longest.

Rows run with the default settings (on CUDA: whole passes) unless named tiled. Recipe weights
(``--checkpoint recipe``, the golden fixtures' deterministic weights) make gating meaningful;
random weights (the default) time the same. One failing row prints its error and the others go
on. The first line is the command; the last says which path ``auto`` on CUDA would take by the
rule of :func:`decide_auto` (the fastest row that gives eager ``auto``'s argmax exactly and
needs no long first call); ``infer`` does not pick it by itself.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

import hmsa_core
from analysis.bench.official import load_bench_model, parse_size
from hmsa_core.cascade import parse_scales
from hmsa_core.fastpath import FastPathOptions, run_on_streams
from hmsa_core.folding import inference_copy
from hmsa_core.gating import GATE_CRITERIA
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.merge import merge
from hmsa_core.models.base import MultiScaleSegmenter

#: What one timed call returns: the ``(H, W)`` argmax, per-scale pass seconds (empty when not
#: measured per scale) and the FLOPs computed.
Outcome = tuple[torch.Tensor, dict[float, float], float]


@dataclass(frozen=True)
class Row:
    """One configuration of the table: its name and the call that runs the cascade once."""

    name: str
    run: Callable[[], Outcome]
    gated: bool = False


@dataclass(frozen=True)
class RowResult:
    """The measurement of one :class:`Row`.

    Attributes:
        median_s: median seconds of the synchronised cascade over the repeats.
        first_s: seconds of the first call (captures and compilation included).
        per_scale_s: scale -> median pass seconds (empty for the streams row).
        peak_mib: the allocator's peak over the timed calls, MiB.
        tflops: FLOPs computed by one call, in TFLOP.
        pred: the last ``(H, W)`` argmax, on the CPU.
    """

    median_s: float
    first_s: float
    per_scale_s: dict[float, float]
    peak_mib: float
    tflops: float
    pred: torch.Tensor


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(row: Row, repeats: int, device: torch.device) -> RowResult:
    """Returns the :class:`RowResult` of ``row``: one first call, then ``repeats`` timed ones
    (peak memory is the CUDA allocator's; NaN on the CPU)."""
    _sync(device)
    start = time.perf_counter()
    row.run()
    _sync(device)
    first = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds: list[float] = []
    per_scale: dict[float, list[float]] = {}
    outcome: Outcome | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = row.run()
        _sync(device)
        seconds.append(time.perf_counter() - start)
        for scale, s in outcome[1].items():
            per_scale.setdefault(scale, []).append(s)
    assert outcome is not None
    return RowResult(
        median_s=statistics.median(seconds),
        first_s=first,
        per_scale_s={s: statistics.median(v) for s, v in per_scale.items()},
        peak_mib=torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else float("nan"),
        tflops=outcome[2] / 1e12,
        pred=outcome[0].cpu(),
    )


def _rows(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scales: tuple[float, ...],
    args: argparse.Namespace,
) -> list[Row]:
    """Returns the benchmark's rows in the order they run (see the module docstring)."""
    size = (int(image.shape[-2]), int(image.shape[-1]))
    tiled = replace(
        DEFAULT_LIMITS, max_tile_pixels=args.tile_pixels, cuda_max_tile_pixels=args.tile_pixels
    )

    def cascade(
        precision: str = "auto",
        fast: FastPathOptions | None = None,
        gate: float = 0.0,
        limits: InputLimits = DEFAULT_LIMITS,
        gate_by: str = "bound",
    ) -> Callable[[], Outcome]:
        def run() -> Outcome:
            result = hmsa_core.infer(
                image,
                scales,
                model=model,
                cache=None,
                precision=precision,
                fast_path=fast,
                gate=gate,
                gate_by=gate_by,
                limits=limits,
                return_attn=False,
            )
            costs = result.cost.per_scale
            return result.pred, {c.scale: c.seconds for c in costs}, float(result.cost.flops)

        return run

    def unfolded() -> Outcome:
        handle = model.register_forward_hook(lambda *_: None)  # the folded copy steps aside
        try:
            return cascade()()
        finally:
            handle.remove()

    def streams() -> Outcome:
        options = FastPathOptions("graphs", args.small_pixels, streams=True)
        outputs = run_on_streams(model, image, scales, "bf16", options)
        pred = merge(outputs, output_size=size).logits[0].argmax(0)
        return pred, {}, float("nan")

    small = FastPathOptions("graphs", args.small_pixels)
    every = FastPathOptions("graphs", 1 << 40)
    on_cuda = image.device.type == "cuda"
    rows = [] if args.no_fp32 else [Row("fp32 (TF32 off)", cascade("fp32"))]
    rows.append(Row("bf16 autocast, unfolded (before folding)", unfolded))
    rows.append(Row("auto: bf16 folded channels-last, eager", cascade()))
    rows.append(Row(f"auto, tiled at {args.tile_pixels:,} px", cascade(limits=tiled)))
    if on_cuda:
        rows.append(Row("fast: CUDA graphs, small scales", cascade(fast=small)))
        rows.append(Row("fast: CUDA graphs, every scale", cascade(fast=every)))
        rows.append(Row("fast: graphs + streams", streams))
    for by in args.gate_by:
        label = "" if by == "bound" else f" by {by}"
        for gate in args.gates:
            eager_gated = cascade(gate=gate, gate_by=by)
            rows.append(Row(f"auto + gate {gate:g}{label}, eager", eager_gated, gated=True))
            if on_cuda:
                graphed = cascade(fast=every, gate=gate, gate_by=by)
                rows.append(Row(f"graphs every scale + gate {gate:g}{label}", graphed, gated=True))
    if on_cuda and not args.no_compile:
        compiled = FastPathOptions("compile", args.small_pixels)
        rows.append(Row("fast: torch.compile, small scales", cascade(fast=compiled)))
        compiled_all = FastPathOptions("compile", 1 << 40)
        rows.append(Row("fast: torch.compile, every scale", cascade(fast=compiled_all)))
    return rows


#: A path whose first call (capture, compilation) takes longer than this is not a default.
LONG_FIRST_CALL_S = 10.0


@dataclass(frozen=True)
class Measured:
    """One measured row, as :func:`decide_auto` reads it.

    Attributes:
        name: the row's name.
        median_s: median seconds of the whole ``infer`` call.
        first_s: seconds of its first call.
        exact: True when its argmax equals eager ``auto``'s at every pixel.
        gated: True for an attention-gated row (it may change the result on other images, so
            an equal argmax here does not make it a path ``auto`` may take).
    """

    name: str
    median_s: float
    first_s: float
    exact: bool
    gated: bool = False


def decide_auto(rows: list[Measured], first_call_limit: float = LONG_FIRST_CALL_S) -> str:
    """Returns the line saying which path ``auto`` on CUDA should take: the fastest row that
    gives eager ``auto``'s argmax exactly (gated rows change the result, so they never
    qualify) and whose first call takes at most ``first_call_limit`` seconds (no long
    compilation); eager when none beats it or nothing qualifies."""
    eager = next((r for r in rows if r.name.startswith("auto:")), None)
    if eager is None:
        return "auto on CUDA: no eager 'auto' row measured, nothing to decide"
    fit = [r for r in rows if r.exact and not r.gated and r.first_s <= first_call_limit]
    best = min(fit, key=lambda r: r.median_s, default=eager)
    if best is eager or best.median_s >= eager.median_s:
        return (
            f"auto on CUDA: keep eager ({eager.median_s:.4f} s); no exact path with a "
            f"first call under {first_call_limit:g} s is faster"
        )
    share = 100 * best.median_s / eager.median_s
    return (
        f"auto on CUDA: {best.name} ({best.median_s:.4f} s, {share:.0f}% of eager "
        f"{eager.median_s:.4f} s; same argmax as eager; first call {best.first_s:.2f} s)"
    )


def _agreement(pred: torch.Tensor, reference: torch.Tensor | None) -> str:
    if reference is None:
        return ""
    return f"{100 * float((pred == reference).float().mean()):.3f}%"


def main(argv: list[str]) -> int:
    """Runs the comparison and prints a markdown table; returns 0 (2 without CUDA)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.bench gpu",
        description=__doc__,
        epilog="example:\n  python -m analysis.bench gpu --size 1024x2048 --scales 0.5,1,2 "
        "--repeats 10 --checkpoint recipe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", default="1024x2048", help="1.0 input size HxW")
    parser.add_argument("--scales", default="0.5,1,2", help="the cascade")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per row")
    parser.add_argument("--checkpoint", default=None, help="'recipe', a file, or random init")
    parser.add_argument(
        "--small-pixels", type=int, default=512 * 1024, help="largest 'small' pass input area"
    )
    parser.add_argument(
        "--tile-pixels",
        type=int,
        default=DEFAULT_LIMITS.max_tile_pixels,
        help="tile budget of the tiled row (default: HMSA_MAX_TILE_PIXELS's CPU default)",
    )
    parser.add_argument(
        "--gates", type=float, nargs="*", default=[0.02], help="gate rows (default 0.02)"
    )
    parser.add_argument(
        "--gate-by",
        nargs="*",
        default=["bound"],
        choices=GATE_CRITERIA,
        help="gate criteria of the gate rows (default bound)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--no-fp32", action="store_true", help="skip the float32 row")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the eager 'auto' row, print torch.profiler's top kernels and cProfile's "
        "top Python functions of one call",
    )
    parser.add_argument(
        "--device",
        default="cuda",
        help="cuda (default); 'cpu' runs only the rows that need no GPU (a wiring check)",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: the GPU benchmark needs CUDA (or --device cpu)", file=sys.stderr)
        return 2
    size, scales = parse_size(args.size), parse_scales(args.scales)
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # the fp32 row is exact float32
    torch.backends.cuda.matmul.allow_tf32 = False
    model = load_bench_model(args.checkpoint, device)
    image = torch.randn((1, 3, *size), generator=torch.Generator().manual_seed(0)).to(device)
    copy = inference_copy(model, torch.bfloat16)
    folded = "refused" if copy is None else f"{copy.folded} BatchNorms folded"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print("command: python -m analysis.bench gpu " + " ".join(argv), flush=True)
    print(
        f"{name} · torch {torch.__version__} · {args.size} · "
        f"({args.scales}) · weights {args.checkpoint or 'random'} · bf16 copy: {folded} · "
        f"median of {args.repeats}",
        flush=True,
    )
    print(
        "| path | median s | first call s | per-scale s | TFLOP computed | peak MiB "
        "| agreement with fp32 | with auto eager |\n|---|---:|---:|---|---:|---:|---:|---:|",
        flush=True,
    )
    fp32_pred = auto_pred = None
    measured: list[Measured] = []
    for row in _rows(model, image, scales, args):
        try:
            r = measure(row, args.repeats, device)
        except Exception as exc:  # report and go on: one failing path must not hide the others
            print(f"| {row.name} | failed: {type(exc).__name__}: {exc} | | | | | | |", flush=True)
            continue
        if row.name.startswith("fp32"):
            fp32_pred = r.pred
        if row.name.startswith("auto:"):
            auto_pred = r.pred
        exact = auto_pred is not None and bool(torch.equal(r.pred, auto_pred))
        measured.append(Measured(row.name, r.median_s, r.first_s, exact, row.gated))
        per_scale = " ".join(f"{s:g}: {t:.4f}" for s, t in sorted(r.per_scale_s.items()))
        print(
            f"| {row.name} | {r.median_s:.4f} | {r.first_s:.2f} | {per_scale} | {r.tflops:.2f} "
            f"| {r.peak_mib:,.0f} | {_agreement(r.pred, fp32_pred)} "
            f"| {_agreement(r.pred, auto_pred)} |",
            flush=True,
        )
        if args.profile and row.name.startswith("auto:"):  # before the long compile rows
            print(profile_table(row, device), flush=True)
            print(python_profile(row, device), flush=True)
    print(decide_auto(measured), flush=True)
    return 0


def profile_table(row: Row, device: torch.device, top: int = 25) -> str:
    """Returns torch.profiler's table of the ``top`` operators by self device time (CPU time on
    the CPU) of one call of ``row``."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        row.run()
        _sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def python_profile(row: Row, device: torch.device, top: int = 25) -> str:
    """Returns cProfile's ``top`` functions by own time of one call of ``row``: where the
    host spends the time the device waits."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    row.run()
    _sync(device)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()
