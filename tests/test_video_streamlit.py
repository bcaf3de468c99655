"""The explorer's Video page (app/pages/2_Video.py) through streamlit's AppTest: the bundled
drive clip run in the background, stopped after a frame or two (the frames done are kept),
then the videos, the flicker table and the frame slider from the kept arrays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apptest_env import healthy, open_page, progress_text, rerun_until, use_samples

PAGE = "pages/2_Video.py"


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_samples(tmp_path / "no_samples", monkeypatch, tmp_path / "no_models")
    monkeypatch.setenv("HMSA_MAX_VIDEO_FRAMES", "40")


def test_run_stop_keeps_frames_and_slider_reads_them(app_env) -> None:
    at = open_page(PAGE)
    at.text_input(key="video_cascade").set_value("0.5, 1").run()
    healthy(at)
    assert any("HMSA_MAX_VIDEO_FRAMES" in c.value for c in at.caption)
    at.button(key="video_run").click().run()
    healthy(at)
    rerun_until(
        at,
        lambda a: bool(progress_text(a)) and not progress_text(a).startswith("frame 0 of"),
        "the run never finished a frame",
    )
    assert "of 40" in progress_text(at)
    at.button(key="video_stop").click().run()
    rerun_until(at, lambda a: not a.get("progress"), "the run did not stop", seconds=60)
    healthy(at)
    status = " ".join(w.value for w in at.warning)
    assert "Stopped after" in status
    assert len(at.get("video")) == 2
    table = at.dataframe[0].value
    assert list(table["method"]) == ["single 0.5", "single 1", "mean", "max", "HMSA"]
    frames = at.slider(key="video_frame")
    frames.set_value(frames.max).run()
    healthy(at)
    captions = [c for e in at.main if type(e).__name__ == "Image" for c in e.captions]
    assert "scale 1: effective weight" in captions and "scale 0.5: attention" in captions
