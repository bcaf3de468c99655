"""The Gradio Video tab: its ``/video`` endpoint over real HTTP with ``gradio_client``
(bundled clip, bad uploads refused with a message and the app still serving), and in
chromium the output ``<video>`` loads and plays, and Cancel stops a running clip leaving no
file under a finished name. The frame cap is lowered so runs are short.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

gradio_client = pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from app.gradio_app import build_app, launch  # noqa: E402
from hmsa_core.video_io import probe_video  # noqa: E402
from tests.browser import free_port, local_page, playwright_or_skip  # noqa: E402

pytestmark = pytest.mark.slow

FRAMES = 3


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Yields ``(url, scratch folder)`` of the app served on 127.0.0.1 with a frame cap."""
    scratch = tmp_path_factory.mktemp("video_gradio")
    old = os.environ.get("HMSA_MAX_VIDEO_FRAMES")
    os.environ["HMSA_MAX_VIDEO_FRAMES"] = str(FRAMES)
    (scratch / "no_samples").mkdir()
    demo = build_app(samples_dir=scratch / "no_samples")
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield url, scratch
    finally:
        demo.close()
        if old is None:
            os.environ.pop("HMSA_MAX_VIDEO_FRAMES", None)
        else:
            os.environ["HMSA_MAX_VIDEO_FRAMES"] = old


def test_video_endpoint_runs_the_bundled_clip_and_refuses_bad_files(served) -> None:
    url, scratch = served
    client = Client(url, verbose=False, download_files=str(scratch / "downloads"))
    text = scratch / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(AppError, match="not a readable video"):
        client.predict(
            handle_file(str(text)), "Uploaded clip", "hmsa-lite", "0.5, 1", "hierarchical", 1,
            api_name="/video",
        )  # fmt: skip
    status, overlay, scales, _plot, table, files = client.predict(
        None, "Bundled drive clip", "hmsa-lite", "0.5, 1", "hierarchical", 1, api_name="/video"
    )
    assert f"{FRAMES} frame(s)" in status and "HMSA_MAX_VIDEO_FRAMES" in status
    for video in (overlay, scales):
        path = video["video"] if isinstance(video, dict) else video
        info = probe_video(path)
        assert (info.width, info.height, info.frames) == (512, 256, FRAMES)
    methods = [row[0] for row in table["data"]]
    assert methods == ["single 0.5", "single 1", "mean", "max", "HMSA"]
    summary = next(f for f in files if str(f).endswith("_summary.json"))
    data = json.loads(Path(summary).read_text())
    assert data["frames"] == FRAMES and len(data["per_frame"]) == FRAMES
    hmsa = next(r for r in data["flicker_table"] if r["method"] == "hierarchical")
    assert hmsa["miou"] is not None  # the bundled clip's masks were paired


def test_output_video_loads_and_plays_in_chromium(served, chromium: str, tmp_path: Path) -> None:
    url, _ = served
    outside: list[str] = []
    with local_page(playwright_or_skip(), chromium, outside) as page:
        page.goto(url)
        page.get_by_role("tab", name="Video").click()
        page.locator("#video-run").click()
        page.locator("#video-overlay video").wait_for(timeout=120_000)
        page.wait_for_function(
            "() => { const v = document.querySelector('#video-overlay video');"
            " return v && v.readyState >= 2 && v.duration > 0; }",
            timeout=30_000,
        )
        played = page.evaluate(
            "async () => { const v = document.querySelector('#video-overlay video');"
            " v.muted = true; await v.play(); await new Promise(r => setTimeout(r, 300));"
            " return [v.readyState, v.duration, v.currentTime]; }"
        )
        assert played[0] >= 2 and played[1] > 0 and played[2] > 0
        page.screenshot(path=str(tmp_path / "video_tab.png"), full_page=True)
    assert outside == []


#: The names a finished run gives its files (a cancelled one must leave none of them).
FINISHED = ("*_overlay.mp4", "*_scales.mp4", "*_frames.npz", "*_summary.json")


def test_cancel_in_chromium_stops_the_run_and_leaves_no_finished_file(
    served, chromium: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = served
    monkeypatch.setenv("HMSA_MAX_VIDEO_FRAMES", "50")  # read per run: the whole drive clip
    runs = tmp_path / "tmp"
    runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(runs))  # where the tab's run folder goes
    with local_page(playwright_or_skip(), chromium) as page:
        page.goto(url)
        page.get_by_role("tab", name="Video").click()
        page.locator("#video-run").click()
        page.locator("#video-status").get_by_text("Processing: frame 1 of 50").wait_for(
            timeout=60_000
        )
        page.locator("#video-cancel").click()
        deadline = time.monotonic() + 30
        folders: list[Path] = []
        while time.monotonic() < deadline:
            folders = list(runs.glob("hmsa-video-*"))
            if folders and not any(".partial." in f.name for f in folders[0].iterdir()):
                break
            time.sleep(0.2)
        assert len(folders) == 1, "the run never started in the test's temporary folder"
        left = sorted(f.name for f in folders[0].iterdir())
        assert not [n for n in left if ".partial." in n], f"partial files kept: {left}"
        assert not [f for pattern in FINISHED for f in folders[0].glob(pattern)], left
        page.wait_for_timeout(1000)
        assert "frame(s)" not in page.locator("#video-status").inner_text()
        assert page.locator("#video-overlay video").count() == 0
