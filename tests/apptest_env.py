"""The Streamlit explorer under ``streamlit.testing.v1.AppTest``: the set-up every AppTest
module shares (samples, an empty models folder, a clear per-scale cache) and its health check."""

from __future__ import annotations

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
