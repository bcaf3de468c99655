"""PaddleSeg's ``.pdparams`` checkpoints of ``MscaleOCRNet`` on ``HRNet_W48_NV``.

``paddle.save(state_dict, path)`` writes one pickle: a dict from key name to
``numpy.ndarray`` plus an entry ``"StructuredToParameterName@@"`` (Paddle's internal names,
not needed here). The file is read with a restricted unpickler that allows exactly the globals
such a file uses (NumPy's array reconstruction under its 1.x and 2.x module names,
``numpy.ndarray``, ``numpy.dtype``, and ``_codecs.encode`` for protocol-2 byte strings) and
refuses any other global by name before it runs, so a hostile file cannot run code.

PaddleSeg's model computes the same function as NVIDIA's, so :func:`convert_paddle_state`
only renames keys onto our ``hrnet48_ocr_mscale`` architecture: every key is used once and
every shape checked; a missing, extra or mis-shaped key is refused by name.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from hmsa_core.checkpoints.native import (
    MAX_CLASSES,
    CheckpointInfo,
    build_checked,
    check_state_dict,
    shape_problems,
)
from hmsa_core.checkpoints.paddle_keys import paddle_key_to_ours as paddle_key_to_ours
from hmsa_core.labels import LabelSet, label_set_for
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH

#: Paddle's extra entry mapping structured names to its internal parameter names.
STRUCTURED_NAMES_KEY = "StructuredToParameterName@@"
#: PaddleSeg's classifier (its rows are the class count) and aux classifier.
PADDLE_CLASSIFIER_KEY = "ocrnet.head.cls_head.weight"
PADDLE_AUX_CLASSIFIER_KEY = "ocrnet.head.aux_head.1.weight"
PDPARAMS_SUFFIX = ".pdparams"
_PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04")


class UnsafePickleError(ValueError):
    """A pickle asked for a global outside the ``.pdparams`` allowlist (it was not run)."""


def _reconstruct() -> Callable:
    try:
        from numpy._core.multiarray import _reconstruct as function
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import _reconstruct as function  # type: ignore[no-redef]
    return function


#: ``(module, name)`` -> object: exactly the globals a genuine ``.pdparams`` file calls.
ALLOWED_GLOBALS: Mapping[tuple[str, str], object] = {
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}

_READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    struct.error,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
    RecursionError,
)


class _PdparamsUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`; any other global raises before it can run."""

    def find_class(self, module: str, name: str) -> object:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(
                f"it asks for {module}.{name}, which a .pdparams file never needs "
                "(a pickle that tries to run code); nothing from it was run"
            )
        return allowed

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError("it uses pickle persistent ids, which .pdparams files never do")


def _checked_arrays(data: object, name: str) -> dict[str, np.ndarray]:
    """Returns the ``key -> array`` entries of an unpickled ``.pdparams`` object."""
    if not isinstance(data, dict):
        raise ValueError(f"{name} is not a .pdparams state dict (it holds a {type(data).__name__})")
    arrays: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if key == STRUCTURED_NAMES_KEY:
            continue
        if not isinstance(key, str):
            raise ValueError(f"{name} has a non-string key {key!r}")
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{name}: entry {key!r} is a {type(value).__name__}, not an array")
        if value.dtype.kind not in "fiub":
            raise ValueError(f"{name}: entry {key!r} has dtype {value.dtype}, not numeric")
        arrays[key] = value
    if not arrays:
        raise ValueError(f"{name} holds no arrays")
    return arrays


def _unpickle(handle: io.BufferedIOBase | io.BytesIO, name: str) -> dict[str, np.ndarray]:
    head = handle.read(2)
    if head[:1] != b"\x80" or head not in _PICKLE_PROTOCOLS:
        kind = "a web page (HTML)" if head.lstrip()[:1] == b"<" else "not a pickle"
        raise ValueError(f"{name} is not a .pdparams file: it is {kind}")
    handle.seek(0)
    try:
        data = _PdparamsUnpickler(handle).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{name} was refused: {exc}") from None
    except EOFError:
        raise ValueError(f"{name} is truncated: the pickle ends early") from None
    except _READ_ERRORS as exc:
        raise ValueError(f"{name} is not a readable .pdparams file: {exc}") from None
    return _checked_arrays(data, name)


