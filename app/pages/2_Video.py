"""HMSA Explorer, video page: a clip frame by frame, the scale decisions and their flicker.

Pick the bundled SynthScapes drive clip (with a mask per frame) or upload one, a model, a
cascade and a merge method; the run goes on a background thread (:mod:`analysis.video_jobs`)
with progress and a Stop button (a stopped run keeps its frames). Then: the overlay and
deciding-scale videos, the timeline, the flicker table, downloads, and a frame slider that
shows that frame's per-scale predictions, attention and effective weights from the kept
``.npz`` (no forward pass while scrubbing). The logic lives in :mod:`analysis.video_run`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent.parent)
if _ROOT not in sys.path:  # `streamlit run app/explorer.py` puts only app/ on the path
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from analysis.temporal import TemporalSettings  # noqa: E402
from analysis.video_figures import flicker_rows, kept_frame_panels, timeline_figure  # noqa: E402
from analysis.video_jobs import VideoJob  # noqa: E402
from analysis.video_outputs import read_kept_frame  # noqa: E402
from analysis.video_run import VideoRun, VideoRunSettings  # noqa: E402
from app import common  # noqa: E402
from app.explorer_parts.page import page_header, pick_model  # noqa: E402
from hmsa_core.data.drive import DRIVE_STEM  # noqa: E402
from hmsa_core.video_io import video_limits_from_env  # noqa: E402

BUNDLED = "Bundled drive clip (SynthScapes, masks per frame)"
UPLOAD = "Upload a clip"
JOB_KEY = "video_job"
#: Seconds between progress refreshes while a run is going.
POLL_SECONDS = 1.0


def _bundled_clip() -> Path:
    return common.SAMPLES_DIR / f"{DRIVE_STEM}.mp4"


def _source() -> tuple[object, str] | None:
    """Draws the clip choice; returns ``(path or bytes, name)`` or None."""
    limits = video_limits_from_env()
    kind = st.radio("Clip", [BUNDLED, UPLOAD], key="video_source")
    st.caption(
        f"Clips longer than {limits.max_frames} frames (HMSA_MAX_VIDEO_FRAMES) are processed "
        f"up to that cap, with a notice; frames larger than {limits.max_side} px "
        "(HMSA_MAX_VIDEO_SIDE) are shrunk."
    )
    if kind == BUNDLED:
        clip = _bundled_clip()
        if not clip.is_file():
            st.error(f"{clip} is missing: python -m hmsa_core.data.drive --out assets/samples")
            return None
        return clip, clip.stem
    upload = st.file_uploader(
        "Video (MP4, WebM, MOV, MKV, AVI)",
        type=["mp4", "m4v", "webm", "mov", "mkv", "avi"],
        key="video_upload",
    )
    if upload is None:
        return None
    return upload.getvalue(), Path(upload.name).stem or "clip"


def _settings() -> tuple[VideoRunSettings, object] | None:
    """Draws model, cascade, method and options; returns ``(settings, model)`` or None."""
    entry = pick_model("video_model")
    if entry is None:
        return None
    cascade_text = st.text_input("Cascade", "0.5, 1, 2", key="video_cascade")
    try:
        model = common.get_model(entry)
        scales = common.build_cascade([], cascade_text)
    except ValueError as exc:
        st.error(str(exc))
        return None
    method = st.selectbox("Method", common.method_options(model, scales), key="video_method")
    every = int(st.number_input("Process one frame in", 1, 30, 1, key="video_every"))
    flow = st.selectbox(
        "Motion compensation (optical flow)", ["ilk", "tvl1", "none"], key="video_flow"
    )
    settings = VideoRunSettings(
        scales=scales, method=method, every=every, temporal=TemporalSettings(flow=flow)
    )
    return settings, model


def _out_dir() -> Path:
    if "video_out" not in st.session_state:
        st.session_state["video_out"] = tempfile.mkdtemp(prefix="hmsa-video-")
    return Path(st.session_state["video_out"])


def _start(source: object, name: str, settings: VideoRunSettings, model: object) -> None:
    old = st.session_state.get(JOB_KEY)
    if old is not None and old.running:
        old.stop()
        old.wait(30)
    out = Path(tempfile.mkdtemp(dir=_out_dir()))
    try:
        run = VideoRun(source, out, settings, model=model, name=name)
    except ValueError as exc:
        st.session_state.pop(JOB_KEY, None)
        st.error(str(exc))
        return
    st.session_state[JOB_KEY] = VideoJob(run).start()


@st.fragment(run_every=POLL_SECONDS)
def _progress() -> None:
    """Shows the running job's frame count and a Stop button; reruns the page when it ends."""
    job: VideoJob | None = st.session_state.get(JOB_KEY)
    if job is None:
        return
    if not job.running:
        st.rerun()
    p = job.progress
    total = "?" if p.expected is None else str(p.expected)
    st.progress(
        p.fraction(),
        text=f"frame {p.done} of {total} · {p.frames_per_second():.2f} frames/s",
    )
    if st.button(
        "Stop", key="video_stop", help="ends after the current frame; keeps the frames done"
    ):
        job.stop()


