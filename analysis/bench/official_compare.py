"""Side-by-side benchmark of the official model: precision, tiling and attention gating.

``python -m analysis.bench official [--size 512x1024] [--scales 0.5,1,2] [--checkpoint F]
[--image F|fixture] [--configs ...] [--repeats N] [--tile-pixels N]``

Each configuration runs one :func:`hmsa_core.infer` in its own subprocess (so each peak RSS
is that configuration's alone), after a small warm-up cascade. The parent prints time,
FLOPs spent and saved, peak RSS, and the argmax agreement and merged-logit difference of
every configuration with the first one (fp32, default tiling, ungated). For gated rows it
also prints what gating the first row's outputs with exact tiles moves, against the stated
bound. Weights: ``--checkpoint`` (``recipe``: the golden fixtures' deterministic weights),
else random with a fixed seed (random weights time the same as trained ones, but their
attention is not trained, so gating savings need other weights). Image: SynthScapes val
image 0 resized to ``--size``, a file, or the golden tests' input."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hmsa_core.models.base import ScaleOutput

#: name -> (precision, tiled, gate); the first is the reference of the agreement column.
#: Untiled rows use the library's default tile budget (what users get: a pass above
#: ``HMSA_MAX_TILE_PIXELS`` is tiled anyway); ``+tiled`` rows use ``--tile-pixels``.
CONFIGS: dict[str, tuple[str, bool, float]] = {
    "fp32": ("fp32", False, 0.0),
    "auto": ("auto", False, 0.0),
    "fp32+tiled": ("fp32", True, 0.0),
    "auto+tiled": ("auto", True, 0.0),
    "fp32+gate0.02": ("fp32", False, 0.02),
    "auto+gate0.02": ("auto", False, 0.02),
    "auto+gate0.05": ("auto", False, 0.05),
}


@dataclass(frozen=True)
class Measurement:
    """One configuration's run.

    Attributes:
        name: the configuration.
        precision: what ran (``"fp32"``/``"bf16"``).
        seconds: wall seconds of the first ``infer`` call (including the one-off work of each
            new input size: the meta-device FLOP count and oneDNN's kernel set-up).
        again_seconds: wall seconds of the best repeated call on the same image (``nan``
            without ``--repeats``): the steady state of a dataset or a video.
        pass_seconds: the seconds of the forward passes alone (sum over scales, first call).
        gflops: FLOPs spent, 1e9.
        gflops_saved: FLOPs gating skipped, 1e9.
        peak_rss_mib: the subprocess's peak resident memory, MiB.
        pred_path: where its ``(H, W)`` prediction was saved (``.npy``).
        fractions: scale -> fraction computed.
        gate: the gate threshold tau (0: ungated).
        exact_gating: only on an ungated run: ``"<tau>" -> (moved, bound)``, what gating
            would do to this run's merged logits with exact tiles (:func:`exact_tile_gating`).
    """

    name: str
    precision: str
    seconds: float
    again_seconds: float
    pass_seconds: float
    gflops: float
    gflops_saved: float
    peak_rss_mib: float
    pred_path: str
    fractions: dict[str, float]
    gate: float = 0.0
    exact_gating: dict[str, tuple[float, float]] = field(default_factory=dict)


def exact_tile_gating(
    per_scale: Mapping[float, ScaleOutput], tau: float, tile: int
) -> tuple[float, float]:
    """Returns ``(moved, bound)`` for gating the ungated outputs ``per_scale`` at ``tau`` as
    if every tile it computes were exact (:func:`hmsa_core.gating.gate_cascade`): the largest
    change of any merged logit, and the stated bound ``tau * G * L``
    (:func:`hmsa_core.gating.gate_error_bound`). A real gated run of a model with global
    context (the OCR head) also carries the error of running its tiles apart."""
    from hmsa_core.gating import gate_cascade, gate_error_bound
    from hmsa_core.merge import hierarchical_logits

    gated, covered = gate_cascade(per_scale, tau, tile)
    full = hierarchical_logits(
        {s: o.logits for s, o in per_scale.items()}, {s: o.attention for s, o in per_scale.items()}
    )
    merged = hierarchical_logits(
        {s: o.logits for s, o in gated.items()}, {s: o.attention for s, o in gated.items()}
    )
    skipped = sum(1 for mask in covered.values() if not bool(mask.all()))
    bound = gate_error_bound({s: o.logits for s, o in per_scale.items()}, tau, skipped)
    return float((merged - full).abs().max()), bound


#: ``--image fixture``: the golden tests' input, already normalised, at its own size.
FIXTURE_IMAGE = "fixture"
IMAGE_NAMES = {None: "SynthScapes val 0", FIXTURE_IMAGE: "the golden fixtures' input"}


def fixture_input() -> np.ndarray:
    """Returns the golden fixtures' normalised input ``(1, 3, 64, 128)`` float32, the input
    NVIDIA's code produced the golden arrays from."""
    from analysis.bench.official import FIXTURES

    return np.load(FIXTURES / "nvidia_mscale_golden.npz")["input"]


def bench_image(size: tuple[int, int], path: str | None = None) -> np.ndarray:
    """Returns the benchmark input: the ``(H, W, 3)`` uint8 image resized to ``size`` (the
    file at ``path``, a photograph say, else SynthScapes val image 0), or, for
    ``path="fixture"``, :func:`fixture_input` as it is (``size`` must then be its size)."""
    from PIL import Image

    from hmsa_core.data.open import open_dataset

    if path == FIXTURE_IMAGE:
        tensor = fixture_input()
        if tuple(tensor.shape[-2:]) != size:
            raise ValueError(
                f"the fixture input is {tensor.shape[-2]}x{tensor.shape[-1]}; "
                f"pass --size {tensor.shape[-2]}x{tensor.shape[-1]}"
            )
        return tensor
    if path:
        image = np.asarray(Image.open(path).convert("RGB"))
    else:
        image = np.asarray(open_dataset("synthscapes:val:1")[0].image)
    if image.shape[:2] != size:
        image = np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))
    return image


