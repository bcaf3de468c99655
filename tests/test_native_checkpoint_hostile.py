"""Hostile native (``.safetensors``) checkpoints: a bad header is a clear ValueError, found
before any weight is allocated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import hmsa_core
from hmsa_core.checkpoints import native
from hmsa_core.checkpoints.native import check_hparams, default_hparams, load_native, save_native
from hmsa_core.labels import generic_label_set, label_set_to_dict
from hmsa_core.models.mscale_ocr import ARCH
from tests.hostile_files import record_model_builds


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid ``lite`` checkpoint (19 classes, default hyper-parameters)."""
    folder = tmp_path_factory.mktemp("native")
    return save_native(hmsa_core.build("lite", num_classes=19), folder / "good.safetensors")


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the default device of every model the native loader builds (the cached
    meta-device builds that read an architecture's default hyper-parameters are made first)."""
    default_hparams("lite")
    return record_model_builds(monkeypatch)


def rewritten(source: Path, target: Path, **metadata: str) -> Path:
    """Writes ``source``'s tensors to ``target`` with some metadata fields replaced."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata())
    meta.update(metadata)
    save_file(load_file(str(source)), str(target), metadata=meta)
    return target


def with_hparams(source: Path, tmp_path: Path, hparams: object) -> Path:
    return rewritten(source, tmp_path / "edited.safetensors", hparams=json.dumps(hparams))


def test_the_untouched_file_loads(saved: Path, builds: list[str]) -> None:
    model = load_native(saved)
    assert model.num_classes == 19 and not model.training
    assert builds == ["meta", "cpu"]  # checked on a skeleton, then built once for real


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({"stem_channels": "x"}, r"hparams.stem_channels must be an integer, got 'x'"),
        ({"stem_channels": None}, r"hparams.stem_channels must be an integer, got None"),
        ({"stem_channels": True}, r"hparams.stem_channels must be an integer, got True"),
        ({"stem_channels": 16.0}, r"hparams.stem_channels must be an integer, got 16.0"),
        ({"stem_channels": -1}, r"hparams.stem_channels = -1 is outside the sane range 1\.\.128"),
        ({"stem_channels": 0}, r"hparams.stem_channels = 0 is outside the sane range"),
        ({"stem_channels": 10**12}, r"hparams.stem_channels = 1000000000000 is outside"),
        ({"fine_blocks": 10**6}, r"hparams.fine_blocks = 1000000 is outside the sane range"),
        ({"bogus": 1}, r"hparams has unknown field\(s\): bogus"),
        ([16, 24], r"malformed HMSA metadata: hparams must be a JSON object"),
    ],
)
def test_bad_hyper_parameters_are_named_before_any_build(
    saved: Path, tmp_path: Path, builds: list[str], hparams: object, message: str
) -> None:
    path = with_hparams(saved, tmp_path, hparams)
    with pytest.raises(ValueError, match=message) as caught:
        hmsa_core.load_model(path, device="cpu")
    assert "edited.safetensors" in str(caught.value)
    assert builds == []


def test_a_plausible_but_wrong_width_is_caught_on_the_meta_device(
    saved: Path, tmp_path: Path, builds: list[str]
) -> None:
    """stem_channels 32 builds fine, but the file holds 16-channel tensors: no real model."""
    path = with_hparams(saved, tmp_path, {"stem_channels": 32})
    match = r"mis-shaped key\(s\): trunk.stem.0.0.weight: file \(16, 3, 3, 3\) vs model \(32,"
    with pytest.raises(ValueError, match=match):
        load_native(path)
    assert builds == ["meta"]


def test_a_constructor_error_becomes_a_value_error(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a model constructor raises (TypeError, RuntimeError) is reported as ValueError."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Trying to create tensor with negative dimension -1")

    monkeypatch.setattr(native, "build", broken)
    with pytest.raises(ValueError, match=r"good.safetensors: its hparams do not build a 'lite'"):
        load_native(saved)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (256, r"labels.safetensors declares 256 classes; 1 to 255 are supported"),
        (300, r"labels.safetensors has malformed HMSA metadata"),
        (0, r"labels.safetensors has malformed HMSA metadata: .*no classes"),
    ],
)
def test_absurd_class_counts_are_refused(
    saved: Path, tmp_path: Path, builds: list[str], classes: int, message: str
) -> None:
    labels = {"name": "many", "names": [f"c{i}" for i in range(classes)], "colors": []}
    labels["colors"] = [[0, 0, 0]] * classes
    path = rewritten(saved, tmp_path / "labels.safetensors", labels=json.dumps(labels))
    with pytest.raises(ValueError, match=message):
        load_native(path)
    assert builds == []


def test_label_count_disagreeing_with_the_classifier_is_found_on_the_meta_device(
    saved: Path, tmp_path: Path, builds: list[str]
) -> None:
    labels = json.dumps(label_set_to_dict(generic_label_set(200)))
    path = rewritten(saved, tmp_path / "labels.safetensors", labels=labels)
    with pytest.raises(
        ValueError, match=r"classifier.weight: file \(19, 32, 1, 1\) vs model \(200"
    ):
        load_native(path)
    assert builds == ["meta"]


def test_unknown_architecture_is_named(saved: Path, tmp_path: Path) -> None:
    path = rewritten(saved, tmp_path / "arch.safetensors", arch="resnet9000")
    with pytest.raises(
        ValueError, match=r"arch.safetensors cannot be loaded: unknown architecture"
    ):
        load_native(path)


def test_nested_and_list_hyper_parameters_are_checked_too() -> None:
    defaults = default_hparams(ARCH)
    check_hparams(defaults, defaults)  # the defaults themselves pass
    bad_trunk = {"trunk": {"branch_channels": [48, 96, "x", 384]}}
    with pytest.raises(ValueError, match=r"hparams.trunk.branch_channels\[2\] must be an integer"):
        check_hparams(bad_trunk, defaults)
    with pytest.raises(ValueError, match=r"hparams.trunk.stage_modules\[1\] = 1000 is outside"):
        check_hparams({"trunk": {"stage_modules": [1, 1000, 3]}}, defaults)
    with pytest.raises(ValueError, match=r"hparams.ocr_dropout = nan is outside"):
        check_hparams({"ocr_dropout": float("nan")}, defaults)
    with pytest.raises(ValueError, match=r"hparams.trunk.branch_channels must be a list"):
        check_hparams({"trunk": {"branch_channels": [48] * 100}}, defaults)
    explicit = default_hparams("explicit_lite")
    check_hparams({"train_scales": [0.5, 1.0]}, explicit)
    with pytest.raises(ValueError, match=r"train_scales\[1\] = -1.0 is outside"):
        check_hparams({"train_scales": [0.5, -1.0]}, explicit)
