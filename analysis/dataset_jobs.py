"""Dataset runs on a background thread, with progress and a stop request, one per settings
per process (the explorer's dataset page polls them; nothing here touches the UI)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from analysis.background import BackgroundJob
from analysis.dataset_runs import RunSpec, load_run, run_dataset
from hmsa_core.models.base import MultiScaleSegmenter


@dataclass
class JobProgress:
    """Where a background run stands.

    Attributes:
        done: images scored (stored ones included).
        total: images the run covers.
        started_done: images already stored when this job started.
        seconds: seconds this job has run.
        finished: True once the job's thread has ended.
        error: the ``ValueError`` message that ended it, or ``""``.
    """

    done: int = 0
    total: int = 0
    started_done: int = -1
    seconds: float = 0.0
    finished: bool = False
    error: str = ""

    def eta_seconds(self) -> float | None:
        """Returns the seconds left at this job's pace, or ``None`` before its first image."""
        new = self.done - max(self.started_done, 0)
        if new <= 0 or self.total <= self.done:
            return None if new <= 0 else 0.0
        return self.seconds / new * (self.total - self.done)


class DatasetJob(BackgroundJob):
    """A :func:`run_dataset` call on a thread of its own, with a stop request.

    One job per run key per process (see :func:`start_job`): sessions asking for the same
    settings share it. The thread touches no UI; read :attr:`progress` to draw it.
    """

    def __init__(self, spec: RunSpec, model: MultiScaleSegmenter) -> None:
        """Prepares the run of ``spec`` with ``model`` (not started: see :meth:`start`)."""
        self.spec, self.model = spec, model
        self.progress = JobProgress()
        self._stop = threading.Event()
        super().__init__(f"dataset-run-{spec.key()}")

    def stop(self) -> None:
        """Asks the run to stop after the image it is scoring (the run is marked stopped)."""
        self._stop.set()

    def _on_image(self, done: int, total: int, seconds: float) -> bool:
        if self.progress.started_done < 0:
            self.progress.started_done = done - 1
        self.progress.done, self.progress.total, self.progress.seconds = done, total, seconds
        return self._stop.is_set()

    def work(self, start: float) -> None:
        """Resumes what is stored, then scores the rest (on the job's thread)."""
        stored = load_run(self.spec)
        self.progress.done = stored.done if stored is not None else 0
        run_dataset(self.spec, self.model, progress=self._on_image)


_JOBS: dict[str, DatasetJob] = {}


def job_for(spec: RunSpec) -> DatasetJob | None:
    """Returns the job of these settings started in this process (running or ended), or None."""
    return _JOBS.get(spec.key())


def start_job(spec: RunSpec, model: MultiScaleSegmenter) -> DatasetJob:
    """Returns the running job of these settings, or starts a new one (resuming what is
    stored)."""
    key = spec.key()
    job = _JOBS.get(key)
    if job is not None and job.running:
        return job
    job = DatasetJob(spec, model).start()
    _JOBS[key] = job
    return job