def run_one(spec: dict) -> dict:
    """Runs one configuration in this process; returns its measurement as a dict."""
    import torch

    import hmsa_core
    from analysis.bench.official import load_bench_model
    from hmsa_core.limits import InputLimits

    torch.manual_seed(0)
    model = load_bench_model(spec["checkpoint"], torch.device("cpu"))
    limits = InputLimits(max_tile_pixels=spec["max_tile_pixels"])
    size = tuple(spec["size"])
    array = bench_image(size, spec.get("image"))  # type: ignore[arg-type]
    image = torch.from_numpy(array) if array.ndim == 4 else array
    warm = image[..., :128, :256] if array.ndim == 4 else image[:128, :256]
    hmsa_core.infer(warm, (0.5, 1.0), model=model, precision=spec["precision"], cache=None)

    def once() -> tuple[hmsa_core.InferenceResult, float]:
        start = time.perf_counter()
        result = hmsa_core.infer(
            image,
            tuple(spec["scales"]),
            model=model,
            precision=spec["precision"],
            cache=None,
            limits=limits,
            gate=spec["gate"],
        )
        return result, time.perf_counter() - start

    result, seconds = once()
    again = min((once()[1] for _ in range(spec.get("repeats", 0))), default=float("nan"))
    np.save(spec["pred_path"], result.pred.numpy().astype(np.int16))
    top2 = result.logits.topk(2, dim=0).values
    np.save(spec["pred_path"].replace(".npy", "_margin.npy"), (top2[0] - top2[1]).numpy())
    np.save(spec["pred_path"].replace(".npy", "_logits.npy"), result.logits.float().numpy())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "precision": ",".join(result.cost.precisions),
        "seconds": seconds,
        "again_seconds": again,
        "pass_seconds": result.cost.seconds,
        "gflops": result.cost.gflops,
        "gflops_saved": result.cost.gflops_saved,
        "peak_rss_mib": peak_kib / 1024,
        "fractions": {f"{c.scale:g}": c.computed_fraction for c in result.cost.per_scale},
        "gate": float(spec["gate"]),
        "exact_gating": {
            f"{tau:g}": exact_tile_gating(
                {s: r.output for s, r in result.per_scale.items()}, tau, limits.gate_tile
            )
            for tau in spec.get("exact_gates", [])
        },
    }


