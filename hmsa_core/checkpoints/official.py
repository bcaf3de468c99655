"""NVIDIA's official checkpoint layout (``.pth``) for the ``HRNet_Mscale`` model.

The official training script ``torch.save``s a dict ``{epoch, arch, num_classes, state_dict,
optimizer, mean_iu, command, __metric}`` whose ``state_dict`` keys carry DataParallel's
``module.`` prefix and whose ``mean_iu``/``__metric`` are NumPy float64 scalars. Files are read
with ``torch.load(weights_only=True)``: only tensors, plain containers and the few NumPy names
those scalars need are accepted, so loading one never runs code from the file.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hmsa_core.checkpoints.native import (
    MAX_CLASSES,
    CheckpointInfo,
    build_checked,
    check_state_dict,
)
from hmsa_core.labels import LabelSet, label_set_for
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH

OFFICIAL_ARCH = "ocrnet.HRNet_Mscale"
PREFIX = "module."
CLASSIFIER_KEY = "ocr.cls_head.weight"
#: Bytes of a legacy (non-zip) file scanned by :func:`is_official_checkpoint`.
_SCAN_BYTES = 16 * 1024 * 1024

#: Errors torch.load raises for a file that is not a readable, allowed checkpoint.
_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ImportError,
    UnicodeDecodeError,
    struct.error,
)


@dataclass(frozen=True)
class OfficialFileInfo:
    """What an official checkpoint file says about itself (tensors not inspected).

    Attributes:
        num_classes: the class count (the file's ``num_classes``, which must equal the
            classifier's rows, else the rows), in ``1..MAX_CLASSES``.
        official_arch: the file's ``arch`` string (``""`` for a bare state dict).
        epoch: the training epoch, or ``None``.
        mean_iu: the recorded validation mean IoU, or ``None``.
        command: the recorded training command (``""`` if absent).
        parameter_count: elements in the state dict's floating-point, non-running-stat tensors.
    """

    num_classes: int
    official_arch: str
    epoch: int | None
    mean_iu: float | None
    command: str
    parameter_count: int


def _numpy_safe_globals() -> list:
    """Returns exactly the NumPy globals a pickled ``numpy.float64`` scalar needs.

    The scalar reconstruction function is registered under both its NumPy 1.x name
    (``numpy.core.multiarray.scalar``) and its 2.x name (``numpy._core.multiarray.scalar``), as
    files written with either refer to it by that name.
    """
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    allowed: list = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    float64_dtype = getattr(getattr(np, "dtypes", None), "Float64DType", None)
    if float64_dtype is not None:
        allowed.append(float64_dtype)
    return allowed


def _torch_load(path: Path) -> object:
    """Returns the object in ``path`` loaded with ``weights_only=True``; ``ValueError`` if refused."""
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(
                str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except _LOAD_ERRORS as exc:
        raise ValueError(
            f"{path.name} is not a loadable official checkpoint (truncated, not a PyTorch file, "
            f"or it holds objects other than tensors and plain values): {_load_error_detail(exc)}"
        ) from exc


def _load_error_detail(exc: BaseException) -> str:
    """Returns the informative line of a torch.load error (e.g. the refused global's name)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line.split(" Please use", 1)[0]  # drop torch's advice to allowlist it
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _is_tensor_mapping(obj: object) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _split(obj: object, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Returns ``(state_dict without 'module.', other top-level fields)`` of a loaded file."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        state, meta = obj, {}
    if not _is_tensor_mapping(state):
        raise ValueError(
            f"{name} is not an official checkpoint: expected a dict with a 'state_dict' of "
            "tensors, or a bare state dict"
        )
    stripped: dict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state.items():  # type: ignore[union-attr]
        stripped[key[len(PREFIX) :] if key.startswith(PREFIX) else key] = tensor
    if len(stripped) != len(state):  # type: ignore[arg-type]
        raise ValueError(f"{name} holds the same key with and without the '{PREFIX}' prefix")
    return stripped, meta


def _as_float(value: object) -> float | None:
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    return None


def _classifier_rows(state: Mapping[str, torch.Tensor]) -> int | None:
    """Returns the number of rows (classes) of the OCR classifier, or None without one."""
    classifier = state.get(CLASSIFIER_KEY)
    if classifier is None or classifier.dim() < 1:
        return None
    return int(classifier.shape[0])


def _num_classes(state: Mapping[str, torch.Tensor], meta: Mapping, name: str) -> int:
    """Returns the file's class count: its ``num_classes``, which must equal the classifier's
    rows when both exist, else the rows. ``ValueError`` if neither exists, they disagree, or the
    count is outside ``1..MAX_CLASSES``. Checked before any model is built."""
    recorded = meta.get("num_classes")
    if isinstance(recorded, bool) or not isinstance(recorded, int):
        recorded = None
    rows = _classifier_rows(state)
    if recorded is None and rows is None:
        raise ValueError(
            f"{name} records no num_classes and has no '{CLASSIFIER_KEY}' to infer it from"
        )
    if recorded is not None and rows is not None and recorded != rows:
        shape = tuple(state[CLASSIFIER_KEY].shape)
        raise ValueError(
            f"{name} records num_classes={recorded} but its classifier '{CLASSIFIER_KEY}' has "
            f"{rows} rows (shape {shape})"
        )
    count = recorded if recorded is not None else rows
    if not 1 <= count <= MAX_CLASSES:  # type: ignore[operator]
        raise ValueError(f"{name} declares {count} classes; 1 to {MAX_CLASSES} are supported")
    return int(count)  # type: ignore[arg-type]


def _info(state: Mapping[str, torch.Tensor], meta: Mapping, name: str) -> OfficialFileInfo:
    """Returns the :class:`OfficialFileInfo` of a split file; ``ValueError`` for a missing,
    inconsistent or absurd class count."""
    num_classes = _num_classes(state, meta, name)
    epoch = meta.get("epoch")
    params = sum(
        t.numel()
        for k, t in state.items()
        if t.is_floating_point() and not k.endswith(("running_mean", "running_var"))
    )
    return OfficialFileInfo(
        num_classes=num_classes,
        official_arch=str(meta.get("arch", "")),
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        mean_iu=_as_float(meta.get("mean_iu", meta.get("__metric"))),
        command=str(meta.get("command", "")),
        parameter_count=int(params),
    )


def read_official_state(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], OfficialFileInfo]:
    """Returns the state dict (keys without ``module.``) and :class:`OfficialFileInfo` of a file.

    Zip-format files are memory-mapped, so tensors not touched are not read. Raises
    ``ValueError`` for a file that is not an official checkpoint.
    """
    path = Path(path)
    state, meta = _split(_torch_load(path), path.name)
    return state, _info(state, meta, path.name)


def read_official_info(path: str | os.PathLike) -> OfficialFileInfo:
    """Returns the :class:`OfficialFileInfo` of an official checkpoint (loads the file safely).

    Raises ``ValueError`` for a file that is not an official checkpoint.
    """
    return read_official_state(path)[1]


def load_official(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    *,
    labels: LabelSet | None = None,
) -> MultiScaleSegmenter:
    """Returns the eval-mode ``hrnet48_ocr_mscale`` model stored in an official checkpoint.

    Args:
        path: a ``.pth`` in the official layout (a dict with ``state_dict``), or a bare state
            dict; keys with or without the ``module.`` prefix.
        device: where to put the model (default CPU).
        labels: the label set; default from the class count (19 Cityscapes, 65 "mapillary").

    Raises:
        ValueError: unreadable, truncated or unsafe file, a class count that disagrees with
            the classifier or is absurd (checked before building), or any missing, unexpected
            or mis-shaped key (all named; checked on a meta-device skeleton first).
    """
    path = Path(path)
    state, meta = _split(_torch_load(path), path.name)
    info = _info(state, meta, path.name)
    if labels is None:
        labels = label_set_for(info.num_classes)
    elif labels.num_classes != info.num_classes:
        raise ValueError(
            f"{path.name} has {info.num_classes} classes but label set {labels.name!r} "
            f"has {labels.num_classes}"
        )
    source = path.name + (f" (arch {info.official_arch!r})" if info.official_arch else "")
    # Every key and shape is checked on a meta-device skeleton before 72 M weights are allocated.
    check_state_dict(build_checked(ARCH, labels, {}, path.name, "meta"), state, source)
    model = build_checked(ARCH, labels, {}, path.name, "cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{source}: could not load its tensors: {exc}") from exc
    model.checkpoint_info = CheckpointInfo(  # type: ignore[attr-defined]
        arch=ARCH,
        hparams=model.hparams(),
        labels=labels,
        train_command=info.command,
        metrics={} if info.mean_iu is None else {"miou": info.mean_iu},
        extra={"format": "official", "official_arch": info.official_arch, "epoch": info.epoch},
    )
    return model.to(device or "cpu").eval()


def is_official_checkpoint(path: str | os.PathLike) -> bool:
    """Returns True when ``path`` looks like an official checkpoint, without unpickling it.

    Checks that it is a PyTorch file (zip archive with a ``data.pkl``, or a legacy pickle)
    whose pickle names the OCR classifier key; a True answer does not promise it loads.
    """
    path = Path(path)
    needle = CLASSIFIER_KEY.encode()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return any(needle in archive.read(n) for n in pickles[:1])
        with path.open("rb") as handle:
            head = handle.read(_SCAN_BYTES)
        return head[:1] == b"\x80" and needle in head
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return False


def save_official(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    num_classes: int,
    *,
    mean_iu: float = 0.0,
    epoch: int = 0,
    command: str = "",
    arch: str = OFFICIAL_ARCH,
    optimizer: dict | None = None,
) -> Path:
    """Writes ``state_dict`` in the official layout to ``path``; returns the path.

    Keys get the ``module.`` prefix (unless already there); ``mean_iu`` and ``__metric`` are
    stored as ``numpy.float64`` exactly as the official training code does.
    """
    path = Path(path)
    wrapped: OrderedDict[str, torch.Tensor] = OrderedDict(
        (k if k.startswith(PREFIX) else PREFIX + k, v.detach().cpu()) for k, v in state_dict.items()
    )
    metric = np.float64(mean_iu)
    payload = {
        "epoch": int(epoch),
        "arch": arch,
        "num_classes": int(num_classes),
        "state_dict": wrapped,
        "optimizer": optimizer if optimizer is not None else {"state": {}, "param_groups": []},
        "mean_iu": metric,
        "command": command,
        "__metric": metric,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, str(path))
    return path
