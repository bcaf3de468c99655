"""The Gradio "Video" tab: a clip frame by frame, its scale decisions and their flicker.

Upload a clip or take the bundled SynthScapes drive clip (masks per frame), pick the model,
cascade and merge method; the run streams (:mod:`analysis.video_run`) with a progress bar
counting frames and a Cancel button (a cancelled run leaves no file named as finished). Out
come the overlay and deciding-scale videos, the timeline, the flicker table and the files.
The same run is the ``/video`` API endpoint. A webcam box streams live frames through the
lite model and shows the frame rate it reaches.
"""

from __future__ import annotations

import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from app import common
from app.gradio_parts.handlers import Handlers, file_path, user_errors
from hmsa_core.data.drive import DRIVE_STEM
from hmsa_core.video_io import video_limits_from_env

BUNDLED = "Bundled drive clip"
UPLOADED = "Uploaded clip"
METHODS = ("hierarchical", "mean", "max")
#: Webcam frames are shrunk to this long side and run on this cascade of the lite model.
LIVE_SIDE = 320
LIVE_SCALES = (0.5, 1.0)
LIVE_MODEL = "hmsa-lite"
TABLE_HEADERS = ["method", "flicker %", "motion-compensated flicker %", "mean mIoU %"]


def bundled_clip() -> Path:
    """Returns the bundled drive clip's path (``assets/samples/synthscapes_drive.mp4``)."""
    return common.SAMPLES_DIR / f"{DRIVE_STEM}.mp4"


@dataclass
class VideoTab:
    """The tab's components.

    Attributes:
        inputs: clip, source, model, cascade, method, every (the ``/video`` parameters).
        outputs: status, overlay video, deciding-scale video, timeline, table, files.
        run: the Run button; ``cancel``: the Cancel button.
    """

    inputs: list[gr.components.Component]
    outputs: list[gr.components.Component]
    run: gr.Button
    cancel: gr.Button


def cap_note() -> str:
    """Returns the frame-cap and size policy shown on the tab."""
    limits = video_limits_from_env()
    return (
        f"Clips longer than **{limits.max_frames} frames** (`HMSA_MAX_VIDEO_FRAMES`) are "
        f"processed up to that cap, with a notice; frames larger than {limits.max_side} px "
        "(`HMSA_MAX_VIDEO_SIDE`) are shrunk. Cancel stops the run and deletes its partial files."
    )


def run_video(
    handlers: Handlers,
    clip: object,
    source: str,
    model_name: str | None,
    scales: str,
    method: str,
    every: float,
    progress: gr.Progress,
) -> Iterator[tuple]:
    """Runs a clip; yields the status while frames are processed, then every output.

    Raises:
        gr.Error: no clip, an unreadable one, bad settings (the app keeps serving).
    """
    from analysis.video_figures import flicker_rows, timeline_figure
    from analysis.video_run import VideoRun, VideoRunSettings

    with user_errors():
        path = str(bundled_clip()) if source == BUNDLED else file_path(clip)
        if not path:
            raise ValueError("no clip: upload a video or pick the bundled drive clip")
        model = common.get_model(handlers.entry(model_name))
        cascade = common.build_cascade([], str(scales or ""))
        settings = VideoRunSettings(
            scales=cascade, method=method or "hierarchical", every=int(every or 1)
        )
        out = Path(tempfile.mkdtemp(prefix="hmsa-video-"))
        run = VideoRun(path, out, settings, model=model, name=Path(path).stem or "clip")
        total = run.expected_frames
        empty = (None, None, None, None, None)
        progress((0, total), desc="decoding", unit="frames")
        for stats in run.frames():
            done = stats.number + 1
            progress((done, total), desc=f"frame {done} of {total or '?'}", unit="frames")
            if done == 1 or done % 5 == 0:
                yield (f"Processing: frame {done} of {total or '?'}…", *empty)
    summary = run.summary
    assert summary is not None
    notes = "".join(f"\n\n> {n}" for n in summary.notices)
    status = (
        f"**{summary.frames} frame(s)** at {summary.frames_per_second:.2f} frames/s end to end; "
        f"flicker from every method of the same passes; motion compensation: {summary.flow}."
        f"{notes}"
    )
    methods = tuple(r.method for r in summary.table)
    figure = timeline_figure(summary.stats, summary.scales, methods)
    table = pd.DataFrame(flicker_rows(summary.table), columns=TABLE_HEADERS)
    files = [str(p) for p in summary.files.values()]
    yield (
        status,
        str(summary.files.get("overlay")),
        str(summary.files.get("scales")),
        figure,
        table,
        files,
    )


