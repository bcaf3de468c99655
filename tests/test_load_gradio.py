"""A short, bounded load test of the Gradio API on 127.0.0.1 (slow: starts the app)."""

from __future__ import annotations

import pytest

from analysis.loadtest import check_loopback, run_load_test

MB = 1024 * 1024


@pytest.mark.slow
def test_concurrent_good_requests_all_succeed_and_memory_stays_bounded():
    # Each 128 x 256 request at (0.5, 1, 2) leaves ~14 MB of per-scale outputs; 8 distinct images
    # per phase would add ~110 MB per phase to an unbounded cache. The cap is 16 MB.
    report = run_load_test(
        clients=3, requests=16, size=(128, 256), scales="0.5, 1, 2", cache_bytes=16 * MB
    )
    assert report.errors == 0, report.errors_seen
    first, second = report.phases
    assert first.throughput > 0 and second.throughput > 0
    assert report.rss_before > 0
    growth = second.rss_after - first.rss_after
    assert growth < 50 * MB, report.to_markdown()


def test_load_tests_only_target_loopback():
    check_loopback("http://127.0.0.1:7860/")
    check_loopback("http://localhost:7860/")
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://10.0.0.5:7860/")
