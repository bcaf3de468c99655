"""Markdown tables and JSON of a :class:`~analysis.where_report.WhereReport`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from analysis.where_stats import BinnedStats, _arrays_to_lists, _nan_none

if TYPE_CHECKING:  # pragma: no cover - types only
    from analysis.where_report import WhereReport


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100.0 * v:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "|".join(["---:"] * (len(header) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _bin_header(stats: BinnedStats) -> list[str]:
    """Returns one header cell per bin: name, object count, and "too few" when unreliable."""
    return [
        f"{n} (n={int(k)}{', too few' if not ok else ''})"
        for n, k, ok in zip(stats.names, stats.objects, stats.reliable)
    ]


def binned_markdown(report: WhereReport, stats: BinnedStats, title: str) -> list[str]:
    """Returns the lines of object recall, pixel accuracy and mIoU per bin and method, then the
    mean effective weight of each scale per bin for the weight methods."""
    lines = [f"**{title}**: object recall / pixel accuracy / mIoU (%) per bin.", ""]
    rows = []
    for m in report.methods:
        rec, acc, miou = stats.recall(m), stats.accuracy(m), stats.miou(m)
        rows.append([m, *(f"{_pct(r)} / {_pct(a)} / {_pct(i)}" for r, a, i in zip(rec, acc, miou))])
    lines += _table(["method", *_bin_header(stats)], rows)
    for m in report.methods:
        if m not in stats.weights:
            continue
        w = stats.mean_weight(m)
        header = ["bin", *(f"w@{s:g} (%)" for s in report.scales)]
        body = [[n, *(_pct(v) for v in row)] for n, row in zip(_bin_header(stats), w)]
        lines += [f"Mean effective weight of each scale, {m}:", "", *_table(header, body)]
    return lines


def report_markdown(report: WhereReport) -> str:
    """Returns every table of the report as markdown."""
    size = report.size
    lines = [
        f"Where each scale wins: {report.num_images} image(s), objects from "
        f"{report.object_source}; sizes: {size.description}.",
        "",
    ]
    lines += binned_markdown(report, size.by_size, "Objects by size")
    if size.by_distance is not None:
        lines += binned_markdown(report, size.by_distance, "Objects by camera distance")
    lines += boundary_markdown(report) + calibration_markdown(report)
    if report.notes:
        lines += ["Notes:", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(lines)


def boundary_markdown(report: WhereReport) -> list[str]:
    """Returns the trimap mIoU / accuracy table and the mean Boundary IoU per method."""
    b = report.boundary
    pixels = b.pixels()
    header = ["method", *(f"d<={w} (n={int(p):,})" for w, p in zip(b.widths, pixels))]
    header.append(f"Boundary IoU ({b.ratio:g} x diag)")
    rows = []
    for m in report.methods:
        cells = [f"{_pct(i)} / {_pct(a)}" for i, a in zip(b.miou(m), b.accuracy(m))]
        rows.append([m, *cells, _pct(b.mean_boundary_iou(m))])
    lines = ["**Near boundaries**: trimap mIoU / pixel accuracy (%) within d px.", ""]
    return lines + _table(header, rows)


def calibration_markdown(report: WhereReport) -> list[str]:
    """Returns ECE, accuracy and mean confidence per method."""
    rows = []
    for m in report.methods:
        h = report.calibration.bins[m]
        n = max(int(h.counts.sum()), 1)
        rows.append([m, _pct(h.ece()), _pct(h.correct.sum() / n), _pct(h.confidence.sum() / n)])
    header = ["method", "ECE (%)", "accuracy (%)", "mean confidence (%)"]
    return ["**Calibration** (top softmax probability, 15 bins).", "", *_table(header, rows)]


def _summary(report: WhereReport) -> dict:
    """Returns the headline numbers keyed by method (NaN as None)."""
    out = {}
    b, size = report.boundary, report.size.by_size
    for m in report.methods:
        out[m] = {
            "recall": dict(zip(size.names, _nan_none(size.recall(m)))),
            "trimap_miou": {str(w): v for w, v in zip(b.widths, _nan_none(b.miou(m)))},
            "trimap_accuracy": {str(w): v for w, v in zip(b.widths, _nan_none(b.accuracy(m)))},
            "boundary_iou": dict(zip(report.class_names, _nan_none(b.boundary_iou(m)))),
            "mean_boundary_iou": _nan_none([b.mean_boundary_iou(m)])[0],
            "ece": _nan_none([report.calibration.ece(m)])[0],
        }
        if m in size.weights:
            out[m]["mean_weight"] = {
                n: dict(zip((f"{s:g}" for s in report.scales), _nan_none(row)))
                for n, row in zip(size.names, size.mean_weight(m))
            }
    return out


def report_dict(report: WhereReport) -> dict:
    """Returns the JSON-able dict of a report (see :meth:`WhereReport.to_dict`)."""
    b, cal = report.boundary, report.calibration
    size = report.size
    return {
        "scales": list(report.scales),
        "methods": list(report.methods),
        "classes": list(report.class_names),
        "object_source": report.object_source,
        "num_images": report.num_images,
        "notes": list(report.notes),
        "summary": _summary(report),
        "size": {
            "description": size.description,
            "by_size": size.by_size.to_dict(),
            "by_diameter": size.by_diameter.to_dict(),
            "by_distance": None if size.by_distance is None else size.by_distance.to_dict(),
        },
        "boundary": {
            "widths": list(b.widths),
            "ratio": b.ratio,
            "pixels": {str(w): int(p) for w, p in zip(b.widths, b.pixels())},
            "distance_edges": list(b.distance_edges),
            "distance_pixels": b.distance_pixels.tolist(),
            "raw": {
                "band_confusion": _arrays_to_lists(b.band_confusion),
                "biou_intersection": _arrays_to_lists(b.biou_intersection),
                "biou_union": _arrays_to_lists(b.biou_union),
                "distance_weights": _arrays_to_lists(b.distance_weights),
            },
        },
        "calibration": {
            m: {
                "ece": _nan_none([h.ece()])[0],
                "counts": h.counts.tolist(),
                "confidence": h.confidence.tolist(),
                "correct": h.correct.tolist(),
                "accuracy": _nan_none(h.accuracy()),
                "mean_confidence": _nan_none(h.mean_confidence()),
            }
            for m, h in cal.bins.items()
        },
    }
