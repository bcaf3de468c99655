"""Command line of the where-analysis: ``hmsa scale-stats --by size|boundary|distance`` and
``hmsa calibration`` (DESIGN 1.7).

The images run through :func:`analysis.sweep.sweep` (one pass per scale, ``torchrun``
sharding, sums all-reduced) with a :class:`~analysis.where_scales.WhereAccumulator`; every
method is re-merged from those passes. Prints the table of ``--by`` and writes every number of
the report (keyed by method, bin or width) plus each image's small-object recall with
``--json``::

    python -m analysis.where_cli --by size --data synthscapes:val:16 --scales 0.5,1,2 --json size.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis.cli_args import add_scales_argument, with_example
from analysis.sweep import load_sweep_model, sweep
from analysis.where_markdown import (
    _pct,
    _table,
    binned_markdown,
    boundary_markdown,
    calibration_markdown,
)
from analysis.where_report import WhereReport
from analysis.where_scales import WhereAccumulator, WhereSettings, parse_where_method
from hmsa_core.train import distributed

BY_CHOICES = ("size", "boundary", "distance", "calibration", "all")


def reliability_markdown(report: WhereReport) -> list[str]:
    """Returns a table of the reliability diagram: per confidence bin, each method's accuracy
    (pixels in the bin)."""
    first = report.calibration.bins[report.methods[0]]
    edges = first.edges
    rows = []
    for k in range(len(edges) - 1):
        cells = []
        for m in report.methods:
            h = report.calibration.bins[m]
            cells.append(f"{_pct(h.accuracy()[k])} (n={int(h.counts[k]):,})")
        rows.append([f"{edges[k]:.2f}-{edges[k + 1]:.2f}", *cells])
    lines = ["Reliability: accuracy (%) of the pixels in each confidence bin.", ""]
    return lines + _table(["confidence", *report.methods], rows)


def boundary_weight_markdown(report: WhereReport) -> list[str]:
    """Returns the mean effective weight of each scale by distance to a boundary."""
    b = report.boundary
    lines: list[str] = []
    for m in report.weight_methods:
        w = b.mean_weight(m)
        header = ["distance (px)", "pixels", *(f"w@{s:g} (%)" for s in report.scales)]
        rows = [
            [f">= {e:g}", f"{int(n):,}", *(_pct(v) for v in row)]
            for e, n, row in zip(b.distance_edges, b.distance_pixels, w)
        ]
        lines += [f"Mean effective weight by distance to a boundary, {m}:", ""]
        lines += _table(header, rows)
    return lines


def report_text(report: WhereReport, by: str) -> str:
    """Returns the markdown of the part ``by`` of ``report`` (``all``: every part)."""
    head = (
        f"{report.num_images} image(s); objects from {report.object_source}; "
        f"sizes: {report.size.description}."
    )
    lines = [head, ""]
    if by in ("size", "all"):
        lines += binned_markdown(report, report.size.by_size, "Objects by size")
    if by in ("distance", "all"):
        if report.size.by_distance is None:
            if by == "distance":
                raise ValueError(
                    "this data has no camera distances: --by distance needs SynthScapes "
                    "(synthscapes:val:N)"
                )
        else:
            lines += binned_markdown(report, report.size.by_distance, "Objects by camera distance")
    if by in ("boundary", "all"):
        lines += boundary_markdown(report) + boundary_weight_markdown(report)
    if by in ("calibration", "all"):
        lines += calibration_markdown(report) + reliability_markdown(report)
    if report.notes:
        lines += ["Notes:", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(lines)


def build_parser(prog: str = "python -m analysis.where_cli") -> argparse.ArgumentParser:
    """Returns the argument parser of the where-analysis command line."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Where each scale wins: object recall by size or camera distance, trimap "
        "and Boundary IoU near boundaries, calibration; per method and single scale.",
    )
    parser.add_argument("--by", default="all", choices=BY_CHOICES, help="which table to print")
    parser.add_argument("--data", default="synthscapes:val:16", help="dataset spec (as the sweep)")
    add_scales_argument(parser)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="methods (default: hierarchical, mean, max and single:<s> for every scale), given "
        "apart or comma-separated; 'hierarchical@0.5,1,2' (one token) scores a method on a "
        "sub-cascade of --scales",
    )
    parser.add_argument("--model", default="hmsa-lite", help="bundled name or checkpoint path")
    parser.add_argument("--max-images", "--limit", dest="limit", type=int, default=None)
    parser.add_argument("--min-objects", type=int, default=10, help="fewer objects: 'too few'")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number here")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return with_example(
        parser,
        "hmsa scale-stats --by size --data synthscapes:val:16 --scales 0.5,1,2 --json size.json",
        "hmsa calibration --data synthscapes:val:16 --json calibration.json",
        "python -m analysis.where_cli --scales 0.25,0.5,1,2 --methods single:1 hierarchical@0.5,1,2 "
        "hierarchical",
    )


def split_methods(tokens: list[str] | tuple[str, ...]) -> list[str]:
    """Returns the methods of command-line tokens: a token with ``@`` is one method (its cascade
    holds commas), any other is split on commas."""
    methods: list[str] = []
    for token in tokens:
        parts = [token] if "@" in token else token.split(",")
        methods += [p.strip() for p in parts if p.strip()]
    return methods


def run(args: argparse.Namespace) -> WhereAccumulator:
    """Returns the filled accumulator of parsed arguments (the sweep does the passes)."""
    from hmsa_core.data.open import open_dataset

    scales = tuple(sorted(float(s) for s in args.scales))
    methods = split_methods(args.methods or ()) or None
    for m in methods or ():
        parse_where_method(m)  # ValueError for a bad cascade
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--max-images must be at least 1, got {args.limit}")
    model = load_sweep_model(args.model, args.device)
    settings = WhereSettings(min_objects=int(args.min_objects))
    acc = WhereAccumulator(model.labels, scales, methods, settings, model=model)
    sweep(
        model, open_dataset(args.data), [scales], ("mean",), limit=args.limit,
        precision=args.precision, progress=not args.no_progress, where=acc,
    )  # fmt: skip
    return acc


def main(argv: list[str] | None = None, prog: str = "python -m analysis.where_cli") -> int:
    """Runs the command line; prints the table; returns the exit code (2 on bad input)."""
    args = build_parser(prog).parse_args(argv)
    info = distributed.setup()  # joins the process group under torchrun
    rank, world = info.rank, info.world_size
    args.device = info.device if info.distributed else args.device
    try:
        try:
            acc = run(args)
            report = acc.report()
            text = report_text(report, args.by)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if rank == 0:
            print(text, end="")
            if args.json:
                data = {
                    "by": args.by,
                    "data": args.data,
                    **report.to_dict(),
                    "images": [i.to_dict() for i in acc.images],
                }
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(data), encoding="utf-8")
                print(f"wrote {args.json} ({world} process(es))")
        return 0
    finally:
        distributed.cleanup(info)


def calibration_main(argv: list[str] | None = None) -> int:
    """Runs ``hmsa calibration``: :func:`main` with ``--by calibration``."""
    rest = list(sys.argv[1:] if argv is None else argv)
    return main(["--by", "calibration", *rest], prog="hmsa calibration")


if __name__ == "__main__":
    sys.exit(main())
