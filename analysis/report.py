"""A shareable, self-contained HTML report of one run or of a dataset sweep.

The report embeds plotly's JavaScript once (no network needed to open it), every figure, the
cost and per-class IoU tables and the model/cascade summary.

Command line::

    python -m analysis.report --image street.png [--mask street_mask.png] --scales 0.5,1,2 \\
        [--model hmsa-lite] [--methods hierarchical,mean,max,single] --out report.html
    python -m analysis.report --sweep results.csv --out report.html
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import html
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from analysis.attribution import Attribution, attribution_figure
from analysis.cascades import format_cascade
from analysis.cli_args import add_scales_argument, with_example
from analysis.compare import MethodComparison, compare_methods, method_cost, validate_gt
from analysis.exports import cost_rows
from analysis.figures import (
    cost_figure,
    iou_bars_figure,
    method_comparison_figure,
    overlay_figure,
    pareto_figure,
    scale_grid_figure,
)
from analysis.scale_stats import ScalePreference, scale_preference, scale_preference_figure
from analysis.sweep import IOU_PREFIX, SweepTable, subset_rows
from hmsa_core.inference import InferenceResult
from hmsa_core.labels import CITYSCAPES, LabelSet, distinct_colors

if TYPE_CHECKING:  # pragma: no cover - types only
    from analysis.where_report import WhereReport

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.figure { margin: 12px 0; } .note { color: #666; font-size: 0.9em; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Returns an escaped HTML ``<table>`` of ``rows`` under ``headers``."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100.0 * value:.2f}"


class _Page:
    """Collects the report's sections; each figure becomes one plotly div."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{_esc(text)}</h2>")

    def raw(self, text: str) -> None:
        self.parts.append(text)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{_esc(text)}</p>')

    def figure(self, fig: go.Figure) -> None:
        self.figures += 1
        div = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"figure-{self.figures}",
            config={"displaylogo": False, "responsive": True},
        )
        self.parts.append(f'<div class="figure">{div}</div>')


def _summary(result: InferenceResult) -> str:
    cost = result.cost
    rows = [
        ("model", result.model_name or "(unnamed)"),
        ("label set", f"{result.labels.name} ({result.labels.num_classes} classes)"),
        ("image", f"{result.size[1]} x {result.size[0]} pixels"),
        ("cascade", format_cascade(result.scales, ", ")),
        ("merge method", result.method),
        ("forward passes", f"{len(cost.per_scale)} ({len(cost.cached_scales)} from cache)"),
        ("total GFLOPs", f"{cost.gflops:.2f}"),
        ("seconds (now / when computed)", f"{cost.seconds:.3f} / {cost.compute_seconds:.3f}"),
    ]
    return html_table(["", "value"], rows)


def _comparison_tables(page: _Page, comparison: MethodComparison) -> None:
    labels = comparison.labels
    headers = ["method", "scales", "GFLOPs", "seconds"]
    if comparison.scores is not None:
        headers += ["mIoU (%)", "pixel acc (%)"]
    rows = []
    for method in comparison.methods:
        cost = method_cost(comparison, method)
        row: list[object] = [method, format_cascade([c.scale for c in cost.per_scale], ", "), f"{cost.gflops:.2f}", f"{cost.compute_seconds:.3f}"]  # fmt: skip
        if comparison.scores is not None:
            scores = comparison.scores[method]
            row += [_pct(scores.miou), _pct(scores.pixel_accuracy)]
        rows.append(row)
    page.raw(html_table(headers, rows))
    if comparison.skipped:
        page.raw(html_table(["skipped method", "why"], list(comparison.skipped.items())))
    if comparison.scores is not None:
        present = sorted(
            {
                c
                for s in comparison.scores.values()
                for c in range(labels.num_classes)
                if s.present[c]
            }
        )
        iou_rows = [
            [labels.names[c], *(_pct(comparison.scores[m].iou[c]) for m in comparison.methods)]
            for c in present
        ]
        page.note("Per-class IoU (%) against ground truth.")
        page.raw(html_table(["class", *comparison.methods], iou_rows))


def _sweep_table(table: SweepTable) -> str:
    headers = ["cascade", "method", "mIoU (%)" if table.reference == "ground truth" else "agreement (%)", "pixel acc (%)", "GFLOPs/img", "s/img", "note"]  # fmt: skip
    rows = [
        [format_cascade(r.cascade, ", "), r.method, _pct(r.miou), _pct(r.pixel_accuracy),
         f"{r.gflops:.2f}", "n/a" if math.isnan(r.seconds) else f"{r.seconds:.3f}", r.note]
        for r in table.rows
    ]  # fmt: skip
    return html_table(headers, rows)


