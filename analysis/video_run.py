"""One video run: decode, infer, analyse and write every output, frame by frame.

The single code path behind ``hmsa segment clip.mp4``, the Gradio Video tab, the Streamlit
Video page and the notebook. For a clip ``<stem>`` it writes into the output folder:

* ``<stem>_overlay.mp4``: the input with the prediction blended in (H.264, plays in browsers);
* ``<stem>_scales.mp4``: the deciding scale of each pixel (:func:`analysis.video_outputs.deciding_frame`);
* ``<stem>_frames.npz``: per frame the prediction, per-scale predictions, attention and
  effective weights at a reduced size, and the cost (:class:`analysis.video_outputs.FrameArchive`);
* ``<stem>_summary.json``: the clip, settings, notices, timings, per-frame numbers and the
  flicker table (:mod:`analysis.temporal`).

Frame ``n``'s analysis and outputs run in a worker thread while frame ``n + 1`` is decoded
and inferred (each with part of torch's threads), so the two halves overlap.

``VideoRun.frames()`` yields each frame's :class:`~analysis.temporal.FrameStats` as it is
done; :meth:`VideoRun.stop` ends the run after the current frame and keeps what was done
(finished files, marked ``"stopped": true``). An exception or closing the generator early
(a cancelled request) removes the partial files instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from analysis.temporal import (
    FlickerRow,
    FrameStats,
    TemporalSettings,
    TemporalTracker,
    flicker_table,
)
from analysis.video_outputs import FrameArchive, deciding_frame, overlay_frame, write_json
from hmsa_core.video import VideoFrameResult
from hmsa_core.video_io import VideoWriter

#: Suffix of the per-frame masks file paired with a clip: ``<stem>_masks.npz`` beside it.
MASKS_SUFFIX = "_masks.npz"


@dataclass(frozen=True)
class VideoRunSettings:
    """What a video run computes and writes.

    Attributes:
        scales: the cascade.
        method: the merge method of the overlay and the deciding-scale video.
        every: process one frame in ``every``.
        max_frames: most frames (never above ``HMSA_MAX_VIDEO_FRAMES``).
        max_side: shrink larger frames to this long side (``None``: ``HMSA_MAX_VIDEO_SIDE``).
        precision: as in :func:`hmsa_core.infer`.
        gate: attention gating threshold, as in :func:`hmsa_core.infer`.
        opacity: of the labels in the overlay video.
        thumb_side: long side of the maps kept in the ``.npz``.
        temporal: flicker settings (methods followed, optical flow).
        videos: write the two videos.
        archive: write the ``.npz``.
        overlap_max_pixels: frames of at most this many pixels are analysed beside the next
            frame's inference; larger ones (e.g. 1024 x 2048) after it, with all of torch's
            threads for the passes: there inference is nearly all the time, and a second frame
            in flight would hold a second result (a clip then needs no more memory than one
            image).
    """

    scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    method: str = "hierarchical"
    every: int = 1
    max_frames: int | None = None
    max_side: int | None = None
    precision: str = "auto"
    gate: float = 0.0
    opacity: float = 0.5
    thumb_side: int = 256
    temporal: TemporalSettings = field(default_factory=TemporalSettings)
    videos: bool = True
    archive: bool = True
    overlap_max_pixels: int = 1024 * 1024


@dataclass
class VideoRunSummary:
    """The outcome of a run (also written as ``<stem>_summary.json``).

    Attributes:
        files: output kind (``overlay``, ``scales``, ``frames``, ``summary``) -> path.
        frames: frames processed.
        stopped: the run was stopped before the clip's end (its files hold the frames done).
        notices: plain-language notes (shrunk, capped, truncated, rotated).
        table: the flicker table, one :class:`~analysis.temporal.FlickerRow` per method.
        stats: every frame's :class:`~analysis.temporal.FrameStats`.
        timings: seconds in ``decode``, ``inference``, ``analysis``, ``outputs`` (colouring
            and the ``.npz``), ``encode`` and ``total`` (wall time); a frame's analysis,
            outputs and encoding run in a worker thread beside the next frame's decoding and
            inference, so the parts may add up to more than ``total``.
        info: the clip's properties (a dict of :class:`~hmsa_core.video_io.VideoInfo`).
        flow: how motion was compensated.
    """

    files: dict[str, Path]
    frames: int
    stopped: bool
    notices: list[str]
    table: list[FlickerRow]
    stats: list[FrameStats]
    timings: dict[str, float]
    info: dict
    flow: str
    scales: tuple[float, ...] = ()
    method: str = ""

    @property
    def frames_per_second(self) -> float:
        """Returns processed frames per second of total wall time."""
        return self.frames / self.timings["total"] if self.timings.get("total") else 0.0

    def as_dict(self) -> dict:
        """Returns the JSON-ready summary."""
        return {
            "source": self.info,
            "scales": list(self.scales),
            "method": self.method,
            "frames": self.frames,
            "stopped": self.stopped,
            "notices": self.notices,
            "flow": self.flow,
            "timings": self.timings,
            "frames_per_second": self.frames_per_second,
            "files": {k: p.name for k, p in self.files.items()},
            "flicker_table": [asdict(r) for r in self.table],
            "per_frame": [s.as_dict() for s in self.stats],
        }


def paired_masks(video: str | os.PathLike) -> Path | None:
    """Returns ``<stem>_masks.npz`` beside ``video`` when it exists, else ``None``."""
    path = Path(video)
    candidate = path.with_name(path.stem + MASKS_SUFFIX)
    return candidate if candidate.is_file() else None


class ClipMasks:
    """Per-frame ground truth from an ``.npz`` with members ``mask_<frame_index:05d>``
    (``(H, W)`` class ids), read one frame at a time."""

    def __init__(self, path: str | os.PathLike) -> None:
        """Opens ``path``.

        Raises:
            ValueError: not a readable ``.npz``.
        """
        try:
            self._npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable masks .npz ({exc})") from exc

    def get(self, frame_index: int) -> np.ndarray | None:
        """Returns frame ``frame_index``'s ``(H, W)`` mask, or ``None`` when it has none."""
        key = f"mask_{frame_index:05d}"
        return self._npz[key] if key in self._npz.files else None


