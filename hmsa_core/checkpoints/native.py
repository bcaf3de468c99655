"""Our own checkpoint format: one ``.safetensors`` file whose metadata describes the model.

The metadata (string key -> JSON string) holds ``hmsa_format``, ``arch``, ``hparams``,
``labels``, ``train_command`` and ``metrics``; the tensors are the model's ``state_dict``.
safetensors holds only raw tensors, so loading one never runs code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from hmsa_core.labels import LabelSet, label_set_from_dict, label_set_to_dict
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.registry import build

FORMAT_VERSION = "1"


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
        return CheckpointInfo(
            arch=meta["arch"],
            hparams=json.loads(meta.get("hparams", "{}")),
            labels=label_set_from_dict(json.loads(meta["labels"])),
            train_command=meta.get("train_command", ""),
            metrics=json.loads(meta.get("metrics", "{}")),
            extra=json.loads(meta.get("extra", "{}")),
        )
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} has malformed HMSA metadata: {exc}") from exc


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raises ``ValueError`` naming every missing, unexpected or mis-shaped key of ``state``."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
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
    if problems:
        raise ValueError(f"{source} does not match the model: " + "; ".join(problems))


def load_native(
    path: str | os.PathLike, device: str | torch.device | None = None
) -> MultiScaleSegmenter:
    """Returns the eval-mode model stored in a native checkpoint, on ``device`` (default CPU).

    Raises ``ValueError`` for a foreign, corrupt or mismatching file, naming the problem.
    """
    path = Path(path)
    info = read_native_info(path)
    model = build(info.arch, labels=info.labels, **info.hparams)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path.name}: could not read tensors: {exc}") from exc
    check_state_dict(model, state, path.name)
    model.load_state_dict(state, strict=True)
    model.checkpoint_info = info  # type: ignore[attr-defined]
    return model.to(device or "cpu").eval()
