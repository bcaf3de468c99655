"""The Streamlit explorer in a real browser: `streamlit run app/explorer.py` on 127.0.0.1 driven
by Debian chromium through playwright. Uploads a PNG and its mask through the real file inputs,
changes the cascade, and checks the per-scale attention images and the IoU table render.
Without chromium or playwright the test is skipped, or fails when ``HMSA_REQUIRE_BROWSER=1``
(see tests/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmsa_core.data.synthscapes import generate_scene
from tests.browser import (
    REQUIRE_ENV,
    chromium_or_skip,
    click_download,
    explorer_env,
    local_page,
    streamlit_explorer,
)

ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = 60_000


@pytest.fixture
def server(chromium: str, tmp_path: Path) -> Iterator[str]:
    with streamlit_explorer(explorer_env(tmp_path), tmp_path) as url:
        yield url


def test_a_missing_browser_fails_when_the_environment_requires_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    absent = str(tmp_path / "no-chromium")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ENV}=1"):
        chromium_or_skip(absent)
    monkeypatch.delenv(REQUIRE_ENV)
    with pytest.raises(pytest.skip.Exception):
        chromium_or_skip(absent)


@pytest.mark.slow
def test_upload_change_cascade_and_see_attention_and_iou(
    chromium: str, server: str, tmp_path: Path
) -> None:
    from playwright import sync_api
    from playwright.sync_api import expect

    scene = generate_scene(11, seed=2, size=(96, 192))
    image_path = tmp_path / "street.png"
    mask_path = tmp_path / "street_mask.png"
    Image.fromarray(scene.image).save(image_path)
    Image.fromarray(scene.mask.astype(np.uint8)).save(mask_path)

    with local_page(sync_api, chromium, size=(1500, 1100)) as page:
        page.goto(server)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_test_id("stRadioGroup").get_by_text("Upload", exact=True).click()
        uploaders = sidebar.get_by_test_id("stFileUploader")
        expect(uploaders).to_have_count(2, timeout=WAIT_MS)
        uploaders.nth(0).locator("input[type=file]").set_input_files(image_path)
        expect(sidebar.get_by_text("Input: 192 x 96 px")).to_be_visible(timeout=WAIT_MS)
        main = page.get_by_test_id("stMain")
        # Let the image's own run finish before the next upload, as a person would.
        expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)
        uploaders.nth(1).locator("input[type=file]").set_input_files(mask_path)
        expect(uploaders.nth(1).get_by_text("street_mask.png")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)

        pill = sidebar.get_by_role("button", name="0.75", exact=True)
        cascade = sidebar.get_by_text("Cascade: (0.5, 0.75, 1, 2)")
        for _ in range(3):  # a click that lands as the mask's rerun starts can be dropped
            if pill.get_attribute("aria-pressed") != "true":
                pill.click()
            try:
                expect(cascade).to_be_visible(timeout=WAIT_MS // 3)
                break
            except AssertionError:
                continue
        expect(cascade).to_be_visible(timeout=WAIT_MS)
        assert pill.get_attribute("aria-pressed") == "true"
        expect(main.get_by_text("0.75: ", exact=False)).to_be_visible(timeout=WAIT_MS)

        main.get_by_role("tab", name="Per-scale").click()
        panel = main.get_by_role("tabpanel").filter(visible=True)
        figure = panel.locator(".js-plotly-plot")
        expect(figure).to_have_count(1, timeout=WAIT_MS)
        expect(figure.locator("text", has_text="attention a @ 0.75")).to_have_count(1)
        expect(figure.locator("text", has_text="effective weight @ 0.75")).to_have_count(1)
        # input, prediction, attention and weight panels for each of the 4 scales
        assert figure.locator("svg image").count() >= 4 * 4
        page.screenshot(path=str(tmp_path / "explorer_per_scale.png"))

        main.get_by_role("tab", name="IoU").click()
        panel = main.get_by_role("tabpanel").filter(visible=True)
        expect(panel.get_by_text("Per-class IoU (%)")).to_be_visible(timeout=WAIT_MS)
        expect(panel.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
        expect(panel.locator(".js-plotly-plot")).to_have_count(1, timeout=WAIT_MS)
        assert not main.get_by_test_id("stException").count()
        assert not main.get_by_test_id("stAlertContentError").count()
        page.screenshot(path=str(tmp_path / "explorer_iou.png"), full_page=True)

        main.get_by_role("tab", name="Downloads").click()
        panel = main.get_by_role("tabpanel").filter(visible=True)
        mask_file = click_download(
            page, panel.get_by_role("button", name="Mask (PNG)"), tmp_path / "mask.png", WAIT_MS
        )
        with Image.open(mask_file) as downloaded:
            assert downloaded.size == (192, 96)
        button = panel.get_by_role("button", name="Report (HTML)")
        report = click_download(page, button, tmp_path / "report.html", WAIT_MS)
        html = report.read_text(encoding="utf-8")
        assert "<html" in html.lower() and "0.75" in html
    assert (tmp_path / "explorer_iou.png").stat().st_size > 10_000