@contextlib.contextmanager
def _pipeline() -> Iterator[tuple[ThreadPoolExecutor, int]]:
    """Yields a one-thread worker for the per-frame analysis and outputs, which then run beside
    the next frame's inference, and torch's thread count before: the calling thread's passes
    get one intra-op thread fewer (at least one) and the worker one, so together they use the
    cores torch was given instead of both waiting on each other's thread barriers; restored
    on exit."""
    threads = torch.get_num_threads()
    worker = ThreadPoolExecutor(1, "hmsa-video", initializer=torch.set_num_threads, initargs=(1,))
    torch.set_num_threads(max(1, threads - 1))
    try:
        yield worker, threads
    finally:
        worker.shutdown(wait=True)
        torch.set_num_threads(threads)


class VideoRun:
    """A run over one clip; see the module docstring.

    Raises (on construction):
        ValueError: an unreadable or unsuitable clip or masks file, bad settings.
    """

    def __init__(
        self,
        source: object,
        out_dir: str | os.PathLike,
        settings: VideoRunSettings | None = None,
        *,
        model: object | None = None,
        masks: str | os.PathLike | None = None,
        name: str | None = None,
    ) -> None:
        """Opens ``source`` (a path, bytes or RGB arrays) for a run writing into ``out_dir``;
        ``masks``: a ``_masks.npz`` (default: the one paired with the clip, if any);
        ``name``: the output stem (default: the clip's stem)."""
        from hmsa_core.api import default_model
        from hmsa_core.merge import parse_method
        from hmsa_core.video import infer_video

        self.settings = settings or VideoRunSettings()
        parse_method(self.settings.method)
        self.model = model if model is not None else default_model()
        if masks is None and isinstance(source, (str, os.PathLike)):
            masks = paired_masks(source)
        self.masks = ClipMasks(masks) if masks is not None else None
        self.video = infer_video(
            source,  # type: ignore[arg-type]
            self.settings.scales,
            model=self.model,
            method=self.settings.method,
            every=self.settings.every,
            max_frames=self.settings.max_frames,
            max_side=self.settings.max_side,
            precision=self.settings.precision,
            gate=self.settings.gate,
        )
        stem = name or (Path(source).stem if isinstance(source, (str, os.PathLike)) else "clip")
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = {
            "overlay": self.out_dir / f"{stem}_overlay.mp4",
            "scales": self.out_dir / f"{stem}_scales.mp4",
            "frames": self.out_dir / f"{stem}_frames.npz",
            "summary": self.out_dir / f"{stem}_summary.json",
        }
        self.summary: VideoRunSummary | None = None
        self._stop = False

    @property
    def expected_frames(self) -> int | None:
        """Returns the number of frames the run should process (``None`` when unknown)."""
        return self.video.expected_frames

    def stop(self) -> None:
        """Asks the run to end after the current frame, keeping the frames done."""
        self._stop = True

    def frames(self) -> Iterator[FrameStats]:
        """Processes the clip, yielding each frame's :class:`FrameStats`; sets
        :attr:`summary` when done or stopped.

        Raises:
            ValueError: a clip without frames, a mask that does not fit.
        """
        s = self.settings
        fps = max(self.video.info.fps, 1e-3) / s.every
        overlay = VideoWriter(self.paths["overlay"], fps) if s.videos else None
        scales_video = VideoWriter(self.paths["scales"], fps) if s.videos else None
        archive = FrameArchive(self.paths["frames"], s.thumb_side) if s.archive else None
        tracker: TemporalTracker | None = None
        spent = {"analysis": 0.0, "outputs": 0.0, "encode": 0.0}
        start = time.perf_counter()
        clock = time.perf_counter

        def process(result: VideoFrameResult) -> FrameStats:
            """Analyses, colours, archives and encodes one frame (in the worker thread)."""
            nonlocal tracker
            if tracker is None:
                tracker = TemporalTracker(result.scales, result.labels, s.temporal, self.model)
            t0 = clock()
            mask = self.masks.get(result.frame_index) if self.masks is not None else None
            with torch.no_grad():
                analysis = tracker.update(result, mask)
                t1 = clock()
                frames = []
                if overlay is not None:
                    frames = [
                        overlay_frame(result, s.opacity),
                        deciding_frame(analysis.deciding, len(result.scales)),
                    ]
                if archive is not None:
                    archive.add(result, result.frame_index, result.time)
            t2 = clock()
            if overlay is not None and scales_video is not None:
                overlay.write(frames[0], result.time)
                scales_video.write(frames[1], result.time)
            spent["analysis"] += t1 - t0
            spent["outputs"] += t2 - t1
            spent["encode"] += clock() - t2
            return analysis.stats

        pending: Future[FrameStats] | None = None
        try:
            with _pipeline() as (worker, threads):
                # frame n+1 is decoded and inferred here while the worker processes frame n
                for result in self.video:
                    if pending is not None:
                        done, pending = pending, None
                        yield done.result()
                        if self._stop:
                            break
                    large = result.pred.numel() > s.overlap_max_pixels
                    pending = worker.submit(process, result)
                    del result  # only the worker holds the frame now
                    if large:  # analysed before the next inference, which gets every thread
                        torch.set_num_threads(threads)
                        wait([pending])
                if pending is not None:
                    done, pending = pending, None
                    yield done.result()
            t2 = clock()
            files = {}
            for key, writer in (
                ("overlay", overlay),
                ("scales", scales_video),
                ("frames", archive),
            ):
                if writer is not None and writer.close() is not None:
                    files[key] = self.paths[key]
            spent["encode"] += clock() - t2
        except BaseException:
            if pending is not None:  # let the worker finish its frame before the files go
                wait([pending])
            for writer in (overlay, scales_video, archive):
                if writer is not None:
                    writer.abort()
            raise
        self._finish(tracker, files, spent, clock() - start)

    def _finish(
        self,
        tracker: TemporalTracker | None,
        files: dict[str, Path],
        spent: dict[str, float],
        total: float,
    ) -> None:
        if tracker is None:  # pragma: no cover - the reader raises on a clip without frames
            raise ValueError("the clip gave no frames")
        timings = {**self.video.timings, **spent, "total": total}
        self.summary = VideoRunSummary(
            files={**files, "summary": self.paths["summary"]},
            frames=len(tracker.stats),
            stopped=self._stop,
            notices=list(self.video.notices),
            table=flicker_table(tracker.stats, tracker.methods),
            stats=tracker.stats,
            timings=timings,
            info=asdict(self.video.info),
            flow=tracker.flow_description(),
            scales=tracker.scales,
            method=self.settings.method,
        )
        write_json(self.paths["summary"], self.summary.as_dict())


def run_video(
    source: object,
    out_dir: str | os.PathLike,
    settings: VideoRunSettings | None = None,
    *,
    model: object | None = None,
    masks: str | os.PathLike | None = None,
    progress: Callable[[FrameStats, int | None], None] | None = None,
) -> VideoRunSummary:
    """Returns the :class:`VideoRunSummary` of a whole run (see :class:`VideoRun`);
    ``progress(stats, expected_frames)`` is called after each frame.

    Raises:
        ValueError: unreadable clip or masks, bad settings, a clip without frames.
    """
    run = VideoRun(source, out_dir, settings, model=model, masks=masks)
    for stats in run.frames():
        if progress is not None:
            progress(stats, run.expected_frames)
    assert run.summary is not None
    return run.summary
