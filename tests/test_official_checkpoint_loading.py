"""Official ``.pth`` checkpoints load safely and exactly, and bad files are refused loudly."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import hmsa_core
from hmsa_core.checkpoints.native import save_native
from hmsa_core.checkpoints.official import (
    is_official_checkpoint,
    load_official,
    read_official_info,
    save_official,
)
from hmsa_core.data.recipe_weights import read_manifest, recipe_state_dict
from hmsa_core.labels import generic_label_set
from hmsa_core.models import build
from hmsa_core.models.mscale_ocr import ARCH, MscaleOCR
from tests.hostile_files import WritesMarker, record_model_builds

MANIFEST = Path(__file__).parent / "fixtures" / "nvidia_mscale_ocr_hrnetv2_w48_cityscapes.json"


@pytest.fixture(scope="module")
def recipe() -> OrderedDict[str, torch.Tensor]:
    return recipe_state_dict(read_manifest(MANIFEST))


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory, recipe: OrderedDict) -> Path:
    path = tmp_path_factory.mktemp("official") / "best_checkpoint_ep3.pth"
    save_official(recipe, path, 19, mean_iu=np.float64(0.8125), epoch=3, command="train.py --x")
    return path


def _assert_equal_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    ours = model.state_dict()
    assert list(ours) == list(state)
    for key, tensor in state.items():
        assert torch.equal(ours[key].cpu(), tensor), key


def test_official_layout_is_what_the_training_script_writes(official_file: Path) -> None:
    assert zipfile.is_zipfile(official_file)
    allowed = [np.dtype, np.dtypes.Float64DType, np._core.multiarray.scalar]
    with torch.serialization.safe_globals(allowed):
        data = torch.load(official_file, weights_only=True)
    assert set(data) == {
        "epoch",
        "arch",
        "num_classes",
        "state_dict",
        "optimizer",
        "mean_iu",
        "command",
        "__metric",
    }
    assert type(data["mean_iu"]) is np.float64 and type(data["__metric"]) is np.float64
    assert all(k.startswith("module.") for k in data["state_dict"])


def test_default_weights_only_load_refuses_numpy_scalars(official_file: Path) -> None:
    """The allowlist is needed: plain ``torch.load`` refuses the NumPy float64 ``mean_iu``."""
    with pytest.raises(pickle.UnpicklingError, match=r"multiarray\.scalar"):
        torch.load(official_file, weights_only=True)


def test_round_trip_restores_every_tensor_and_the_metadata(
    official_file: Path, recipe: OrderedDict
) -> None:
    model = load_official(official_file)
    assert isinstance(model, MscaleOCR) and not model.training
    assert model.labels.name == "cityscapes"
    _assert_equal_state(model, recipe)
    info = model.checkpoint_info  # type: ignore[attr-defined]
    assert info.metrics == {"miou": 0.8125}
    assert info.train_command == "train.py --x"
    assert info.extra["official_arch"] == "ocrnet.HRNet_Mscale" and info.extra["epoch"] == 3


def test_load_model_dispatches_a_pth_path_to_the_official_loader(official_file: Path) -> None:
    model = hmsa_core.load_model(official_file, device="cpu")
    assert model.arch == ARCH and model.num_classes == 19


def test_read_official_info_is_cheap_metadata(official_file: Path) -> None:
    info = read_official_info(official_file)
    assert (info.num_classes, info.epoch, info.mean_iu) == (19, 3, 0.8125)
    assert info.parameter_count == build(ARCH, 19).parameter_count()


@pytest.mark.parametrize("prefixed", [True, False])
def test_bare_state_dict_loads_with_or_without_the_module_prefix(
    tmp_path: Path, recipe: OrderedDict, prefixed: bool
) -> None:
    state = OrderedDict(("module." + k if prefixed else k, v) for k, v in recipe.items())
    path = tmp_path / "bare.pt"
    torch.save(state, path)
    model = load_official(path)
    _assert_equal_state(model, recipe)
    assert model.checkpoint_info.metrics == {}  # type: ignore[attr-defined]


def test_class_count_comes_from_the_classifier_when_absent(tmp_path: Path) -> None:
    mapillary = build(ARCH, 65).state_dict()
    path = tmp_path / "mapillary.pth"
    torch.save({"state_dict": OrderedDict(("module." + k, v) for k, v in mapillary.items())}, path)
    model = load_official(path)
    assert model.num_classes == 65 and model.labels.name == "mapillary"
    custom = generic_label_set(65, name="my65")
    assert load_official(path, labels=custom).labels.name == "my65"
    with pytest.raises(ValueError, match="65 classes"):
        load_official(path, labels=generic_label_set(19))


def _edited(recipe: OrderedDict, tmp_path: Path, edit: str) -> Path:
    state = OrderedDict(recipe)
    if edit == "missing":
        del state["scale_attn.conv2.weight"]
    elif edit == "unexpected":
        state["ocr.ocr_gather_head.extra"] = torch.zeros(3)
    elif edit == "misshaped":
        state["scale_attn.conv1.weight"] = torch.zeros(128, 256, 3, 3)
    path = tmp_path / f"{edit}.pth"
    save_official(state, path, 19, mean_iu=np.float64(0.5))
    return path


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("missing", r"1 missing key\(s\): scale_attn.conv2.weight"),
        ("unexpected", r"1 unexpected key\(s\): ocr.ocr_gather_head.extra"),
        (
            "misshaped",
            r"scale_attn.conv1.weight: file \(128, 256, 3, 3\) vs model \(256, 256, 3, 3\)",
        ),
    ],
)
def test_wrong_keys_are_named_in_the_error(
    tmp_path: Path, recipe: OrderedDict, edit: str, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        load_official(_edited(recipe, tmp_path, edit))


@pytest.fixture
def no_model_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the default device of every model build the official loader makes."""
    return record_model_builds(monkeypatch)


