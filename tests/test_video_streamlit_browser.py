"""The explorer's Video page in a real browser: `streamlit run app/explorer.py` on 127.0.0.1
driven by Debian chromium through playwright. Runs the bundled drive clip (frame cap lowered)
and checks that the output ``<video>`` loads and plays (``readyState >= 2``, ``duration > 0``).
Skipped without chromium or playwright, failed instead when ``HMSA_REQUIRE_BROWSER=1``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import explorer_env, local_page, playwright_or_skip, streamlit_explorer

WAIT_MS = 120_000
PLAYS = (
    "() => { const v = document.querySelector('[data-testid=stMain] video');"
    " return v && v.readyState >= 2 && v.duration > 0; }"
)


@pytest.fixture
def server(chromium: str, tmp_path: Path) -> Iterator[str]:
    env = explorer_env(tmp_path, HMSA_MAX_VIDEO_FRAMES="3")
    with streamlit_explorer(env, tmp_path) as url:
        yield url


@pytest.mark.slow
def test_video_page_output_video_loads_and_plays(
    chromium: str, server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    outside: list[str] = []
    with local_page(playwright_or_skip(), chromium, outside, (1500, 1100)) as page:
        page.goto(f"{server}/Video")
        main = page.get_by_test_id("stMain")
        main.get_by_role("button", name="Run").click()
        expect(main.get_by_text("frame(s) at")).to_be_visible(timeout=WAIT_MS)
        page.wait_for_function(PLAYS, timeout=60_000)
        played = page.evaluate(
            "async () => { const v = document.querySelector('[data-testid=stMain] video');"
            " v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));"
            " return [v.readyState, v.duration, v.currentTime]; }"
        )
        assert played[0] >= 2 and played[1] > 0 and played[2] > 0
        assert not main.get_by_test_id("stException").count()
        page.screenshot(path=str(tmp_path / "video_page.png"), full_page=True)
    assert outside == []
