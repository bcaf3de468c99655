"""A video run on a background thread, with progress and Stop (the Streamlit Video page
polls it; nothing here touches the UI). A stopped run keeps its frames: its files are
finished with the frames done and its summary says ``stopped``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

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


class VideoJob:
    """Runs a prepared :class:`~analysis.video_run.VideoRun` on a daemon thread."""

    def __init__(self, run: VideoRun) -> None:
        """Wraps ``run`` (already opened: a bad clip has raised before any thread starts)."""
        self.run = run
        self.progress = VideoProgress(expected=run.expected_frames)
        self._thread = threading.Thread(target=self._work, name="video-run", daemon=True)

    def start(self) -> VideoJob:
        """Starts the thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Asks the run to end after the current frame, keeping the frames done."""
        self.run.stop()

    @property
    def running(self) -> bool:
        """Returns True while the thread runs."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the thread to end; returns True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _work(self) -> None:
        start = time.perf_counter()
        try:
            for stats in self.run.frames():
                self.progress.done += 1
                self.progress.last = stats
                self.progress.seconds = time.perf_counter() - start
            self.progress.summary = self.run.summary
        except ValueError as exc:
            self.progress.error = str(exc)
        except Exception as exc:  # a thread must report, not vanish
            self.progress.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.progress.seconds = time.perf_counter() - start
            self.progress.finished = True
