"""``discover_models`` lists bundled models and checkpoint files, safely and cheaply."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core.api
from hmsa_core.checkpoints.native import save_native
from hmsa_core.checkpoints.official import save_official
from hmsa_core.data.recipe_weights import read_manifest, recipe_state_dict
from hmsa_core.discovery import ModelEntry, discover_models
from hmsa_core.models import build
from hmsa_core.models.mscale_ocr import ARCH


def discover_files(models_dir: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Returns the bundled models and the folder's files (the pretrained downloads left out)."""
    return discover_models(models_dir, include_pretrained=False)


MANIFEST = Path(__file__).parent / "fixtures" / "nvidia_mscale_ocr_hrnetv2_w48_cityscapes.json"


@pytest.fixture()
def no_bundled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Points the bundled-assets folder at an empty directory; returns it."""
    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setattr(hmsa_core.api, "ASSETS_DIR", assets)
    return assets


@pytest.fixture(scope="module")
def official_state() -> OrderedDict[str, torch.Tensor]:
    return recipe_state_dict(read_manifest(MANIFEST))


def _by_name(entries: list[ModelEntry]) -> dict[str, ModelEntry]:
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    return {e.name: e for e in entries}


def test_missing_folder_gives_only_bundled_models(no_bundled: Path, tmp_path: Path) -> None:
    assert discover_files(tmp_path / "does_not_exist") == []
    lite = build("lite", 19)
    save_native(lite, no_bundled / hmsa_core.api.BUNDLED_MODELS["hmsa-lite"])
    (entry,) = discover_files(tmp_path / "does_not_exist")
    assert (entry.name, entry.kind, entry.arch, entry.num_classes) == (
        "hmsa-lite",
        "bundled",
        "lite",
        19,
    )
    assert entry.label_set_name == "cityscapes"
    assert entry.parameter_count == lite.parameter_count()
    assert entry.error is None


def test_official_and_native_files_are_described(
    no_bundled: Path, tmp_path: Path, official_state: OrderedDict
) -> None:
    folder = tmp_path / "models"
    save_official(official_state, folder / "cityscapes.pth", 19, mean_iu=np.float64(0.8))
    save_native(build("lite", 7), folder / "mine.safetensors")
    (folder / "notes.txt").write_text("not a model")
    (folder / "subdir.pt").mkdir()
    entries = _by_name(discover_files(folder))
    assert set(entries) == {"cityscapes.pth", "mine.safetensors"}
    official = entries["cityscapes.pth"]
    assert (official.kind, official.arch, official.num_classes, official.label_set_name) == (
        "official",
        ARCH,
        19,
        "cityscapes",
    )
    assert official.parameter_count == build(ARCH, 19).parameter_count()
    assert official.error is None
    native = entries["mine.safetensors"]
    assert (native.kind, native.arch, native.num_classes, native.error) == (
        "native",
        "lite",
        7,
        None,
    )
    model = hmsa_core.api.load_model(native.path, device="cpu")
    assert model.num_classes == 7


def test_broken_files_are_listed_with_their_error(
    no_bundled: Path, tmp_path: Path, official_state: OrderedDict
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "garbage.pth").write_bytes(b"\x00" * 100)
    (folder / "garbage.safetensors").write_bytes(b"nope")
    incomplete = OrderedDict(official_state)
    del incomplete["scale_attn.conv0.weight"]
    save_official(incomplete, folder / "incomplete.pth", 19)
    entries = _by_name(discover_files(folder))
    assert set(entries) == {"garbage.pth", "garbage.safetensors", "incomplete.pth"}
    assert all(e.error and e.arch is None and e.num_classes is None for e in entries.values())
    assert "scale_attn.conv0.weight" in str(entries["incomplete.pth"].error)


def test_symlinks_never_lead_out_of_the_folder(no_bundled: Path, tmp_path: Path) -> None:
    folder = tmp_path / "models"
    outside = tmp_path / "elsewhere"
    save_native(build("lite", 19), outside / "secret.safetensors")
    save_native(build("lite", 19), folder / "real.safetensors")
    (folder / "escape.safetensors").symlink_to(outside / "secret.safetensors")
    (folder / "alias.safetensors").symlink_to(folder / "real.safetensors")
    (folder / "dangling.pth").symlink_to(tmp_path / "gone.pth")
    (folder / "loop.pth").symlink_to(folder / "loop.pth")
    entries = _by_name(discover_files(folder))
    assert set(entries) == {"real.safetensors", "alias.safetensors"}
    assert entries["alias.safetensors"].path == (folder / "real.safetensors").resolve()


def test_default_folder_comes_from_the_environment(
    no_bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "env_models"
    save_native(build("lite", 19), folder / "a.safetensors")
    monkeypatch.setenv("HMSA_MODELS_DIR", str(folder))
    assert [e.name for e in discover_files()] == ["a.safetensors"]
    monkeypatch.delenv("HMSA_MODELS_DIR")
    monkeypatch.chdir(tmp_path)
    save_native(build("lite", 19), tmp_path / "models" / "b.safetensors")
    assert [e.name for e in discover_files()] == ["b.safetensors"]


def test_changed_file_is_described_afresh(no_bundled: Path, tmp_path: Path) -> None:
    path = tmp_path / "models" / "m.safetensors"
    save_native(build("lite", 19), path)
    assert discover_files(path.parent)[0].num_classes == 19
    save_native(build("lite", 5), path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert discover_files(path.parent)[0].num_classes == 5


def test_entries_are_immutable(no_bundled: Path, tmp_path: Path) -> None:
    save_native(build("lite", 19), tmp_path / "m" / "x.safetensors")
    (entry,) = discover_files(tmp_path / "m")
    with pytest.raises(AttributeError):
        entry.name = "other"  # type: ignore[misc]
