"""Choosing the pretrained ``cityscapes`` model in the Streamlit explorer (AppTest).

``HMSA_URL_CITYSCAPES`` points at a real HTTP server on 127.0.0.1: the full-size test serves
the recipe weights as a genuine 290 MB ``.pdparams`` (downloaded, converted, then used to
segment the sample); the other test points at a server that is gone, and the page must show one
clear error and keep working.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import hmsa_core
from app import common
from hmsa_core.data.synthscapes import write_samples
from hmsa_core.pretrained import PRETRAINED, cached_file
from tests.loopback_server import Route, loopback_server
from tests.paddle_recipe import recipe_pdparams

APP = Path(__file__).resolve().parent.parent / "app" / "explorer.py"
TIMEOUT = 300
PATH = "/model.pdparams"


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Points samples, models and the download cache at fresh folders; returns the cache."""
    samples = tmp_path / "samples"
    write_samples(samples, count=1, size=(64, 128), seed=5)
    monkeypatch.setenv(common.SAMPLES_DIR_ENV, str(samples))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "no_models"))
    monkeypatch.setenv("HMSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HMSA_OFFLINE", raising=False)
    monkeypatch.delenv("HMSA_DEFAULT_MODEL", raising=False)
    hmsa_core.DEFAULT_SCALE_CACHE.clear()
    return tmp_path / "cache"


def _start() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_menu_shows_the_pretrained_entry_with_its_download_cost(app_env: Path) -> None:
    at = _start()
    options = at.selectbox(key="model_name").options
    assert options[:2] == ["hmsa-lite", "explicit-lite"]
    assert (
        "cityscapes: HRNet-W48 + OCR + HMSA, 86.9 mIoU Cityscapes val, about 290 MB, "
        "not downloaded yet"
    ) in options
    assert at.session_state["hmsa_result"].model_name == "lite"  # no download on opening


def test_server_down_shows_one_clear_error_and_the_page_keeps_working(
    app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loopback_server({}) as gone:
        url = gone.url + PATH
    monkeypatch.setenv("HMSA_URL_CITYSCAPES", url)
    at = _start()
    at.selectbox(key="model_name").set_value("cityscapes").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("cannot reach" in e and url in e for e in errors), errors
    at.selectbox(key="model_name").set_value("hmsa-lite").run()
    assert not at.exception and not at.error
    assert at.session_state["hmsa_result"].model_name == "lite"


@pytest.mark.slow
def test_choosing_cityscapes_downloads_converts_and_segments(
    app_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = recipe_pdparams(tmp_path_factory)
    with loopback_server({PATH: Route(path=source)}) as server:
        monkeypatch.setenv("HMSA_URL_CITYSCAPES", server.url + PATH)
        at = _start()
        at.selectbox(key="model_name").set_value("cityscapes").run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        assert len(server.requests_to(PATH)) == 1
    result = at.session_state["hmsa_result"]
    assert result.model_name == "hrnet48_ocr_mscale" and result.labels.name == "cityscapes"
    assert result.scales == common.DEFAULT_CASCADE
    assert cached_file(PRETRAINED["cityscapes"], app_env).is_file()
    # The sidebar shows the finished download in the same run, without a reload: the menu
    # lists it as downloaded, no "not downloaded yet" caption, no Cancel button.
    assert any(o.endswith("290 MB, downloaded") for o in at.selectbox(key="model_name").options)
    assert not any("not downloaded" in c.value for c in at.sidebar.caption)
    assert "Cancel download" not in [b.label for b in at.sidebar.button]