def _preference_table(pref: ScalePreference) -> str:
    headers = ["class", "pixels", *(f"w@{s:g} (%)" for s in pref.scales), "preferred scale"]
    preferred = pref.preferred_scale
    order = sorted(range(len(pref.class_ids)), key=lambda k: -preferred[k])
    rows = [
        [pref.class_names[k], f"{int(pref.pixels[k]):,}", *(f"{100 * v:.1f}" for v in pref.weights[k]), f"{preferred[k]:.2f}"]
        for k in order
    ]  # fmt: skip
    return html_table(headers, rows)


def markdown_html(text: str) -> str:
    """Returns the HTML of the small Markdown subset the analysis tables use: pipe tables
    (the ``|---|`` rule row dropped) and paragraphs, with ``**bold**`` and ``` `code` ```; every
    text is escaped."""

    def inline(value: str) -> str:
        value = _esc(value)
        value = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", value)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", value)

    parts: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head = "".join(f"<th>{inline(c)}</th>" for c in table[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>"
                for row in table[1:]
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table.append(cells)
            continue
        flush()
        if line:
            parts.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(parts)


def _where_section(page: _Page, where: WhereReport, result: InferenceResult | None) -> None:
    """The where-report: its figures, its tables, and the result's confidence maps."""
    from analysis.where_figures import where_figures
    from analysis.where_views import confidence_grid_figure

    page.heading("Where each scale wins")
    page.note(
        f"{where.num_images} image(s); objects from {where.object_source}. Object recall, "
        "accuracy and IoU per object size, trimap scores within d pixels of a class boundary, "
        "Boundary IoU and calibration, for every merge method and single scale re-merged from "
        "the same per-scale outputs; bins with too few objects are drawn hatched."
    )
    for note in where.notes:
        page.note(note)
    for fig in where_figures(where).values():
        page.figure(fig)
    page.raw(markdown_html(where.to_markdown()))
    if result is not None:
        page.figure(confidence_grid_figure(result))


def build_report(
    result: InferenceResult | None,
    comparison: MethodComparison | None = None,
    sweep: SweepTable | None = None,
    preference: ScalePreference | None = None,
    *,
    attributions: Sequence[Attribution] = (),
    where: WhereReport | None = None,
    title: str = "HMSA Explorer report",
    opacity: float = 0.5,
) -> str:
    """Returns one self-contained HTML page (plotly's JavaScript embedded once, no network).

    Sections, for what is given: model/cascade summary; prediction overlay; per-scale grid; merge
    methods (figure, metrics table, skipped methods, per-class IoU table and bars with ground
    truth); compute cost (figure and table); cascade Pareto chart and sweep table; per-class
    scale preference (heatmap and table); with ``where`` (an
    :class:`~analysis.where_report.WhereReport`, made with a mask) where each scale wins: size,
    boundary and calibration figures and tables, and the confidence maps; attributions.

    Raises:
        ValueError: nothing to report (no result and no sweep).
    """
    if result is None and sweep is None and comparison is None:
        raise ValueError("nothing to report: give an inference result or a sweep table")
    if result is None and comparison is not None:
        result = comparison.base
    page = _Page()
    if result is not None:
        page.heading("Run")
        page.raw(_summary(result))
        page.heading("Prediction")
        page.figure(overlay_figure(result, opacity))
        page.heading("Per-scale outputs")
        page.note(
            "Each scale's own prediction, its raw attention a and its effective weight in the "
            "merged result (weights sum to 1 at every pixel)."
        )
        page.figure(scale_grid_figure(result))
    if comparison is not None and comparison.methods:
        page.heading("Merge methods")
        page.figure(method_comparison_figure(comparison))
        _comparison_tables(page, comparison)
        if comparison.scores is not None:
            page.figure(iou_bars_figure(comparison))
    if result is not None:
        page.heading("Compute cost")
        page.figure(cost_figure(result.cost))
        rows = cost_rows(result.cost, total=True)
        page.raw(html_table(list(rows[0]), [list(r.values()) for r in rows]))
    if sweep is not None:
        page.heading("Cascades: accuracy vs compute")
        if any(not math.isnan(r.miou) for r in sweep.rows):
            page.figure(pareto_figure(sweep))
        page.note(f"Scored against {sweep.reference} on {sweep.num_images} image(s).")
        page.raw(_sweep_table(sweep))
    if preference is not None and preference.class_ids:
        page.heading("Which scale decides each class")
        page.figure(scale_preference_figure(preference))
        page.raw(_preference_table(preference))
    if where is not None:
        _where_section(page, where, result)
    if attributions:
        page.heading("Attributions")
        for attr in attributions:
            labels = result.labels if result is not None else CITYSCAPES
            name = (
                labels.names[attr.target_class] if attr.target_class < labels.num_classes else None
            )
            page.figure(attribution_figure(attr, name))
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f'<h1>{_esc(title)}</h1><p class="note">Generated {stamp}; {page.figures} figure(s); '
        "works offline.</p>" + "\n".join(page.parts) + "</body></html>\n"
    )


def report_html_bytes(
    result: InferenceResult | None,
    comparison: MethodComparison | None = None,
    sweep: SweepTable | None = None,
    preference: ScalePreference | None = None,
    **kwargs: object,
) -> bytes:
    """Returns :func:`build_report`'s page as UTF-8 bytes (for download buttons)."""
    return build_report(result, comparison, sweep, preference, **kwargs).encode("utf-8")  # type: ignore[arg-type]


def count_figures(page: str) -> int:
    """Returns how many plotly figures a report page holds."""
    return page.count('class="plotly-graph-div"')


def sweep_labels(path: str | Path) -> LabelSet:
    """Returns the label set of a sweep CSV: Cityscapes when its ``iou_*`` columns are
    Cityscapes' classes, else a set named after the columns (raises ``ValueError`` if unreadable)."""
    try:
        with Path(path).open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except OSError as exc:
        raise ValueError(f"cannot read sweep file {path}: {exc}") from exc
    names = tuple(c[len(IOU_PREFIX) :] for c in header if c.startswith(IOU_PREFIX))
    if not names or names == CITYSCAPES.names:
        return CITYSCAPES
    return LabelSet(name="sweep", names=names, colors=distinct_colors(len(names)))


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m analysis.report``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Write a self-contained offline HTML report of one run or of a sweep CSV.",
    )
    parser.add_argument("--image", help="input image")
    parser.add_argument("--mask", help="ground-truth mask of the image (class ids)")
    add_scales_argument(parser)
    parser.add_argument(
        "--model", default=None, help="bundled name or checkpoint path (default: hmsa-lite)"
    )
    parser.add_argument(
        "--methods",
        default="hierarchical,mean,max,single,explicit",
        help="merge methods to compare",
    )
    parser.add_argument(
        "--no-subsets", action="store_true", help="skip the every-subset Pareto chart of the image"
    )
    parser.add_argument("--sweep", help="a sweep CSV written by python -m analysis.sweep")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out", default="report.html", help="output HTML path")
    return with_example(
        parser,
        "python -m analysis.report --image assets/samples/synthscapes_val_000.png \\\n"
        "      --mask assets/samples/synthscapes_val_000_mask.png --scales 0.5 1 2 --out report.html",
    )


