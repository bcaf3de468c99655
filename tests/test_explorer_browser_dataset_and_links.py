"""The explorer's dataset page and shared links in a real browser: `streamlit run
app/explorer.py` on 127.0.0.1 driven by Debian chromium through playwright. Runs a small
SynthScapes slice on the dataset page, opens its best image on the main page, and opens a
shared link (and a hostile one). Screenshots go to results/screens/. Skipped without chromium
or playwright, failed instead when ``HMSA_REQUIRE_BROWSER=1`` (see tests/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.browser import explorer_env, local_page, streamlit_explorer

ROOT = Path(__file__).resolve().parent.parent
SCREENS = ROOT / "results" / "screens"
WAIT_MS = 90_000


@pytest.fixture
def server(chromium: str, tmp_path: Path) -> Iterator[str]:
    env = explorer_env(tmp_path, 2, (256, 512), HMSA_RESULTS_DIR=str(tmp_path / "results"))
    with streamlit_explorer(env, tmp_path) as url:
        yield url


def _no_exception(page) -> None:
    main = page.get_by_test_id("stMain")
    assert not main.get_by_test_id("stException").count()
    assert not main.get_by_test_id("stAlertContentError").count()


@pytest.mark.slow
def test_dataset_page_runs_a_slice_and_opens_an_image(chromium: str, server: str) -> None:
    from playwright import sync_api
    from playwright.sync_api import expect

    SCREENS.mkdir(parents=True, exist_ok=True)
    with local_page(sync_api, chromium, size=(1500, 1100)) as page:
        page.goto(f"{server}/Dataset")
        sidebar = page.get_by_test_id("stSidebar")
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("Nothing stored for these settings")).to_be_visible(timeout=WAIT_MS)
        count = sidebar.get_by_label("Scenes")
        count.fill("6")
        count.press("Enter")
        expect(main.get_by_text("6 scenes at 256 x 128")).to_be_visible(timeout=WAIT_MS)
        sidebar.get_by_test_id("stSelectbox").filter(has_text="Scene size").click()
        page.get_by_role("option", name="128 x 64").click()
        expect(main.get_by_text("6 scenes at 128 x 64")).to_be_visible(timeout=WAIT_MS)
        main.get_by_role("button", name="Run").click()
        expect(main.get_by_text("Complete: 6 of 6 image(s).")).to_be_visible(timeout=WAIT_MS)
        # the Pareto chart, the scale preference, and the run's six where views
        expect(main.locator(".js-plotly-plot")).to_have_count(8, timeout=WAIT_MS)
        expect(main.get_by_text("Pareto frontier")).to_be_visible(timeout=WAIT_MS)
        expect(main.get_by_text("Which scale decides each class", exact=True)).to_be_visible()
        expect(main.get_by_text("Where each scale wins, over the run")).to_be_visible()
        # per-class IoU, the images, the ECE table of the where views
        expect(main.get_by_test_id("stDataFrame")).to_have_count(3, timeout=WAIT_MS)
        _no_exception(page)
        page.set_viewport_size({"width": 1500, "height": 3000})  # the whole page at once
        images = main.get_by_test_id("stDataFrame").nth(1)
        expect(images).to_be_visible(timeout=WAIT_MS)
        page.wait_for_timeout(2000)  # let the plots and thumbnails finish drawing
        page.screenshot(path=str(SCREENS / "explorer_dataset_page.png"))
        page.set_viewport_size({"width": 1500, "height": 1100})

        best = main.get_by_role("combobox", name="Image").input_value()  # first row
        images.scroll_into_view_if_needed()
        box = images.bounding_box()
        assert box is not None
        # the row-selection checkbox of the first row (header 35 px, rows 64 px)
        page.mouse.click(box["x"] + 16, box["y"] + 35 + 32)
        expect(main.get_by_role("heading", name="HMSA Explorer")).to_be_visible(timeout=WAIT_MS)
        expect(sidebar.get_by_text(f"{best}, opened from the dataset page")).to_be_visible(
            timeout=WAIT_MS
        )
        expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)
        _no_exception(page)
    assert (SCREENS / "explorer_dataset_page.png").stat().st_size > 20_000


@pytest.mark.slow
def test_shared_link_restores_the_view_and_a_hostile_one_falls_back(
    chromium: str, server: str
) -> None:
    from playwright import sync_api
    from playwright.sync_api import expect

    SCREENS.mkdir(parents=True, exist_ok=True)
    link = {
        "model": "explicit-lite",
        "image": "synthscapes_val_001",
        "cascade": "0.5,0.75,1,2",
        "method": "mean",
        "tab": "IoU",
    }
    with local_page(sync_api, chromium, size=(1500, 1100)) as page:
        page.goto(f"{server}/?{urlencode(link)}")
        sidebar = page.get_by_test_id("stSidebar")
        main = page.get_by_test_id("stMain")
        expect(sidebar.get_by_text("Cascade: (0.5, 0.75, 1, 2)")).to_be_visible(timeout=WAIT_MS)
        expect(sidebar.get_by_role("combobox", name="Model")).to_have_value("explicit-lite")
        expect(sidebar.get_by_role("combobox", name="Sample")).to_have_value(
            "Street scene (SynthScapes val 1)"
        )
        expect(sidebar.get_by_role("combobox", name="Method shown")).to_have_value("mean")
        expect(main.get_by_role("tab", name="IoU", selected=True)).to_be_visible(timeout=WAIT_MS)
        panel = main.get_by_role("tabpanel").filter(visible=True)
        expect(panel.get_by_text("Per-class IoU (%)")).to_be_visible(timeout=WAIT_MS)
        expect(panel.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=WAIT_MS)
        assert not main.get_by_test_id("stAlertContentWarning").count()
        _no_exception(page)
        page.wait_for_timeout(1000)
        assert "cascade=0.5%2C0.75%2C1%2C2" in page.url or "cascade=0.5,0.75,1,2" in page.url
        page.screenshot(path=str(SCREENS / "explorer_shared_link.png"), full_page=True)

        hostile = {"model": "../../etc/passwd", "cascade": "0.5,abc", "tab": "<b>x</b>"}
        page.goto(f"{server}/?{urlencode(hostile)}")
        warnings = main.get_by_test_id("stAlertContentWarning")
        expect(warnings).to_have_count(3, timeout=WAIT_MS)
        expect(warnings.first).to_contain_text("Unknown model")
        expect(sidebar.get_by_text("Cascade: (0.5, 1, 2)")).to_be_visible(timeout=WAIT_MS)
        expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)
        _no_exception(page)
        page.screenshot(path=str(SCREENS / "explorer_hostile_link.png"))
    assert (SCREENS / "explorer_shared_link.png").stat().st_size > 20_000
