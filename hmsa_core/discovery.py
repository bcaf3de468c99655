"""Finding the models a user can pick: the bundled ones, the pretrained downloads, and
checkpoint files in a folder.

Both front ends call :func:`discover_models`. Reading metadata is cheap: native files only
have their safetensors header read; official ``.pth`` and PaddleSeg ``.pdparams`` files are
loaded safely once and their description cached by ``(path, mtime, size)``. Pretrained entries
(:data:`hmsa_core.pretrained.PRETRAINED`) are described from their table row, downloaded or not.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from hmsa_core.api import BUNDLED_MODELS, bundled_model_path
from hmsa_core.labels import label_set_for, label_set_from_file, sidecar_label_file
from hmsa_core.pretrained import models_dir

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".pdparams")
_CACHE_LIMIT = 256

ModelKind = Literal["bundled", "official", "native", "paddle", "pretrained"]


@dataclass(frozen=True)
class ModelEntry:
    """One model a user can load with :func:`hmsa_core.load_model`.

    Attributes:
        name: what to show and pass to ``load_model``: the bundled name, or the file name.
        path: the weights file (resolved, inside the models folder for files found there).
        kind: ``"bundled"``, ``"official"`` (NVIDIA ``.pth`` layout), ``"native"`` (our
            safetensors format), ``"paddle"`` (a PaddleSeg ``.pdparams`` file) or
            ``"pretrained"`` (a named download, see :mod:`hmsa_core.pretrained`).
        arch: registry architecture name, ``None`` when the file could not be read.
        num_classes: number of classes, ``None`` when unreadable.
        label_set_name: name of the label set (``cityscapes``, ``mapillary`` ...), or ``None``.
        parameter_count: number of parameters (running BN statistics excluded), if known.
        error: why the file cannot be used, or ``None`` when it looks loadable.
        downloaded: for ``"pretrained"``: whether it loads without a download (always True
            for the other kinds).
        download_bytes: for ``"pretrained"``: about how many bytes a download takes.
        summary: for ``"pretrained"``: the menu line with what a download costs, e.g.
            ``"cityscapes: HRNet-W48 + OCR + HMSA, 86.9 mIoU Cityscapes val, about 290 MB,
            not downloaded yet"``; ``None`` for the other kinds.
    """

    name: str
    path: Path
    kind: ModelKind
    arch: str | None
    num_classes: int | None
    label_set_name: str | None
    parameter_count: int | None
    error: str | None = None
    downloaded: bool = True
    download_bytes: int | None = None
    summary: str | None = None


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


def _describe_paddle(path: Path) -> _Described:
    """Reads the file with the restricted unpickler and converts its keys for a meta-device
    skeleton (no model weights are allocated)."""
    from hmsa_core.checkpoints.paddle import (
        convert_paddle_state,
        expected_shapes,
        paddle_num_classes,
        read_pdparams,
    )
    from hmsa_core.models.mscale_ocr import ARCH

    state = read_pdparams(path)
    num_classes = paddle_num_classes(state, path.name)
    sidecar = sidecar_label_file(path)
    labels = label_set_from_file(sidecar) if sidecar.is_file() else label_set_for(num_classes)
    if labels.num_classes != num_classes:
        raise ValueError(
            f"{path.name} has {num_classes} classes but its label file has {labels.num_classes}"
        )
    convert_paddle_state(state, expected_shapes(labels, path.name), path.name)
    count = sum(a.size for k, a in state.items() if not k.endswith(("._mean", "._variance")))
    return _Described(ARCH, num_classes, labels.name, int(count))


_DESCRIBERS = {
    "official": _describe_official,
    "paddle": _describe_paddle,
    "native": _describe_native,
}


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
        described: _Described | str = _DESCRIBERS[kind](path)
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
    return models_dir()


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


@functools.lru_cache(maxsize=8)
def _pretrained_parameters(num_classes: int) -> int:
    """Returns the parameter count of ``hrnet48_ocr_mscale`` with ``num_classes`` (meta device)."""
    from hmsa_core.labels import generic_label_set
    from hmsa_core.models.mscale_ocr import ARCH
    from hmsa_core.models.registry import build

    with torch.device("meta"):
        return build(ARCH, labels=generic_label_set(num_classes)).parameter_count()


def pretrained_entries(models_dir: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Returns one ``"pretrained"`` :class:`ModelEntry` per row of
    :data:`hmsa_core.pretrained.PRETRAINED`, saying whether it is downloaded (a file of that
    name in ``models_dir`` or the converted copy in the cache) and what a download costs."""
    from hmsa_core.models.mscale_ocr import ARCH
    from hmsa_core.pretrained import PRETRAINED, cached_file, local_file, menu_text

    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    entries = []
    for entry in PRETRAINED.values():
        placed = local_file(entry, folder)
        path = placed if placed is not None else cached_file(entry)
        downloaded = path.is_file()
        entries.append(
            ModelEntry(
                name=entry.name,
                path=path,
                kind="pretrained",
                arch=ARCH,
                num_classes=entry.num_classes,
                label_set_name=entry.labels.name,
                parameter_count=_pretrained_parameters(entry.num_classes),
                downloaded=downloaded,
                download_bytes=entry.approx_bytes,
                summary=menu_text(entry, downloaded),
            )
        )
    return entries


def discover_models(
    models_dir: str | os.PathLike | None = None, *, include_pretrained: bool = True
) -> list[ModelEntry]:
    """Returns every selectable model: bundled ones whose file exists, the pretrained entries
    (downloaded or not), then the files in ``models_dir`` (``.pth``/``.pt`` as official,
    ``.safetensors`` as native, ``.pdparams`` as PaddleSeg), sorted by name.

    Args:
        models_dir: the folder to scan (not recursively); default :func:`default_models_dir`.
            A missing folder contributes nothing.
        include_pretrained: list the pretrained entries (see :func:`pretrained_entries`).

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
    if include_pretrained:
        entries.extend(pretrained_entries(models_dir))
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    suffix_kinds: dict[str, ModelKind] = {".safetensors": "native", ".pdparams": "paddle"}
    for name, path in _folder_files(folder):
        kind = suffix_kinds.get(path.suffix.lower(), "official")
        try:
            described = _describe(path, kind)
        except OSError:
            continue
        entries.append(_entry(name, path, kind, described))
    return entries
