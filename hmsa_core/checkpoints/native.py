"""Our own checkpoint format: one ``.safetensors`` file whose metadata describes the model.

The metadata (string key -> JSON string) holds ``hmsa_format``, ``arch``, ``hparams``,
``labels``, ``train_command`` and ``metrics``; the tensors are the model's ``state_dict``.
safetensors holds only raw tensors, so loading one never runs code.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from hmsa_core.labels import LabelSet, generic_label_set, label_set_from_dict, label_set_to_dict
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.registry import build

FORMAT_VERSION = "1"

#: Most classes a checkpoint may have (class ids are stored in 8-bit masks; 255 is "ignore").
MAX_CLASSES = 255
#: A checkpoint's numeric hyper-parameter may be at most this many times the architecture's
#: default (and at least up to :data:`HPARAM_FLOOR`): generous for real variants, while a
#: hostile value can neither allocate a huge model nor make even its meta-device skeleton slow.
HPARAM_GROWTH = 8
#: The upper bound of a numeric hyper-parameter is never below this.
HPARAM_FLOOR = 16
#: Longest list hyper-parameter accepted (e.g. branch widths, training scales).
HPARAM_MAX_ITEMS = 16
#: Errors a model constructor raises for hyper-parameters it cannot build.
_BUILD_ERRORS = (TypeError, RuntimeError, ValueError, IndexError, KeyError, OverflowError)


@dataclass(frozen=True)
class CheckpointInfo:
    """What a native checkpoint says about its model.

    Attributes:
        arch: registry architecture name.
        hparams: architecture hyper-parameters.
        labels: the label set.
        train_command: the command that produced the weights (empty if unknown).
        metrics: validation metrics recorded at save time (e.g. ``{"miou": 0.71}``).
        extra: any further metadata fields.
    """

    arch: str
    hparams: dict
    labels: LabelSet
    train_command: str = ""
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def save_native(
    model: MultiScaleSegmenter,
    path: str | os.PathLike,
    *,
    train_command: str = "",
    metrics: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Writes ``model`` to ``path`` (``.safetensors``) with its description; returns the path."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "hmsa_format": FORMAT_VERSION,
        "arch": model.arch,
        "hparams": json.dumps(model.hparams()),
        "labels": json.dumps(label_set_to_dict(model.labels)),
        "train_command": train_command,
        "metrics": json.dumps(metrics or {}),
        "extra": json.dumps(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


def read_native_info(path: str | os.PathLike) -> CheckpointInfo:
    """Returns the :class:`CheckpointInfo` in a native checkpoint's header (tensors are not read).

    Raises ``ValueError`` when the file is not a readable HMSA safetensors checkpoint.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    if meta.get("hmsa_format") != FORMAT_VERSION:
        raise ValueError(
            f"{path.name} is a safetensors file but not an HMSA Explorer checkpoint "
            "(no 'hmsa_format' metadata)"
        )
    try:
        hparams = json.loads(meta.get("hparams", "{}"))
        if not isinstance(hparams, dict):
            raise TypeError(f"hparams must be a JSON object, got {type(hparams).__name__}")
        return CheckpointInfo(
            arch=meta["arch"],
            hparams=hparams,
            labels=label_set_from_dict(json.loads(meta["labels"])),
            train_command=meta.get("train_command", ""),
            metrics=json.loads(meta.get("metrics", "{}")),
            extra=json.loads(meta.get("extra", "{}")),
        )
    except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path.name} has malformed HMSA metadata: {exc}") from exc


def shape_problems(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Returns one line per kind of difference between two ``key -> shape`` maps: missing,
    unexpected and mis-shaped keys, each named (at most 8 shown); empty when they agree."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    misshaped = sorted(
        f"{k}: file {tuple(found[k])} vs model {tuple(expected[k])}"
        for k in set(expected) & set(found)
        if tuple(found[k]) != tuple(expected[k])
    )
    problems = []
    for title, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", misshaped),
    ):
        if items:
            shown = ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{len(items)} {title} key(s): {shown}")
    return problems


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Returns ``key -> shape`` of a state dict (works for meta-device tensors too)."""
    return {k: tuple(int(n) for n in v.shape) for k, v in state.items()}


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raises ``ValueError`` naming every missing, unexpected or mis-shaped key of ``state``."""
    problems = shape_problems(_shapes(model.state_dict()), _shapes(state))
    if problems:
        raise ValueError(f"{source} does not match the model: " + "; ".join(problems))


