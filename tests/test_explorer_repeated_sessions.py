"""Load for the Streamlit explorer: many successive sessions must not grow memory without bound.

Each AppTest session opens the explorer on a different SynthScapes image, so every session adds
new per-scale outputs to :data:`hmsa_core.DEFAULT_SCALE_CACHE`. With the cache capped in bytes,
the process's resident memory over the second half of the sessions must grow far less than an
unbounded cache would add. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import hmsa_core
from app import common
from hmsa_core.data.synthscapes import write_samples

pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
SESSIONS = 16
SIZE = (192, 384)  # (H, W): each session's (0.5, 1, 2) outputs are tens of MB
MB = 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """Memory after a session: process RSS and the per-scale cache's bytes, entries, evictions."""

    rss: int
    cache_bytes: int
    entries: int
    evictions: int


def rss_bytes() -> int:
    """Returns this process's resident set size in bytes (``VmRSS`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def release_free_memory() -> None:
    """Collects garbage and asks glibc to return freed heap pages to the system, so RSS counts
    memory that is held rather than what the allocator kept around (no-op without glibc)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def snapshot() -> Snapshot:
    """Returns the :class:`Snapshot` of now, after :func:`release_free_memory`."""
    release_free_memory()
    stats = hmsa_core.DEFAULT_SCALE_CACHE.stats()
    return Snapshot(rss_bytes(), stats.bytes, stats.entries, stats.evictions)


def run_session(samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs one explorer session on the first sample of ``samples`` and checks it drew a result."""
    monkeypatch.setenv(common.SAMPLES_DIR_ENV, str(samples))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["hmsa_result"].size == SIZE
    assert at.get("plotly_chart")
    del at


def test_repeated_sessions_keep_the_cache_under_its_cap_and_memory_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    cache = hmsa_core.DEFAULT_SCALE_CACHE
    folders = []
    for i in range(SESSIONS + 1):
        folders.append(tmp_path / f"samples_{i}")
        write_samples(folders[-1], count=1, size=SIZE, seed=100 + i)

    # warm-up session (imports, model, Streamlit runtime) with room for everything it computes:
    # its cache bytes are what every session adds to an unbounded cache
    cache.clear()
    monkeypatch.setattr(cache, "max_bytes", 1024 * MB)
    run_session(folders[0], monkeypatch)
    per_session = cache.stats().bytes
    assert per_session > 0

    cap = 2 * per_session  # holds two sessions: the others must be evicted
    cache.clear()
    monkeypatch.setattr(cache, "max_bytes", cap)
    before = snapshot()
    after = []
    for folder in folders[1:]:
        run_session(folder, monkeypatch)
        after.append(snapshot())
        assert after[-1].cache_bytes <= cap

    half = SESSIONS // 2
    last = [s.rss for s in after[half:]]
    # RSS jumps by tens of MB between snapshots (allocator noise): the trend of the last half,
    # a least-squares slope, measures growth far more steadily than two single points
    slope = float(np.polyfit(np.arange(len(last)), np.asarray(last, float), 1)[0])
    growth = slope * (len(last) - 1)
    unbounded = (len(last) - 1) * per_session  # what the last half would add without a cap
    print(
        f"\n{SESSIONS} sessions of {SIZE[1]} x {SIZE[0]} images at (0.5, 1, 2)"
        f"\nper session {per_session / MB:.1f} MB of per-scale outputs; cap {cap / MB:.1f} MB"
        f"\nRSS before {before.rss / MB:.1f} MB, after each session: "
        + ", ".join(f"{s.rss / MB:.0f}" for s in after)
        + "\ncache MB after each session: "
        + ", ".join(f"{s.cache_bytes / MB:.0f}" for s in after)
        + f"\nevictions {after[-1].evictions - before.evictions}; RSS trend over the last "
        f"{half} sessions {growth / MB:+.1f} MB ({slope / MB:+.2f} MB/session) vs "
        f"{unbounded / MB:.1f} MB for an unbounded cache"
    )
    assert after[-1].evictions > before.evictions
    assert growth < unbounded / 2, (growth / MB, unbounded / MB)
    cache.clear()
