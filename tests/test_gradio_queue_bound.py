"""The Gradio app's bounded queue over real HTTP: a full queue refuses new requests at once,
and a waiting request is told how many requests are ahead of it.

The app runs in-process on 127.0.0.1 with one request at a time and room for two waiting
(``HMSA_GRADIO_CONCURRENCY=1``, ``HMSA_GRADIO_QUEUE_SIZE=2``); five ``/segment`` requests on
distinct images (no per-scale cache hits) are sent at once through ``gradio_client``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file
from gradio_client.utils import QueueError

from app.gradio_app import build_app, launch, queue_max_size
from tests.browser import free_port, noise_images

pytestmark = pytest.mark.slow

WAITING, REQUESTS = 2, 5


def test_the_queue_size_comes_from_the_environment_and_bad_values_say_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HMSA_GRADIO_QUEUE_SIZE", raising=False)
    assert queue_max_size() >= 1
    monkeypatch.setenv("HMSA_GRADIO_QUEUE_SIZE", "3")
    assert queue_max_size() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("HMSA_GRADIO_QUEUE_SIZE", bad)
        with pytest.raises(ValueError, match="HMSA_GRADIO_QUEUE_SIZE must be a positive integer"):
            queue_max_size()


def test_a_full_queue_refuses_at_once_and_waiting_requests_see_who_is_ahead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HMSA_GRADIO_CONCURRENCY", "1")
    monkeypatch.setenv("HMSA_GRADIO_QUEUE_SIZE", str(WAITING))
    images = noise_images(tmp_path / "images", REQUESTS, (512, 1024), seed=0, prefix="noise")
    demo = build_app(samples_dir=tmp_path / "no_samples")
    url = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=False)
        jobs = [
            client.submit(
                image=handle_file(str(path)),
                scales=[1.0, 2.0],  # over a second each: waiting lasts long enough to be seen
                arrays=False,
                max_side=1024,
                api_name="/segment",
            )
            for path in images
        ]
        ranks: dict[int, int] = {}
        deadline = time.monotonic() + 120
        while not all(job.done() for job in jobs) and time.monotonic() < deadline:
            for i, job in enumerate(jobs):
                rank = job.status().rank
                if rank is not None:
                    ranks[i] = max(ranks.get(i, -1), rank)
            time.sleep(0.01)
        refused, answered = [], []
        for job in jobs:
            try:
                answered.append(job.result(timeout=60))
            except QueueError as exc:
                refused.append(str(exc))
    finally:
        demo.close()
    # One request runs and WAITING wait; the others are refused (one more may be let in if
    # the first left the queue for the worker before the last arrived).
    assert REQUESTS - WAITING - 1 <= len(refused) <= REQUESTS - WAITING, (refused, ranks)
    assert all("Queue is full" in message for message in refused)
    assert len(answered) == REQUESTS - len(refused)
    assert all(data["image_size"] == [512, 1024] for _, data, _ in answered)
    assert max(ranks.values(), default=-1) >= 1, ranks  # someone waited behind another