def measure(name: str, spec: dict) -> Measurement:
    """Returns the :class:`Measurement` of ``spec`` run in a fresh subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.bench.official_compare", "--one", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"configuration {name!r} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["exact_gating"] = {k: tuple(v) for k, v in data["exact_gating"].items()}
    return Measurement(name=name, pred_path=spec["pred_path"], **data)


def format_table(rows: list[Measurement]) -> str:
    """Returns the markdown table of the measurements. Agreement and the merged logits'
    difference (largest and mean absolute, over ``(C, H, W)``) are against the first row; the
    gating column shows, for a gated row, what gating the reference's outputs with exact tiles
    moves and the stated bound (see :func:`exact_tile_gating`); ``first call s`` is the first
    ``infer`` on the image size (its pass plan and FLOP estimate included: one traced formula
    per model, made during the warm-up), ``first / again`` its ratio to the best repeated
    call (``--repeats``); the last column is
    the largest top-2 logit margin of the first row at a pixel where the two disagree (small:
    they differ only where the reference itself nearly ties)."""
    reference = np.load(rows[0].pred_path)
    margin = np.load(rows[0].pred_path.replace(".npy", "_margin.npy"))
    reference_logits = np.load(rows[0].pred_path.replace(".npy", "_logits.npy"))
    lines = [
        "| configuration | ran | first call s | again s | first / again | passes s | GFLOP/s "
        "| GFLOPs spent "
        "| GFLOPs saved | computed per scale | peak RSS (MiB) | argmax agreement "
        "| max / mean abs logit diff | exact-tile gating: moved / bound | max ref. margin at a disagreement |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        differ = np.load(row.pred_path) != reference
        agree = 1.0 - float(differ.mean())
        delta = np.abs(np.load(row.pred_path.replace(".npy", "_logits.npy")) - reference_logits)
        worst = f"{float(margin[differ].max()):.3f}" if differ.any() else "-"
        fractions = ", ".join(f"{s}: {f:.2f}" for s, f in row.fractions.items())
        again = "-" if np.isnan(row.again_seconds) else f"{row.again_seconds:.2f}"
        ratio = "-" if np.isnan(row.again_seconds) else f"{row.seconds / row.again_seconds:.2f}"
        exact = rows[0].exact_gating.get(f"{row.gate:g}") if row.gate > 0 else None
        bound = "-" if exact is None else f"{exact[0]:.3f} / {exact[1]:.3f}"
        rate = row.gflops / row.pass_seconds if row.pass_seconds > 0 else float("nan")
        lines.append(
            f"| {row.name} | {row.precision} | {row.seconds:.2f} | {again} | {ratio} | "
            f"{row.pass_seconds:.2f} | {rate:.0f} | {row.gflops:.0f} | {row.gflops_saved:.0f} | "
            f"{fractions} | {row.peak_rss_mib:.0f} | {100 * agree:.2f}% | "
            f"{float(delta.max()):.3f} / {float(delta.mean()):.4f} | {bound} | {worst} |"
        )
    lines.append(
        f"\nreference ({rows[0].name}) top-2 logit margin: median "
        f"{float(np.median(margin)):.3f}, 1st percentile {float(np.percentile(margin, 1)):.3f}"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Runs every configuration and prints the side-by-side table; returns 0 (2 on bad input)."""
    if argv[:1] == ["--one"]:
        print(json.dumps(run_one(json.loads(argv[1]))))
        return 0
    from analysis.bench.official import bench_parser, parse_size
    from analysis.cli_args import add_scales_argument
    from hmsa_core.limits import DEFAULT_LIMITS

    parser = bench_parser("official", __doc__, "--size 512x1024 --scales 0.5,1,2", "512x1024")
    add_scales_argument(parser)
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="weights file, or 'recipe' for the golden fixtures' deterministic weights "
        "(default: random init)",
    )
    parser.add_argument(
        "--image",
        default=None,
        help="image file to run, or 'fixture' for the golden tests' 64x128 input "
        "(default: SynthScapes val image 0)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="also time this many repeated calls on the same image (the 'again s' column)",
    )
    parser.add_argument(
        "--tile-pixels",
        type=int,
        default=None,
        help="max_tile_pixels of the tiled configuration (default: the 1.0 pass's area, so every "
        "larger pass runs in tiles)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated subset of: {', '.join(CONFIGS)} (the first is the reference)",
    )
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
        scales = args.scales
        names = [n.strip() for n in args.configs.split(",") if n.strip()]
        unknown = [n for n in names if n not in CONFIGS]
        if unknown:
            raise ValueError(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
        if args.image == FIXTURE_IMAGE:
            bench_image(size, FIXTURE_IMAGE)  # checks the size
        elif args.image and not Path(args.image).is_file():
            raise ValueError(f"no image file at {args.image!r}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tile_pixels = args.tile_pixels or max(size[0] * size[1], 300 * 300)
    default_budget = DEFAULT_LIMITS.max_tile_pixels
    print(
        f"hrnet48_ocr_mscale, {size[0]}x{size[1]}, cascade {args.scales}, "
        f"{'weights ' + args.checkpoint if args.checkpoint else 'random weights'}, "
        f"image {IMAGE_NAMES.get(args.image, args.image)}, "
        f"cpu ({os.cpu_count()} cores), one subprocess per row; +tiled rows: "
        f"max_tile_pixels={tile_pixels:,}, other rows: the default {default_budget:,}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names):
            precision, tiled, gate = CONFIGS[name]
            spec = {
                "checkpoint": args.checkpoint,
                "size": list(size),
                "scales": list(scales),
                "precision": precision,
                "gate": gate,
                "max_tile_pixels": tile_pixels if tiled else default_budget,
                "image": args.image,
                "repeats": max(0, args.repeats),
                "pred_path": str(Path(tmp) / f"pred{i}.npy"),
            }
            if i == 0 and gate == 0:
                spec["exact_gates"] = sorted({CONFIGS[n][2] for n in names} - {0.0})
            rows.append(measure(name, spec))
            print(f"  done: {name} ({rows[-1].seconds:.1f} s)", file=sys.stderr, flush=True)
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
