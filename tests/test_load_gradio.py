"""A short, bounded load test of the Gradio API on 127.0.0.1 (slow: starts the app)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from analysis import loadtest
from analysis.loadtest import PhaseReport, check_loopback, run_load_test

MB = 1024 * 1024


@pytest.mark.slow
def test_concurrent_good_requests_all_succeed_and_memory_stays_bounded():
    size, per_phase = (256, 512), 8
    # Each distinct 256 x 512 image at (0.5, 1, 2) leaves at least its 19-class float32 logits
    # in the per-scale cache: 19 * 4 bytes * H * W * (0.25 + 1 + 4) = 52 MB. An unbounded cache
    # would grow by at least 8 times that in the second phase; capped at 16 MB it must not.
    # (RSS also moves by tens of MB with the allocator's arenas, hence the wide margin.)
    unbounded = per_phase * 19 * 4 * size[0] * size[1] * (0.25 + 1 + 4)
    report = run_load_test(
        clients=3, requests=2 * per_phase, size=size, scales="0.5, 1, 2", cache_bytes=16 * MB
    )
    assert report.errors == 0, report.errors_seen
    assert report.warmup is not None and report.warmup.requests == 1
    first, second = report.phases
    assert first.throughput > 0 and second.throughput > 0
    assert report.rss_before > 0
    growth = second.rss_after - first.rss_after
    assert growth < unbounded / 3, (growth / MB, unbounded / MB, report.to_markdown())


def test_load_tests_only_target_loopback():
    check_loopback("http://127.0.0.1:7860/")
    check_loopback("http://localhost:7860/")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://10.0.0.5:7860/")


def test_a_failing_warm_up_is_counted_and_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes: list[int] = []

    def phase(
        url: str,
        images: Sequence[Path],
        clients: int,
        scales: str,
        errors_seen: list[str],
        pid: int | None,
    ) -> PhaseReport:
        sizes.append(len(images))
        failed = len(images) == 1  # only the warm-up (one image) fails; phases send two
        if failed:
            errors_seen.append("AppError: warm-up refused")
        return PhaseReport(len(images), int(failed), 0.1, (0.05,) * len(images), 0)

    monkeypatch.setattr(loadtest, "wait_until_up", lambda url, proc: None)
    monkeypatch.setattr(loadtest, "run_phase", phase)
    report = run_load_test(clients=2, requests=4, size=(8, 8), url="http://127.0.0.1:9/")
    assert sizes == [1, 2, 2]
    assert report.warmup is not None and report.warmup.errors == 1
    assert [p.errors for p in report.phases] == [0, 0]
    assert report.errors == 1
    assert "| warm-up | 1 | 1 |" in report.to_markdown()

    code = loadtest.main(["--url", "http://127.0.0.1:9/", "--requests", "4", "--size", "8x8"])
    out = capsys.readouterr().out
    assert code == 1
    assert "error: AppError: warm-up refused" in out