def _image_report(args: argparse.Namespace, sweep: SweepTable | None) -> str:
    import hmsa_core

    model = hmsa_core.load_model(args.model, args.device)
    scales = args.scales
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    result = hmsa_core.infer(args.image, scales, model=model)
    gt = validate_gt(args.mask, result.size, result.labels) if args.mask else None
    comparison = compare_methods(result, methods, gt=gt, model=model)
    if sweep is None and not args.no_subsets and len(result.scales) > 1:
        sweep = subset_rows(
            result, [m for m in methods if m != "explicit"] or ["hierarchical"], gt=gt, model=model
        )
    preference = scale_preference(result, gt)
    where = None
    if gt is not None:
        from analysis.where_scales import analyse_where

        where = analyse_where(result, gt, methods=comparison.methods or None, model=model)
    title = f"HMSA Explorer report: {Path(args.image).name}"
    return build_report(result, comparison, sweep, preference, where=where, title=title)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        if not args.image and not args.sweep:
            raise ValueError("give --image (one run) or --sweep results.csv (a dataset sweep)")
        sweep = SweepTable.from_csv(args.sweep, sweep_labels(args.sweep)) if args.sweep else None
        if args.image:
            page = _image_report(args, sweep)
        else:
            page = build_report(
                None, sweep=sweep, title=f"HMSA Explorer sweep report: {Path(args.sweep).name}"
            )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {count_figures(page)} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