def read_pdparams(path: str | os.PathLike, name: str | None = None) -> dict[str, np.ndarray]:
    """Returns the ``key -> numpy array`` dict stored in a ``.pdparams`` file.

    The ``StructuredToParameterName@@`` entry is dropped. Raises :class:`UnsafePickleError`
    (a ``ValueError``) for a pickle asking for any global outside :data:`ALLOWED_GLOBALS`, and
    ``ValueError`` for a truncated, foreign or malformed file. ``name`` is how messages call
    the file (default: its file name).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    with path.open("rb") as handle:
        return _unpickle(handle, name or path.name)


def save_pdparams(
    state: Mapping[str, np.ndarray], path: str | os.PathLike, protocol: int = 4
) -> Path:
    """Writes ``state`` as ``paddle.save`` does (one pickle of a dict of arrays plus the
    ``StructuredToParameterName@@`` entry); returns the path. For tests and mirrors."""
    path = Path(path)
    payload: dict[str, object] = {k: np.ascontiguousarray(v) for k, v in state.items()}
    payload[STRUCTURED_NAMES_KEY] = {k: f"param_{i}" for i, k in enumerate(state)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        pickle.dump(payload, handle, protocol=protocol)
    return path


def paddle_num_classes(state: Mapping[str, np.ndarray], name: str = "file") -> int:
    """Returns the class count of a PaddleSeg state dict: the rows of its classifier.

    Raises ``ValueError`` when there is no classifier, its aux classifier disagrees, or the
    count is outside ``1..MAX_CLASSES``.
    """
    classifier = state.get(PADDLE_CLASSIFIER_KEY)
    if classifier is None or classifier.ndim < 1:
        raise ValueError(
            f"{name} is not a PaddleSeg MscaleOCRNet (HRNet-W48) checkpoint: it has no "
            f"'{PADDLE_CLASSIFIER_KEY}'"
        )
    rows = int(classifier.shape[0])
    aux = state.get(PADDLE_AUX_CLASSIFIER_KEY)
    if aux is not None and aux.ndim >= 1 and int(aux.shape[0]) != rows:
        raise ValueError(
            f"{name}: its classifier has {rows} rows but its aux classifier "
            f"'{PADDLE_AUX_CLASSIFIER_KEY}' has {int(aux.shape[0])}"
        )
    if not 1 <= rows <= MAX_CLASSES:
        raise ValueError(f"{name} has {rows} classes; 1 to {MAX_CLASSES} are supported")
    return rows


def convert_paddle_state(
    state: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    name: str = "file",
) -> dict[str, torch.Tensor]:
    """Returns our state dict (float32 CPU tensors; ``num_batches_tracked`` filled with 0)
    for a PaddleSeg state dict, checked against ``expected`` (our key -> shape).

    Raises:
        ValueError: naming every PaddleSeg key that maps to no layer (or to one already
            used), and every missing or mis-shaped key of our model.
    """
    converted: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    unknown: list[str] = []
    for key, array in state.items():
        ours = paddle_key_to_ours(key)
        if ours is None or ours not in expected:
            unknown.append(key)
            continue
        if ours in source_of:
            unknown.append(f"{key} (same layer as {source_of[ours]})")
            continue
        source_of[ours] = key
        converted[ours] = torch.from_numpy(np.require(array, np.float32, ["C", "W"]))
    for key, shape in expected.items():
        if key.endswith("num_batches_tracked") and key not in converted:
            converted[key] = torch.zeros(shape, dtype=torch.long)
    found = {k: tuple(int(n) for n in v.shape) for k, v in converted.items()}
    problems = shape_problems(expected, found)
    problems = [
        p.replace("mis-shaped key(s): ", "mis-shaped key(s) (our name): ") for p in problems
    ]
    if unknown:
        shown = ", ".join(unknown[:8]) + (
            f" ... ({len(unknown)} in all)" if len(unknown) > 8 else ""
        )
        problems.insert(0, f"{len(unknown)} key(s) that fit no layer: {shown}")
    if problems:
        raise ValueError(
            f"{name} is not a PaddleSeg MscaleOCRNet (HRNet-W48) checkpoint of this "
            "architecture: " + "; ".join(problems)
        )
    return converted


def expected_shapes(labels: LabelSet, name: str) -> dict[str, tuple[int, ...]]:
    """Returns our ``hrnet48_ocr_mscale`` state dict's ``key -> shape`` for ``labels``
    (from a meta-device skeleton: nothing is allocated)."""
    skeleton = build_checked(ARCH, labels, {}, name, "meta")
    return {k: tuple(int(n) for n in v.shape) for k, v in skeleton.state_dict().items()}


def load_paddle_state(
    state: Mapping[str, np.ndarray],
    name: str,
    device: str | torch.device | None = None,
    *,
    labels: LabelSet | None = None,
    extra: Mapping[str, object] | None = None,
) -> MultiScaleSegmenter:
    """Returns the eval-mode ``hrnet48_ocr_mscale`` model holding a PaddleSeg state dict.

    ``labels`` defaults to the class count's label set (19 Cityscapes, 65 Mapillary Vistas).
    Keys and shapes are checked before the 72 M-parameter model is allocated.
    """
    num_classes = paddle_num_classes(state, name)
    if labels is None:
        labels = label_set_for(num_classes)
    elif labels.num_classes != num_classes:
        raise ValueError(
            f"{name} has {num_classes} classes but label set {labels.name!r} has "
            f"{labels.num_classes}"
        )
    converted = convert_paddle_state(state, expected_shapes(labels, name), name)
    model = build_checked(ARCH, labels, {}, name, "cpu")
    check_state_dict(model, converted, name)
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{name}: could not load its tensors: {exc}") from exc
    model.checkpoint_info = CheckpointInfo(  # type: ignore[attr-defined]
        arch=ARCH,
        hparams=model.hparams(),
        labels=labels,
        extra={"format": "paddleseg", **dict(extra or {})},
    )
    return model.to(device or "cpu").eval()


def load_paddle(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    labels: LabelSet | None = None,
) -> MultiScaleSegmenter:
    """Returns the eval-mode ``hrnet48_ocr_mscale`` model stored in a PaddleSeg ``.pdparams``.

    Raises:
        ValueError: an unsafe pickle (:class:`UnsafePickleError`), a truncated or foreign
            file, a class count that disagrees with ``labels``, or any key of another
            architecture (named).
    """
    path = Path(path)
    return load_paddle_state(read_pdparams(path), path.name, device, labels=labels)


def main(argv: list[str] | None = None) -> int:
    """``python -m hmsa_core.checkpoints.paddle IN.pdparams OUT.safetensors``: converts a file,
    printing how long reading + converting + loading and saving took; returns the exit status."""
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(
        prog="python -m hmsa_core.checkpoints.paddle",
        description="Convert a PaddleSeg MscaleOCRNet .pdparams into an HMSA safetensors file.",
    )
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    from hmsa_core.checkpoints.native import save_native

    try:
        start = time.perf_counter()
        model = load_paddle(args.source)
        loaded = time.perf_counter()
        save_native(model, args.target, extra=dict(model.checkpoint_info.extra))  # type: ignore[attr-defined]
        saved = time.perf_counter()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{args.source.name}: read + converted + loaded in {loaded - start:.2f} s, "
        f"saved {args.target} in {saved - loaded:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
