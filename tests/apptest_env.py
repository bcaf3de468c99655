"""The Streamlit explorer under ``streamlit.testing.v1.AppTest``: the set-up every AppTest
module shares (samples, an empty models folder, a clear per-scale cache) and its health check."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import hmsa_core
from app import common
from hmsa_core.data.synthscapes import write_samples

#: The explorer's main page.
APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"


def use_samples(folder: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Path:
    """Points the explorer at the samples in ``folder`` and the (empty) ``models_dir``, and
    clears the shared per-scale cache, so forward-pass counts do not depend on test order;
    returns ``folder``."""
    monkeypatch.setenv(common.SAMPLES_DIR_ENV, str(folder))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(models_dir))
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    return folder


def module_samples(
    factory: pytest.TempPathFactory,
    count: int = 2,
    size: tuple[int, int] = (64, 128),
    seed: int = 3,
    name: str = "samples",
) -> Path:
    """Writes ``count`` SynthScapes samples of ``size`` into a fresh folder of ``factory`` (for
    a module-scoped fixture shared by a module's tests); returns the folder."""
    folder = factory.mktemp(name)
    write_samples(folder, count=count, size=size, seed=seed)
    return folder


def explorer_samples(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    count: int = 1,
    size: tuple[int, int] = (64, 128),
    seed: int = 3,
) -> Path:
    """Writes ``count`` SynthScapes samples of ``size`` to ``tmp_path/samples`` and points the
    explorer at them (:func:`use_samples`); returns that folder."""
    samples = tmp_path / "samples"
    write_samples(samples, count=count, size=size, seed=seed)
    return use_samples(samples, monkeypatch, tmp_path / "no_models")


def healthy(at: AppTest) -> AppTest:
    """Returns ``at`` after checking that its last run raised nothing and showed no error."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def progress_text(at: AppTest) -> str:
    """Returns the text of the page's first progress bar, or ``""`` when it shows none."""
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def rerun_until(
    at: AppTest, done: Callable[[AppTest], bool], what: str, seconds: float = 120.0
) -> AppTest:
    """Reruns ``at`` every 0.2 s until ``done(at)`` (a background job polled by the page);
    returns ``at``. Fails with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not done(at):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
        at.run()
    return at


def open_page(page: str, timeout: float = 120) -> AppTest:
    """Returns an AppTest of the explorer (:data:`APP`, each run allowed ``timeout`` seconds)
    that ran its main page, then switched to ``page`` (e.g. ``"pages/2_Video.py"``) and ran it."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.run()
    return at.switch_page(page).run()
