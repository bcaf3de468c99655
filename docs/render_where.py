"""Renders the README's "Where each scale wins" figures from a where-report JSON (written by
``python -m analysis.where_cli ... --json FILE``) with the library's own plotly builders, as PNGs
screenshotted in headless chromium (needs playwright and Debian's chromium at /usr/bin/chromium).

    python docs/render_where.py results/where_synthscapes_val100.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from analysis.where_figures import (
    reliability_figure,
    size_figure,
    trimap_figure,
    weight_by_size_figure,
)
from analysis.where_report import WhereReport

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs"
WEIGHT_METHOD = "hierarchical@0.5,1,2"


def figures(report: WhereReport) -> dict[str, object]:
    """Returns the four figures by file stem."""
    weight = WEIGHT_METHOD if WEIGHT_METHOD in report.weight_methods else None
    return {
        "where_small_objects": size_figure(report, "size", "recall"),
        "where_trimap": trimap_figure(report, "miou"),
        "where_calibration": reliability_figure(report),
        "where_weight_by_size": weight_by_size_figure(report, weight, "size"),
    }


def main(argv: list[str] | None = None) -> int:
    """Writes ``docs/where_*.png``; returns 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    source = Path(argv[0] if argv else ROOT / "results" / "where_synthscapes_val100.json")
    report = WhereReport.from_dict(json.loads(source.read_text(encoding="utf-8")))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 900, "height": 480})
        for stem, fig in figures(report).items():
            fig.update_layout(width=880, height=460, margin={"l": 60, "r": 20, "t": 50, "b": 50})
            html = Path(tmp) / f"{stem}.html"
            html.write_text(fig.to_html(include_plotlyjs=True, full_html=True), encoding="utf-8")
            page.goto(html.as_uri())
            page.wait_for_selector(".main-svg")
            out = OUT / f"{stem}.png"
            page.screenshot(path=str(out), full_page=True)
            shot = Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
            shot.save(out, optimize=True)
            print(f"wrote {out}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
