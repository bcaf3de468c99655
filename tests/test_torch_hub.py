"""``torch.hub`` loads the models from this repository's ``hubconf.py`` (no torchvision needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import hmsa_core

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "samples" / "synthscapes_val_000.png"
ENTRIES = ("hmsa_lite", "explicit_lite", "cityscapes")


def _hubconf():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("hubconf_under_test", REPO / "hubconf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hub_load_gives_a_ready_model_for_infer() -> None:
    model = torch.hub.load(str(REPO), "hmsa_lite", source="local", device="cpu")
    assert not model.training and model.has_attention
    result = hmsa_core.infer(SAMPLE, (0.5, 1.0), model=model, cache=None)
    bundled = hmsa_core.infer(
        SAMPLE, (0.5, 1.0), model=hmsa_core.load_model("hmsa-lite"), cache=None
    )
    assert torch.equal(result.pred, bundled.pred)


def test_the_explicit_entry_runs_its_fixed_cascade() -> None:
    model = torch.hub.load(str(REPO), "explicit_lite", source="local", device="cpu")
    result = hmsa_core.infer(SAMPLE, (0.5, 1.0, 2.0), model=model, method="explicit", cache=None)
    assert result.pred.shape == result.size


def test_every_entry_has_a_docstring_for_hub_help_and_known_dependencies() -> None:
    hub = _hubconf()
    for name in ENTRIES:
        doc = getattr(hub, name).__doc__  # what torch.hub.help(repo, name) prints
        assert doc and "hmsa_core.infer" in doc, name
    for package in hub.dependencies:
        assert importlib.util.find_spec(package) is not None, package


def test_the_pretrained_entry_explains_itself_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HMSA_OFFLINE", "1")
    monkeypatch.setenv("HMSA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HMSA_MODELS_DIR", str(tmp_path / "models"))
    with pytest.raises(ValueError, match="HMSA_OFFLINE"):
        torch.hub.load(str(REPO), "cityscapes", source="local")