def _check_number(value: object, default: int | float, where: str) -> None:
    """Raises ``ValueError`` unless ``value`` is a number of ``default``'s kind in range.

    Integers must lie in ``[min(1, default), max(HPARAM_FLOOR, HPARAM_GROWTH * default)]``;
    floats must be finite and in ``[0, max(HPARAM_FLOOR, HPARAM_GROWTH * default)]``.
    """
    upper = max(HPARAM_FLOOR, HPARAM_GROWTH * default)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        lower = min(1, default)
        if not lower <= value <= upper:
            raise ValueError(f"{where} = {value} is outside the sane range {lower}..{upper}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value) or not 0 <= value <= upper:
        raise ValueError(f"{where} = {value} is outside the sane range 0..{upper:g}")


def check_hparams(value: object, default: object, where: str = "hparams") -> None:
    """Raises ``ValueError`` naming the field when ``value`` does not have the structure and
    types of ``default`` (an architecture's default :meth:`hparams`) or a number is out of range.

    Dicts may omit fields (the default is used) but not add unknown ones; lists hold 1 to
    :data:`HPARAM_MAX_ITEMS` items, each checked against the default's item at that position
    (or its last).
    """
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a JSON object, got {value!r}")
        unknown = sorted(str(k) for k in set(value) - set(default))
        if unknown:
            raise ValueError(f"{where} has unknown field(s): {', '.join(unknown)}")
        for key, item in value.items():
            check_hparams(item, default[key], f"{where}.{key}")
    elif isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= HPARAM_MAX_ITEMS:
            raise ValueError(f"{where} must be a list of 1 to {HPARAM_MAX_ITEMS} items")
        for i, item in enumerate(value):
            check_hparams(
                item, default[min(i, len(default) - 1)] if default else item, f"{where}[{i}]"
            )
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
    elif isinstance(default, (int, float)):
        _check_number(value, default, where)
    elif isinstance(default, str) and not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {value!r}")


@functools.lru_cache(maxsize=16)
def _default_hparams_json(arch: str) -> str:
    """Returns the JSON of ``arch``'s default hyper-parameters (built on the meta device)."""
    with torch.device("meta"):
        return json.dumps(build(arch, labels=generic_label_set(1)).hparams())


def default_hparams(arch: str) -> dict:
    """Returns a fresh dict of ``arch``'s default hyper-parameters; ``ValueError`` if unknown."""
    return json.loads(_default_hparams_json(arch))


def _check_labels(labels: LabelSet, name: str) -> None:
    """Raises ``ValueError`` when the label set's class count is outside ``1..MAX_CLASSES``."""
    if not 1 <= labels.num_classes <= MAX_CLASSES:
        raise ValueError(
            f"{name} declares {labels.num_classes} classes; 1 to {MAX_CLASSES} are supported"
        )


def build_checked(
    arch: str, labels: LabelSet, hparams: Mapping, name: str, device: str | torch.device
) -> MultiScaleSegmenter:
    """Returns ``build(arch, labels=labels, **hparams)`` on ``device``; any construction error
    (``TypeError``, ``RuntimeError``, ...) becomes a ``ValueError`` naming ``name`` and ``arch``."""
    try:
        with torch.device(device):
            return build(arch, labels=labels, **hparams)
    except _BUILD_ERRORS as exc:
        raise ValueError(
            f"{name}: its hparams do not build a {arch!r} model: {type(exc).__name__}: {exc}"
        ) from exc


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Returns ``key -> shape`` of every tensor in a safetensors file, from its header only."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path.name}: could not read the tensor header: {exc}") from exc


def _skeleton(path: Path, info: CheckpointInfo) -> MultiScaleSegmenter:
    """Returns the meta-device model ``info`` describes, after checking its hparams, class count
    and every tensor shape against the file's header (no weight is allocated or read)."""
    _check_labels(info.labels, path.name)
    try:
        check_hparams(info.hparams, default_hparams(info.arch))
    except ValueError as exc:
        raise ValueError(f"{path.name} cannot be loaded: {exc}") from exc
    skeleton = build_checked(info.arch, info.labels, info.hparams, path.name, "meta")
    problems = shape_problems(_shapes(skeleton.state_dict()), _header_shapes(path))
    if problems:
        raise ValueError(f"{path.name} does not match the model: " + "; ".join(problems))
    return skeleton


def load_native(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> MultiScaleSegmenter:
    """Returns the eval-mode model stored in a native checkpoint, on ``device`` (default CPU).

    The header's hyper-parameters are checked (types, ranges; see :func:`check_hparams`) and
    the model is first built on the meta device, its shapes compared with the file's tensor
    header, so a hostile header can neither crash the constructor nor allocate a huge model.
    Raises ``ValueError`` for a foreign, corrupt or mismatching file, naming the problem.
    """
    path = Path(path)
    info = read_native_info(path)
    _skeleton(path, info)  # hparams and shapes checked before any weight is allocated
    model = build_checked(info.arch, info.labels, info.hparams, path.name, "cpu")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path.name}: could not read tensors: {exc}") from exc
    check_state_dict(model, state, path.name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: could not load its tensors: {exc}") from exc
    model.checkpoint_info = info  # type: ignore[attr-defined]
    return model.to(device or "cpu").eval()
