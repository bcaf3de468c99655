"""Deterministic "recipe" weights for the official HMSA model, from key names and shapes only.

This regenerates the weights the golden fixtures (``tests/fixtures/nvidia_mscale_golden.npz``)
were produced with: every tensor is drawn from a CPU generator seeded with the CRC-32 of its
key name (without ``module.``), by the first matching rule of the fixtures README.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections import OrderedDict
from pathlib import Path

import torch

OFFICIAL_PREFIX = "module."
DEFAULT_GAIN = 0.9


def recipe_tensor(
    name: str, shape: list[int] | tuple[int, ...], gain: float = DEFAULT_GAIN
) -> torch.Tensor:
    """Returns the recipe tensor of state-dict key ``name`` (no ``module.`` prefix) of ``shape``.

    float32 for every entry, except an int64 scalar 0 for ``num_batches_tracked``.
    """
    shape = [int(s) for s in shape]
    if name.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.long)
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode("utf-8")))
    if name.endswith("running_var"):
        return 1 + 0.2 * torch.rand(shape, generator=generator)
    if name.endswith("running_mean"):
        return 0.1 * torch.randn(shape, generator=generator)
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return torch.randn(shape, generator=generator) * (gain / math.sqrt(fan_in))
    if name.endswith(".weight"):
        return 1 + 0.1 * torch.randn(shape, generator=generator)
    if name.endswith(".bias"):
        return 0.1 * torch.randn(shape, generator=generator)
    raise ValueError(f"no recipe rule matches key {name!r} of shape {shape}")


def read_manifest(path: str | os.PathLike) -> list[tuple[str, list[int]]]:
    """Returns the manifest's ``(key, shape)`` pairs in state-dict order (keys as stored)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return [(str(key), [int(s) for s in shape]) for key, shape in data["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is not a state-dict manifest: {exc}") from exc


def strip_prefix(key: str, prefix: str = OFFICIAL_PREFIX) -> str:
    """Returns ``key`` without a leading ``prefix``."""
    return key[len(prefix) :] if key.startswith(prefix) else key


def recipe_state_dict(
    keys: list[tuple[str, list[int]]], gain: float = DEFAULT_GAIN
) -> OrderedDict[str, torch.Tensor]:
    """Returns the recipe state dict, keyed *without* ``module.``, in the order of ``keys``."""
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in keys:
        name = strip_prefix(key)
        state[name] = recipe_tensor(name, shape, gain)
    return state


def state_dict_sha256(state: OrderedDict[str, torch.Tensor] | dict[str, torch.Tensor]) -> str:
    """Returns the SHA-256 over every tensor's raw little-endian bytes, in the dict's order."""
    import hashlib

    digest = hashlib.sha256()
    for tensor in state.values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
