"""The explorer's "Where scales win" tab in a real browser: `streamlit run app/explorer.py` on
127.0.0.1 driven by Debian chromium through playwright, opened by a shared link naming the tab;
its size, boundary, calibration and confidence plots must render. Skipped without chromium or
playwright, failed instead when ``HMSA_REQUIRE_BROWSER=1`` (see tests/browser.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from hmsa_core.data.synthscapes import write_samples
from tests.browser import (
    CHROMIUM_ARGS,
    chromium_or_skip,
    click_download,
    playwright_or_skip,
    streamlit_explorer,
)

WAIT_MS = 90_000
#: Size, size weights, trimap, Boundary IoU, boundary weights, reliability, confidence maps.
PLOTS = 7


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    playwright_or_skip()
    chromium_or_skip()
    samples = tmp_path / "samples"
    write_samples(samples, count=1, size=(64, 128))
    env = dict(
        os.environ,
        HMSA_SAMPLES_DIR=str(samples),
        HMSA_MODELS_DIR=str(tmp_path / "models"),
    )
    with streamlit_explorer(env, tmp_path) as url:
        yield url


@pytest.mark.slow
def test_the_where_tab_renders_its_plots(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_or_skip(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{server}/?{urlencode({'tab': 'Where scales win'})}")
            main = page.get_by_test_id("stMain")
            expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)
            tab = main.get_by_role("tab", name="Where scales win")
            expect(tab).to_have_attribute("aria-selected", "true", timeout=WAIT_MS)
            panel = main.get_by_role("tabpanel").filter(visible=True)
            expect(panel.get_by_text("Objects by size", exact=True).first).to_be_visible(
                timeout=WAIT_MS
            )
            plots = panel.locator(".js-plotly-plot")
            expect(plots).to_have_count(PLOTS, timeout=WAIT_MS)
            for i in range(PLOTS):
                plot = plots.nth(i)
                plot.scroll_into_view_if_needed()
                expect(plot).to_be_visible(timeout=WAIT_MS)
                expect(plot.locator(".main-svg").first).to_be_visible(timeout=WAIT_MS)
            # the bars of the size view and the heatmaps of the confidence grid are drawn
            expect(plots.nth(0).locator("g.trace.bars")).not_to_have_count(0, timeout=WAIT_MS)
            expect(plots.nth(PLOTS - 1).locator("g.hm, image")).not_to_have_count(0)
            expect(panel.get_by_text("top probability · merged", exact=False)).to_have_count(1)
            assert not main.get_by_test_id("stException").count()
            assert not main.get_by_test_id("stAlertContentError").count()
            page.set_viewport_size({"width": 1500, "height": 4000})
            page.screenshot(path=str(tmp_path / "explorer_where.png"), full_page=True)

            # the HTML report reuses the tab's where-report: same section, same ECE numbers
            page.set_viewport_size({"width": 1500, "height": 1100})
            main.get_by_role("tab", name="Downloads").click()
            panel = main.get_by_role("tabpanel").filter(visible=True)
            button = panel.get_by_role("button", name="Report (HTML)")
            report = click_download(page, button, tmp_path / "report.html", WAIT_MS)
            html = report.read_text(encoding="utf-8")
            assert "Where each scale wins" in html and "ECE (%)" in html
        finally:
            browser.close()
    assert (tmp_path / "explorer_where.png").stat().st_size > 10_000
