"""Renders ``docs/rich_display.png``: a result's notebook display (``_repr_html_``) in headless
chromium, as a notebook shows it. ``python docs/render_display.py`` (needs playwright and
Debian's chromium at /usr/bin/chromium)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

import hmsa_core

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "samples" / "synthscapes_val_001.png"
OUT = ROOT / "docs" / "rich_display.png"


def main() -> int:
    """Writes the screenshot; returns 0."""
    result = hmsa_core.infer(SAMPLE, (0.25, 0.5, 1.0, 2.0), return_attn=True)
    page_html = (
        "<html><body style='margin:12px;background:white'>"
        "<pre style='font-size:13px;color:#333'>In [2]: result = hmsa_core.infer(SAMPLE, "
        "(0.25, 0.5, 1.0, 2.0), return_attn=True)\n        result</pre>"
        f"{result._repr_html_()}</body></html>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "display.html"
        page_file.write_text(page_html, encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(page_file.as_uri())
            page.screenshot(path=str(OUT), full_page=True)
            browser.close()
    shot = Image.open(OUT).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    shot.save(OUT, optimize=True)  # an indexed PNG: a third of the bytes
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