def live_frame(
    handlers: Handlers, frame: np.ndarray | None, times: deque | None
) -> tuple[np.ndarray | None, str, deque]:
    """Returns the overlay of one webcam frame (lite model, :data:`LIVE_SCALES`), the frame
    rate reached over the last frames, and the updated frame times."""
    import hmsa_core
    from analysis.video_outputs import overlay_frame
    from hmsa_core.video_io import shrunk_size

    times = times if times is not None else deque(maxlen=10)
    if frame is None:
        return None, "waiting for the webcam…", times
    from PIL import Image

    rgb = np.asarray(frame)[..., :3].astype(np.uint8)
    w, h = shrunk_size(rgb.shape[1], rgb.shape[0], LIVE_SIDE)
    if (w, h) != (rgb.shape[1], rgb.shape[0]):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    with user_errors():
        model = common.get_model(handlers.entry(LIVE_MODEL))
        result = hmsa_core.infer(rgb, LIVE_SCALES, model=model, cache=None)
    times.append(time.perf_counter())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    note = f"{rate:.1f} frames/s reached ({w} x {h}, {LIVE_MODEL}, scales 0.5 + 1)"
    return overlay_frame(result), note, times


def video_page(handlers: Handlers) -> VideoTab:
    """Builds the "Video" tab (inside the app's ``gr.Tabs``) and wires its events; returns
    its components."""
    names = handlers.model_names()
    with gr.Tab("Video", elem_id="video-page"):
        gr.Markdown(
            "HMSA frame by frame: which scale decides each pixel over time, and whether a "
            "multi-scale merge flickers less than one scale. " + cap_note()
        )
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio([BUNDLED, UPLOADED], value=BUNDLED, label="Clip")
                clip = gr.File(
                    label="Upload a clip (MP4, WebM, MOV, MKV, AVI)",
                    file_types=[".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi"],
                    elem_id="video-upload",
                )
                model = gr.Dropdown(
                    handlers.model_choices(), value=names[0] if names else None, label="Model"
                )
                scales = gr.Textbox(value="0.5, 1, 2", label="Scale cascade", max_lines=1)
                method = gr.Dropdown(list(METHODS), value="hierarchical", label="Merge method")
                every = gr.Number(value=1, precision=0, minimum=1, label="Process one frame in")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="video-run")
                    cancel = gr.Button("Cancel", elem_id="video-cancel")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="video-status")
                with gr.Row():
                    overlay = gr.Video(label="Overlay", elem_id="video-overlay", interactive=False)
                    deciding = gr.Video(
                        label="Deciding scale (weight-map colours)",
                        elem_id="video-scales",
                        interactive=False,
                    )
                timeline = gr.Plot(label="Timeline")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Flicker", interactive=False)
                files = gr.File(label="Downloads", file_count="multiple", interactive=False)
        with gr.Accordion("Webcam: live frames (lite model)", open=False):
            with gr.Row():
                camera = gr.Image(sources=["webcam"], streaming=True, label="Webcam")
                live = gr.Image(label="Live overlay", interactive=False)
            rate = gr.Markdown()
            times = gr.State(None)
    inputs = [clip, source, model, scales, method, every]
    outputs = [status, overlay, deciding, timeline, table, files]

    def on_run(
        clip: str | None,
        source: str,
        model: str | None,
        scales: str,
        method: str,
        every: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> Iterator[tuple]:
        """Runs the clip (``source``: "Bundled drive clip" or "Uploaded clip") over the
        cascade ``scales`` (e.g. "0.5, 1, 2") with ``method``, one frame in ``every``; yields
        status, overlay video, deciding-scale video, timeline, flicker table and files."""
        yield from run_video(handlers, clip, source, model, scales, method, every, progress)

    event = run.click(on_run, inputs, outputs, api_name="video", concurrency_limit=1)
    cancel.click(None, None, None, cancels=[event])
    camera.stream(
        lambda frame, t: live_frame(handlers, frame, t),
        [camera, times],
        [live, rate, times],
        api_visibility="private",
        stream_every=0.2,
        time_limit=120,
        concurrency_limit=1,
    )
    return VideoTab(inputs=inputs, outputs=outputs, run=run, cancel=cancel)