def test_recorded_class_count_disagreeing_with_the_tensors_is_refused(
    tmp_path: Path, recipe: OrderedDict, no_model_built: list[str]
) -> None:
    path = tmp_path / "wrong_count.pth"
    save_official(recipe, path, 65)
    message = (
        r"wrong_count.pth records num_classes=65 but its classifier 'ocr.cls_head.weight' "
        r"has 19 rows \(shape \(19, 512, 1, 1\)\)"
    )
    with pytest.raises(ValueError, match=message):
        load_official(path)
    with pytest.raises(ValueError, match=message):
        read_official_info(path)
    assert no_model_built == []  # refused before any model, even a skeleton, was built


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"num_classes": 10**9}, r"declares 1000000000 classes; 1 to 255"),
        ({"num_classes": 0}, r"declares 0 classes"),
        ({"num_classes": -4}, r"declares -4 classes"),
        ({"rows": 300}, r"declares 300 classes; 1 to 255"),
        ({"num_classes": 10**9, "rows": 19}, r"num_classes=1000000000 but .* has 19 rows"),
    ],
)
def test_absurd_class_counts_are_refused_before_building(
    tmp_path: Path, payload: dict, message: str, no_model_built: list[str]
) -> None:
    """A hostile count (10**9 classes would be a 2 TB classifier) never reaches a build."""
    state = {"module.scale_attn.conv2.weight": torch.zeros(1, 256, 1, 1)}
    if "rows" in payload:
        state["module.ocr.cls_head.weight"] = torch.zeros(payload["rows"], 512, 1, 1)
    file = {"state_dict": state}
    if "num_classes" in payload:
        file["num_classes"] = payload["num_classes"]
    path = tmp_path / "absurd.pth"
    torch.save(file, path)
    with pytest.raises(ValueError, match=message):
        load_official(path)
    assert no_model_built == []


def test_wrong_keys_are_found_on_a_meta_skeleton_before_weights_are_allocated(
    tmp_path: Path, recipe: OrderedDict, no_model_built: list[str]
) -> None:
    with pytest.raises(ValueError, match=r"1 missing key\(s\): scale_attn.conv2.weight"):
        load_official(_edited(recipe, tmp_path, "missing"))
    assert no_model_built == ["meta"]  # the real (72 M parameter) model was never built


def test_truncated_checkpoint_is_refused(tmp_path: Path, official_file: Path) -> None:
    path = tmp_path / "truncated.pth"
    path.write_bytes(official_file.read_bytes()[: official_file.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.pth is not a loadable official checkpoint"):
        hmsa_core.load_model(path)
    assert not is_official_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        b"just some text\n",
        b"\x89PNG\r\n\x1a\n" + bytes(64),
        b"",
        pickle.dumps([1, 2, 3], protocol=2),
    ],
    ids=["text", "png", "empty", "plain-pickle"],
)
def test_non_checkpoint_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not_a_model.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"not_a_model\.pth"):
        load_official(path)
    assert not is_official_checkpoint(path)


def test_torch_file_without_a_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tensors.pth"
    torch.save({"epoch": 1, "weights": [torch.zeros(2)]}, path)
    with pytest.raises(ValueError, match="not an official checkpoint"):
        load_official(path)


def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, recipe: OrderedDict) -> None:
    control = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(WritesMarker(control)))
    assert control.exists(), "the payload must be live for this test to mean anything"

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": recipe, "num_classes": 19, "mean_iu": WritesMarker(marker)}, path)
    with pytest.raises(ValueError, match=r"evil.pth .*GLOBAL (builtins\.)?exec"):
        hmsa_core.load_model(path)
    with pytest.raises(ValueError, match=r"GLOBAL (builtins\.)?exec"):
        read_official_info(path)
    assert not marker.exists()


def test_numpy_1x_scalar_name_is_accepted(tmp_path: Path) -> None:
    """Released files were written with NumPy 1.x, which names ``numpy.core.multiarray.scalar``."""
    buf = io.BytesIO()
    payload = {
        "num_classes": 19,
        "state_dict": {"module.ocr.cls_head.weight": torch.zeros(19, 512, 1, 1)},
        "mean_iu": np.float64(0.75),
    }
    torch.save(payload, buf, _use_new_zipfile_serialization=False, pickle_protocol=2)
    new_name, old_name = b"numpy._core.multiarray\nscalar\n", b"numpy.core.multiarray\nscalar\n"
    raw = buf.getvalue()
    if new_name in raw:
        raw = raw.replace(new_name, old_name)
    assert old_name in raw
    path = tmp_path / "numpy1.pth"
    path.write_bytes(raw)
    assert read_official_info(path).mean_iu == 0.75
    assert is_official_checkpoint(path)


def test_is_official_checkpoint_tells_formats_apart(tmp_path: Path, official_file: Path) -> None:
    assert is_official_checkpoint(official_file)
    native = save_native(build("lite", 19), tmp_path / "lite.safetensors")
    assert not is_official_checkpoint(native)
    assert not is_official_checkpoint(tmp_path / "missing.pth")
    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": {"a.weight": torch.zeros(1)}}, plain)
    assert not is_official_checkpoint(plain)


def test_missing_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such"):
        load_official(tmp_path / "nope.pth")
    assert not os.path.exists(tmp_path / "nope.pth")


def test_official_model_converts_to_the_native_format(tmp_path: Path, official_file: Path) -> None:
    model = load_official(official_file)
    native = save_native(model, tmp_path / "converted.safetensors")
    again = hmsa_core.load_model(native, device="cpu")
    assert again.arch == ARCH and again.labels == model.labels
    _assert_equal_state(again, model.state_dict())
