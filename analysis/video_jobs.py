"""A video run on a background thread, with progress and Stop (the Streamlit Video page
polls it; nothing here touches the UI). A stopped run keeps its frames: its files are
finished with the frames done and its summary says ``stopped``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from analysis.background import BackgroundJob
from analysis.temporal import FrameStats
from analysis.video_run import VideoRun, VideoRunSummary


@dataclass
class VideoProgress:
    """Where a background video run stands.

    Attributes:
        done: frames processed; ``expected``: frames the clip should give (``None``: unknown).
        seconds: seconds the run has taken so far.
        last: the latest frame's :class:`~analysis.temporal.FrameStats`.
        finished: the thread has ended; ``error``: the message that ended it, or ``""``.
        summary: the run's summary once finished (also after Stop).
    """

    done: int = 0
    expected: int | None = None
    seconds: float = 0.0
    last: FrameStats | None = None
    finished: bool = False
    error: str = ""
    summary: VideoRunSummary | None = field(default=None, repr=False)

    def fraction(self) -> float:
        """Returns the share done in [0, 1] (0 while the frame count is unknown)."""
        if not self.expected:
            return 1.0 if self.finished else 0.0
        return min(1.0, self.done / self.expected)

    def frames_per_second(self) -> float:
        """Returns processed frames per second so far."""
        return self.done / self.seconds if self.seconds > 0 else 0.0


class VideoJob(BackgroundJob):
    """Runs a prepared :class:`~analysis.video_run.VideoRun` on a daemon thread."""

    def __init__(self, run: VideoRun) -> None:
        """Wraps ``run`` (already opened: a bad clip has raised before any thread starts)."""
        self.run = run
        self.progress = VideoProgress(expected=run.expected_frames)
        super().__init__("video-run")

    def stop(self) -> None:
        """Asks the run to end after the current frame, keeping the frames done."""
        self.run.stop()

    def work(self, start: float) -> None:
        """Processes the clip frame by frame (on the job's thread), then keeps its summary."""
        for stats in self.run.frames():
            self.progress.done += 1
            self.progress.last = stats
            self.progress.seconds = time.perf_counter() - start
        self.progress.summary = self.run.summary
