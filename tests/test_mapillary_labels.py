"""The bundled Mapillary Vistas v1.2 label file, picked for every 65-class checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hmsa_core.checkpoints.native import load_native, save_native
from hmsa_core.checkpoints.paddle import load_paddle_state
from hmsa_core.labels import MAPILLARY_LABEL_FILE, label_set_for, mapillary_vistas
from tests.paddle_recipe import paddle_manifest

ROOT = Path(__file__).resolve().parent.parent


def test_65_classes_get_the_vistas_names_and_colours() -> None:
    labels = label_set_for(65)
    assert labels is mapillary_vistas() and labels.name == "mapillary"
    assert labels.num_classes == 65 and len(set(labels.names)) == 65
    assert len(set(labels.colors)) == 65  # every class drawn in its own colour
    # Vistas shares Cityscapes' colours for the classes both datasets have.
    shared = {"Road": (128, 64, 128), "Sky": (70, 130, 180), "Car": (0, 0, 142)}
    for name, colour in shared.items():
        assert labels.colors[labels.names.index(name)] == colour
    assert labels.names[0] == "Bird" and labels.names[-1] == "Ego Vehicle"


def test_the_label_file_ships_as_package_data() -> None:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["hmsa_core"]
    assert any(Path(MAPILLARY_LABEL_FILE).match(p) for p in patterns)
    assert (ROOT / "hmsa_core" / MAPILLARY_LABEL_FILE).is_file()


def test_a_65_class_paddleseg_checkpoint_gets_vistas_labels_and_saves_natively(
    tmp_path: Path,
) -> None:
    state = {k: np.full(s, 0.01, np.float32) for k, s in paddle_manifest(65)}
    model = load_paddle_state(state, "mapillary.pdparams")
    assert model.labels == mapillary_vistas()
    path = save_native(model, tmp_path / "mapillary.safetensors")
    again = load_native(path)
    assert again.labels == mapillary_vistas()
    for (key, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), key
