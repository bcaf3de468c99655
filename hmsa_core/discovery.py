"""Finding the models a user can pick: the bundled ones plus checkpoint files in a folder.

Both front ends call :func:`discover_models`. Reading metadata is cheap: native files only
have their safetensors header read; official ``.pth`` files are loaded safely once and their
description cached by ``(path, mtime, size)``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from hmsa_core.api import BUNDLED_MODELS, bundled_model_path
from hmsa_core.labels import label_set_for, label_set_from_file, sidecar_label_file

MODELS_DIR_ENV = "HMSA_MODELS_DIR"
DEFAULT_MODELS_DIR = "models"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")
_CACHE_LIMIT = 256

ModelKind = Literal["bundled", "official", "native"]


@dataclass(frozen=True)
class ModelEntry:
    """One model a user can load with :func:`hmsa_core.load_model`.

    Attributes:
        name: what to show and pass to ``load_model``: the bundled name, or the file name.
        path: the weights file (resolved, inside the models folder for files found there).
        kind: ``"bundled"``, ``"official"`` (NVIDIA ``.pth`` layout) or ``"native"`` (our
            safetensors format).
        arch: registry architecture name, ``None`` when the file could not be read.
        num_classes: number of classes, ``None`` when unreadable.
        label_set_name: name of the label set (``cityscapes``, ``mapillary`` ...), or ``None``.
        parameter_count: number of parameters (running BN statistics excluded), if known.
        error: why the file cannot be used, or ``None`` when it looks loadable.
    """

    name: str
    path: Path
    kind: ModelKind
    arch: str | None
    num_classes: int | None
    label_set_name: str | None
    parameter_count: int | None
    error: str | None = None


@dataclass(frozen=True)
class _Described:
    arch: str
    num_classes: int
    label_set_name: str
    parameter_count: int | None


_CACHE: dict[tuple[str, int, int, int], _Described | str] = {}
_CACHE_LOCK = threading.Lock()


def _is_stat(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def _describe_native(path: Path) -> _Described:
    from safetensors import safe_open

    from hmsa_core.checkpoints.native import read_native_info

    info = read_native_info(path)
    count = 0
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118  (safe_open is not a mapping)
            if not _is_stat(key):
                shape = handle.get_slice(key).get_shape()
                size = 1
                for dim in shape:
                    size *= int(dim)
                count += size
    return _Described(info.arch, info.labels.num_classes, info.labels.name, count)


def _describe_official(path: Path) -> _Described:
    """Loads the file safely and checks its keys against a meta-device model (no weights)."""
    from hmsa_core.checkpoints.native import check_state_dict
    from hmsa_core.checkpoints.official import read_official_state
    from hmsa_core.models.mscale_ocr import ARCH
    from hmsa_core.models.registry import build

    state, info = read_official_state(path)
    sidecar = sidecar_label_file(path)
    labels = label_set_from_file(sidecar) if sidecar.is_file() else label_set_for(info.num_classes)
    with torch.device("meta"):
        skeleton = build(ARCH, labels=labels)
    check_state_dict(skeleton, state, path.name)
    return _Described(ARCH, info.num_classes, labels.name, info.parameter_count)


def _describe(path: Path, kind: ModelKind) -> _Described | str:
    """Returns the file's description, or an error message; cached by path, mtime and size
    (and the mtime of its label file, when there is one)."""
    stat = path.stat()
    sidecar = sidecar_label_file(path)
    labels_mtime = sidecar.stat().st_mtime_ns if sidecar.is_file() else 0
    key = (str(path), int(stat.st_mtime_ns), int(stat.st_size), int(labels_mtime))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    try:
        described: _Described | str = (
            _describe_official(path) if kind == "official" else _describe_native(path)
        )
    except (ValueError, OSError) as exc:
        described = str(exc) or type(exc).__name__
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = described
    return described


def _entry(name: str, path: Path, kind: ModelKind, described: _Described | str) -> ModelEntry:
    if isinstance(described, str):
        return ModelEntry(name, path, kind, None, None, None, None, error=described)
    return ModelEntry(
        name=name,
        path=path,
        kind=kind,
        arch=described.arch,
        num_classes=described.num_classes,
        label_set_name=described.label_set_name,
        parameter_count=described.parameter_count,
    )


def default_models_dir() -> Path:
    """Returns the models folder: env ``HMSA_MODELS_DIR``, else ``./models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def _folder_files(folder: Path) -> list[tuple[str, Path]]:
    """Returns ``(name, resolved path)`` of checkpoint files directly in ``folder``, by name.

    Entries (or symlinks) resolving outside ``folder`` and anything that is not a regular
    file are skipped.
    """
    try:
        root = folder.resolve(strict=True)
        children = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    found = []
    for child in children:
        if child.suffix.lower() not in CHECKPOINT_SUFFIXES:
            continue
        try:
            target = child.resolve(strict=True)
            if not target.is_relative_to(root) or not target.is_file():
                continue
        except (OSError, RuntimeError):  # broken link, loop, permission
            continue
        found.append((child.name, target))
    return found


def discover_models(models_dir: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Returns every selectable model: bundled ones whose file exists, then the files in
    ``models_dir`` (``.pth``/``.pt`` as official, ``.safetensors`` as native), sorted by name.

    Args:
        models_dir: the folder to scan (not recursively); default :func:`default_models_dir`.
            A missing folder contributes nothing.

    Files that cannot be read are listed with ``error`` set; files that cannot even be
    inspected (permissions) and symlinks leading outside the folder are skipped.
    """
    entries: list[ModelEntry] = []
    for name in BUNDLED_MODELS:
        path = bundled_model_path(name)
        try:
            if path.is_file():
                entries.append(_entry(name, path, "bundled", _describe(path, "native")))
        except OSError:
            continue
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    for name, path in _folder_files(folder):
        kind: ModelKind = "native" if path.suffix.lower() == ".safetensors" else "official"
        try:
            described = _describe(path, kind)
        except OSError:
            continue
        entries.append(_entry(name, path, kind, described))
    return entries
