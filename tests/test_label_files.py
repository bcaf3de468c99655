"""Label files: an official checkpoint with other classes gets its names and colours from a
JSON file, given explicitly or lying beside the checkpoint as ``<stem>.labels.json``."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import hmsa_core
from hmsa_core.discovery import discover_models
from hmsa_core.labels import LabelSet, label_set_from_file, sidecar_label_file
from hmsa_core.models import build
from hmsa_core.models.mscale_ocr import ARCH

NAMES = [f"thing {i}" for i in range(65)]


@pytest.fixture(scope="module")
def mapillary_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = build(ARCH, 65).state_dict()
    path = tmp_path_factory.mktemp("models") / "mapillary.pth"
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in state.items())}, path)
    return path


def test_label_file_gives_names_and_generates_missing_colours(tmp_path: Path) -> None:
    path = tmp_path / "vistas.json"
    path.write_text(json.dumps({"names": ["a", "b", "c"]}))
    labels = label_set_from_file(path)
    assert labels.names == ("a", "b", "c") and labels.name == "vistas"
    assert len(set(labels.colors)) == 3
    path.write_text(json.dumps({"name": "x", "names": ["a"], "colors": [[1, 2, 3]]}))
    assert label_set_from_file(path).colors == ((1, 2, 3),)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not readable JSON"),
        ('["a", "b"]', '"names" list'),
        ('{"names": ["a", "b"], "colors": [[1, 2, 3]]}', "2 names but 1 colours"),
    ],
)
def test_malformed_label_files_are_refused_clearly(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.labels.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        label_set_from_file(path)


def test_sidecar_sits_beside_the_checkpoint() -> None:
    assert sidecar_label_file("/m/vistas.pth") == Path("/m/vistas.labels.json")


def test_load_model_uses_an_explicit_label_file_or_the_sidecar(
    mapillary_file: Path, tmp_path: Path
) -> None:
    assert hmsa_core.load_model(mapillary_file, "cpu").labels.name == "mapillary"
    explicit = tmp_path / "mine.json"
    explicit.write_text(json.dumps({"name": "mine", "names": NAMES}))
    model = hmsa_core.load_model(mapillary_file, "cpu", labels=explicit)
    assert model.labels.name == "mine" and model.labels.names[3] == "thing 3"
    sidecar = sidecar_label_file(mapillary_file)
    sidecar.write_text(json.dumps({"name": "vistas", "names": NAMES}))
    try:
        assert hmsa_core.load_model(mapillary_file, "cpu").labels.name == "vistas"
        listed = [
            e for e in discover_models(mapillary_file.parent) if e.path.name == "mapillary.pth"
        ]
        assert listed and listed[0].label_set_name == "vistas"
    finally:
        sidecar.unlink()


def test_label_set_of_the_wrong_size_is_refused(mapillary_file: Path) -> None:
    wrong = LabelSet("three", ("a", "b", "c"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    with pytest.raises(ValueError, match="65 classes"):
        hmsa_core.load_model(mapillary_file, "cpu", labels=wrong)


def test_native_checkpoints_keep_their_own_labels() -> None:
    with pytest.raises(ValueError, match="carries its own label set"):
        hmsa_core.load_model("hmsa-lite", "cpu", labels=Path("x.json"))
