"""The pretrained model in the Streamlit explorer, in a real browser (Debian chromium through
playwright): the menu says what the download costs, choosing it shows a progress bar, Cancel
stops it with a clear message and a Resume button, and the page keeps working with another
model. The weights come from a deliberately slow HTTP server on 127.0.0.1 (the transfer is
cancelled long before the end, so the bytes served need not be a checkpoint). Skipped without
chromium or playwright, or fails when ``HMSA_REQUIRE_BROWSER=1`` (see tests/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import explorer_env, local_page, streamlit_explorer
from tests.loopback_server import LoopbackServer, Route, loopback_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = 60_000
PATH = "/slow/model.pdparams"
#: 64 MiB at about 1 MiB/s: the download is still running when Cancel is pressed.
SLOW_BODY = b"\x80\x04" + bytes(64 * 2**20)


@pytest.fixture
def weights() -> Iterator[LoopbackServer]:
    with loopback_server({PATH: Route(body=SLOW_BODY, chunk_delay=0.25)}) as server:
        yield server


@pytest.fixture
def explorer(chromium: str, weights: LoopbackServer, tmp_path: Path) -> Iterator[str]:
    env = explorer_env(
        tmp_path, HMSA_CACHE_DIR=str(tmp_path / "cache"), HMSA_URL_CITYSCAPES=weights.url + PATH
    )
    env.pop("HMSA_OFFLINE", None)
    env.pop("HMSA_DEFAULT_MODEL", None)
    with streamlit_explorer(env, tmp_path) as url:
        yield url


def test_choose_cityscapes_see_progress_cancel_and_keep_working(
    explorer: str, chromium: str, weights: LoopbackServer, tmp_path: Path
) -> None:
    from playwright import sync_api
    from playwright.sync_api import expect

    cost = "cityscapes: HRNet-W48 + OCR + HMSA, 86.9 mIoU Cityscapes val, about 290 MB, "
    with local_page(sync_api, chromium, size=(1400, 1000)) as page:
        page.goto(explorer)
        sidebar = page.get_by_test_id("stSidebar")
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)

        sidebar.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name=cost + "not downloaded yet").click()
        expect(sidebar.get_by_test_id("stProgress")).to_be_visible(timeout=WAIT_MS)
        expect(sidebar.get_by_text("Downloading cityscapes:", exact=False)).to_be_visible(
            timeout=WAIT_MS
        )
        page.screenshot(path=str(tmp_path / "downloading.png"))
        sidebar.get_by_role("button", name="Cancel download").click()
        expect(main.get_by_text("was cancelled", exact=False)).to_be_visible(timeout=WAIT_MS)
        expect(sidebar.get_by_role("button", name="Resume download")).to_be_visible()
        assert not main.get_by_test_id("stException").count()
        assert len(weights.requests_to(PATH)) == 1

        sidebar.get_by_test_id("stSelectbox").first.click()
        page.get_by_role("option", name="hmsa-lite", exact=True).click()
        expect(main.get_by_text("was cancelled", exact=False)).to_have_count(0, timeout=WAIT_MS)
        expect(main.get_by_text("Per-scale time", exact=False)).to_be_visible(timeout=WAIT_MS)
        assert not main.get_by_test_id("stException").count()
    part = tmp_path / "cache" / "cityscapes.pdparams.part"
    assert 0 < part.stat().st_size < len(SLOW_BODY)  # kept for a resume
