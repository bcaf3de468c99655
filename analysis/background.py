"""One piece of work on a daemon thread, with a progress record the UI polls (the explorer's
dataset and video pages); nothing here touches the UI."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Progress(Protocol):
    """What :class:`BackgroundJob` records on a job's progress (the subclass' dataclass has
    more): ``seconds`` the job has run, ``finished`` once its thread ended, and ``error``, the
    message that ended it (``""`` when none)."""

    seconds: float
    finished: bool
    error: str


class BackgroundJob:
    """Runs :meth:`work` on a daemon thread named ``name``; subclasses set :attr:`progress`
    before calling ``super().__init__`` and implement :meth:`work` and :meth:`stop`.

    A ``ValueError`` (bad input) ends the job with its message in ``progress.error``; any
    other exception with its type name too (a thread must report, not vanish). Either way
    ``progress.seconds`` is the time run and ``progress.finished`` is set last.
    """

    progress: Progress

    def __init__(self, name: str) -> None:
        """Prepares the thread (not started: see :meth:`start`)."""
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> BackgroundJob:
        """Starts the thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:  # pragma: no cover - every subclass overrides it
        """Asks the work to end at its next checkpoint."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        """Returns True while the thread runs."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits for the thread to end; returns True when it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def work(self, start: float) -> None:  # pragma: no cover - every subclass overrides it
        """The job itself, on the thread; ``start`` is its ``time.perf_counter()`` start."""
        raise NotImplementedError

    def _main(self) -> None:
        start = time.perf_counter()
        try:
            self.work(start)
        except ValueError as exc:
            self.progress.error = str(exc)
        except Exception as exc:  # a thread must report, not vanish
            self.progress.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.progress.seconds = time.perf_counter() - start
            self.progress.finished = True