def _show_frames(summary: object, labels: object) -> None:
    """The frame slider: the kept maps of one frame, read from the .npz."""
    frames_path = summary.files.get("frames")  # type: ignore[attr-defined]
    if frames_path is None or summary.frames == 0:  # type: ignore[attr-defined]
        return
    st.markdown("#### One frame, per scale (from the kept arrays: no forward pass)")
    number = st.slider("Frame", 0, summary.frames - 1, 0, key="video_frame")  # type: ignore[attr-defined]
    kept = read_kept_frame(frames_path, number)
    cols = st.columns(2)
    cols[0].image(kept.image, caption=f"input at {kept.time:.2f} s", width="stretch")
    cols[1].image(labels.colorize(kept.pred), caption="merged prediction", width="stretch")  # type: ignore[attr-defined]
    for scale, pred, attention, weight in kept_frame_panels(kept, labels):  # type: ignore[arg-type]
        cols = st.columns(3)
        cols[0].image(pred, caption=f"scale {scale:g}: its own prediction", width="stretch")
        if attention is None:
            cols[1].caption(f"scale {scale:g}: no attention")
        else:
            cols[1].image(attention, caption=f"scale {scale:g}: attention", width="stretch")
        cols[2].image(weight, caption=f"scale {scale:g}: effective weight", width="stretch")


def _show(job: VideoJob) -> None:
    p = job.progress
    if p.error:
        st.error(p.error)
        return
    summary = p.summary
    if summary is None:
        return
    if summary.stopped:
        st.warning(f"Stopped after {summary.frames} frame(s): the outputs hold those frames.")
    for notice in summary.notices:
        st.info(notice)
    st.caption(
        f"{summary.frames} frame(s) at {summary.frames_per_second:.2f} frames/s end to end · "
        f"motion compensation: {summary.flow}"
    )
    cols = st.columns(2)
    if "overlay" in summary.files:
        cols[0].markdown("**Overlay**")
        cols[0].video(str(summary.files["overlay"]))
        cols[1].markdown("**Deciding scale** (weight-map colours: smallest scale darkest)")
        cols[1].video(str(summary.files["scales"]))
    st.markdown("#### Flicker: share of pixels whose label changes from the previous frame")
    st.dataframe(pd.DataFrame(flicker_rows(summary.table)), hide_index=True)
    methods = tuple(r.method for r in summary.table)
    st.plotly_chart(timeline_figure(summary.stats, summary.scales, methods), key="video_timeline")
    dl = st.columns(len(summary.files))
    for col, (kind, path) in zip(dl, summary.files.items()):
        col.download_button(
            f"{kind} ({path.suffix})",
            path.read_bytes(),
            file_name=path.name,
            key=f"video_dl_{kind}",
        )
    _show_frames(summary, job.run.model.labels)  # type: ignore[attr-defined]


def main() -> None:
    """Draws the page."""
    page_header(
        "video",
        "HMSA frame by frame: which scale decides each pixel over time, and whether a "
        "multi-scale merge flickers less than one scale (every method from the same passes).",
    )
    with st.sidebar:
        source = _source()
        settings = _settings()
    if source is None or settings is None:
        st.info("Pick the bundled clip or upload one.")
        return
    job: VideoJob | None = st.session_state.get(JOB_KEY)
    running = job is not None and job.running
    if st.button("Run", type="primary", key="video_run", disabled=running):
        _start(source[0], source[1], settings[0], settings[1])
        job = st.session_state.get(JOB_KEY)
        running = job is not None and job.running
    if running:
        _progress()
        return
    if job is not None:
        _show(job)


main()
