"""Reading PaddleSeg ``.pdparams`` files safely and converting their keys onto our architecture.

Uses the genuine ``paddle.save`` file in tests/fixtures, files pickled the way ``paddle.save``
pickles (protocols 2 and 4, NumPy 1.x and 2.x module names), and hostile pickles whose payload
would create a marker file. Conversion is checked against PaddleSeg's key manifest.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hmsa_core.checkpoints.paddle import (
    UnsafePickleError,
    convert_paddle_state,
    expected_shapes,
    load_paddle,
    paddle_key_to_ours,
    paddle_num_classes,
    read_pdparams,
    save_pdparams,
)
from hmsa_core.labels import CITYSCAPES, generic_label_set
from tests.paddle_recipe import PADDLE_EXAMPLE, paddle_manifest


def _zeros_state(num_classes: int = 19) -> dict[str, np.ndarray]:
    """Returns PaddleSeg's full key set filled with zeros (calloc'd: costs no real memory)."""
    return {k: np.zeros(s, np.float32) for k, s in paddle_manifest(num_classes)}


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_the_genuine_paddle_save_file_loads_without_its_name_table() -> None:
    arrays = read_pdparams(PADDLE_EXAMPLE)
    assert sorted(arrays) == ["0.weight", "1._mean", "1._variance", "1.bias", "1.weight"]
    assert arrays["0.weight"].shape == (4, 3, 3, 3) and arrays["0.weight"].dtype == np.float32


@pytest.mark.parametrize("protocol", [2, 4])
def test_files_pickled_like_paddle_save_round_trip(tmp_path: Path, protocol: int) -> None:
    """Protocol 2 also calls ``_codecs.encode`` for the array bytes."""
    original = read_pdparams(PADDLE_EXAMPLE)
    path = save_pdparams(original, tmp_path / "copy.pdparams", protocol=protocol)
    again = read_pdparams(path)
    assert all(np.array_equal(original[k], again[k]) for k in original)
    if protocol == 2:
        assert b"_codecs" in path.read_bytes()


def test_numpy_1x_module_spelling_is_accepted(tmp_path: Path) -> None:
    path = save_pdparams(read_pdparams(PADDLE_EXAMPLE), tmp_path / "new.pdparams", protocol=2)
    raw = path.read_bytes()
    assert b"numpy._core.multiarray\n_reconstruct" in raw
    old = tmp_path / "old.pdparams"
    old.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert sorted(read_pdparams(old)) == sorted(read_pdparams(path))


@pytest.mark.parametrize("protocol", [2, 4])
def test_reduce_payload_is_refused_by_name_and_never_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"posix\.system|os\.system|nt\.system"):
        read_pdparams(path)
    assert not marker.exists()


def test_any_other_global_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "od.pdparams"
    from collections import OrderedDict

    path.write_bytes(pickle.dumps(OrderedDict(w=np.zeros(2, np.float32)), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"collections\.OrderedDict"):
        read_pdparams(path)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"<html><body>login</body></html>", "web page"),
        (b"PK\x03\x04 zip", "not a pickle"),
        (pickle.dumps([1, 2, 3], protocol=4), "not a .pdparams state dict"),
        (pickle.dumps({"w": "text"}, protocol=4), "not an array"),
    ],
)
def test_foreign_files_get_a_clear_error(tmp_path: Path, data: bytes, pattern: str) -> None:
    path = tmp_path / "x.pdparams"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=pattern):
        read_pdparams(path)


def test_truncated_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cut.pdparams"
    path.write_bytes(PADDLE_EXAMPLE.read_bytes()[:500])
    with pytest.raises(ValueError, match="truncated"):
        read_pdparams(path)


def test_every_manifest_key_maps_to_a_distinct_key_of_our_model() -> None:
    expected = expected_shapes(CITYSCAPES, "x")
    mapped = [paddle_key_to_ours(k) for k, _ in paddle_manifest()]
    assert None not in mapped and len(set(mapped)) == len(mapped) == 1587
    assert set(mapped) == {k for k in expected if not k.endswith("num_batches_tracked")}
    converted = convert_paddle_state(_zeros_state(), expected)
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected


def test_missing_extra_and_misshaped_keys_are_refused_by_name() -> None:
    expected = expected_shapes(CITYSCAPES, "x")
    state = _zeros_state()
    del state["scale_attn.atten_head.2.weight"]
    state["ocrnet.head.extra_layer.weight"] = np.zeros(3, np.float32)
    state["ocrnet.head.conv3x3_ocr._conv.bias"] = np.zeros(7, np.float32)
    with pytest.raises(ValueError) as info:
        convert_paddle_state(state, expected, "bad.pdparams")
    message = str(info.value)
    assert "ocrnet.head.extra_layer.weight" in message
    assert "missing key(s): scale_attn.conv2.weight" in message
    assert "ocr.conv3x3_ocr.0.bias: file (7,) vs model (512,)" in message


@pytest.mark.parametrize("num_classes", [2, 65, 150])
def test_the_classifier_rows_decide_the_class_count(num_classes: int) -> None:
    state = _zeros_state(num_classes)
    assert paddle_num_classes(state) == num_classes
    expected = expected_shapes(generic_label_set(num_classes), "x")
    converted = convert_paddle_state(state, expected)
    assert converted["ocr.cls_head.weight"].shape[0] == num_classes
    assert converted["ocr.aux_head.2.weight"].shape[0] == num_classes


def test_classifiers_that_disagree_are_refused() -> None:
    state = _zeros_state()
    state["ocrnet.head.aux_head.1.weight"] = np.zeros((5, 720, 1, 1), np.float32)
    with pytest.raises(ValueError, match="aux classifier"):
        paddle_num_classes(state)


def test_a_label_set_of_another_size_is_refused(tmp_path: Path) -> None:
    path = save_pdparams(
        {"ocrnet.head.cls_head.weight": np.zeros((19, 512, 1, 1), np.float32)},
        tmp_path / "c.pdparams",
    )
    with pytest.raises(ValueError, match="19 classes but label set"):
        load_paddle(path, labels=generic_label_set(3))


def test_a_pdparams_file_of_another_architecture_is_listed_with_its_error(tmp_path: Path) -> None:
    from hmsa_core.discovery import discover_models

    (tmp_path / "tiny.pdparams").write_bytes(PADDLE_EXAMPLE.read_bytes())
    (entry,) = [e for e in discover_models(tmp_path) if e.name == "tiny.pdparams"]
    assert entry.kind == "paddle"
    assert entry.error is not None and "not a PaddleSeg MscaleOCRNet" in entry.error
