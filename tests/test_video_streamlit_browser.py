"""The explorer's Video page in a real browser: `streamlit run app/explorer.py` on 127.0.0.1
driven by Debian chromium through playwright. Runs the bundled drive clip (frame cap lowered),
and a tiny clip uploaded through the page's real file input, and checks that the output
``<video>`` loads and plays (``readyState >= 2``, ``duration > 0``).
Skipped without chromium or playwright, failed instead when ``HMSA_REQUIRE_BROWSER=1``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.browser import explorer_env, local_page, playwright_or_skip, streamlit_explorer
from tests.video_clips import BLUE, GREEN, RED, labels_image, write_clip

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


def _plays(page: object) -> list[float]:
    """Returns ``[readyState, duration, currentTime]`` of the page's first output video after
    playing it (muted) for 0.3 s."""
    return page.evaluate(  # type: ignore[attr-defined]
        "async () => { const v = document.querySelector('[data-testid=stMain] video');"
        " v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));"
        " return [v.readyState, v.duration, v.currentTime]; }"
    )


def moving_square_clip(path: Path, frames: int = 5) -> Path:
    """Writes a 96 x 64 clip of a blue square moving right over green, red bottom rows."""
    clips = []
    for n in range(frames):
        labels = np.full((64, 96), GREEN)
        labels[48:] = RED
        labels[16:40, 8 + 8 * n : 32 + 8 * n] = BLUE
        clips.append(labels_image(labels))
    return write_clip(path, clips)


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
        played = _plays(page)
        assert played[0] >= 2 and played[1] > 0 and played[2] > 0
        assert not main.get_by_test_id("stException").count()
        page.screenshot(path=str(tmp_path / "video_page.png"), full_page=True)
    assert outside == []


@pytest.mark.slow
def test_uploaded_clip_runs_and_its_output_video_plays(
    chromium: str, server: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    clip = moving_square_clip(tmp_path / "moving_square.mp4")
    outside: list[str] = []
    with local_page(playwright_or_skip(), chromium, outside, (1500, 1100)) as page:
        page.goto(f"{server}/Video")
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Upload a clip").click()
        sidebar.locator("input[type=file]").set_input_files(str(clip))
        expect(sidebar.get_by_text("moving_square.mp4")).to_be_visible(timeout=30_000)
        main = page.get_by_test_id("stMain")
        main.get_by_role("button", name="Run").click()
        # the frame cap is 3: the 5-frame upload is processed up to it, with the notice
        expect(main.get_by_text("3 frame(s) at")).to_be_visible(timeout=WAIT_MS)
        expect(main.get_by_text("frame cap")).to_be_visible()
        page.wait_for_function(PLAYS, timeout=60_000)
        played = _plays(page)
        assert played[0] >= 2 and played[1] > 0 and played[2] > 0
        assert not main.get_by_test_id("stException").count()
    assert outside == []
