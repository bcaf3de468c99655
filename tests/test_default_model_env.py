"""``HMSA_DEFAULT_MODEL`` names the default model of ``load_model``/``default_model`` and of
both apps' model menus (listing never downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hmsa_core
from app import common
from app.gradio_parts.handlers import Handlers


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HMSA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_unset_keeps_the_bundled_default(folders, monkeypatch) -> None:
    monkeypatch.delenv("HMSA_DEFAULT_MODEL", raising=False)
    assert hmsa_core.default_model_name() == "hmsa-lite"
    assert common.list_models()[0].name == "hmsa-lite"


def test_the_variable_picks_the_default_everywhere(folders, monkeypatch) -> None:
    monkeypatch.setenv("HMSA_DEFAULT_MODEL", "explicit-lite")
    assert hmsa_core.load_model(device="cpu").arch == "explicit_lite"
    assert hmsa_core.default_model("cpu").arch == "explicit_lite"
    assert common.list_models()[0].name == "explicit-lite"
    assert Handlers().entry(None).name == "explicit-lite"


def test_a_pretrained_default_is_listed_first_without_downloading(folders, monkeypatch) -> None:
    monkeypatch.setenv("HMSA_DEFAULT_MODEL", "cityscapes")
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    first = common.list_models()[0]
    assert (first.name, first.kind, first.downloaded) == ("cityscapes", "pretrained", False)
    assert Handlers().model_choices()[0] == (first.summary, "cityscapes")
    assert not (folders / "cache").exists()
    with pytest.raises(ValueError, match="HMSA_OFFLINE=1"):
        common.get_model(first)
