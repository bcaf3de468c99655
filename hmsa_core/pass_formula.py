"""A model's pass cost as an exact formula of its input size, from one traced count.

Counting a pass on the meta device costs about 0.45 s for the official model, whatever the
size, so a first call on a new image size used to spend seconds estimating. Here one meta
pass at a reference size records, for every FLOP-counting op and every allocation, which
*level* of the network it works at: the input itself, or a size reached from it by a chain
of convolutions (each ``n -> (n + 2p - d(k - 1) - 1) // s + 1`` per axis). A convolution's
FLOPs are a constant times its output area, a matrix product's a constant times the one
operand dimension that is a level's flattened area, anything else a constant; the same holds
for the bytes of every tensor. At a new size the level sizes follow from the chains, so the
pass's FLOPs are one dot product and its peak live bytes the maximum of one small matrix
product: microseconds instead of a meta pass, and exact (``tests/test_pass_formula.py``
checks it against fresh counts at odd sizes).

The formula assumes what every model here does: the same ops run at every input size (no
branch on the size). When a model does something the recorder cannot place (a size change by an op it does not
know, a product of two spatial dimensions, two different levels of one size), :func:`trace`
returns ``None`` and the caller counts each size afresh.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakIdKeyDictionary

#: The 1.0 size the formula is traced at: odd, so that no two levels share a size by chance.
REFERENCE_SIZE = (331, 463)

#: One axis's chain of size changes: ``(kernel, stride, padding, dilation)`` per convolution.
Chain = tuple[tuple[int, int, int, int], ...]
#: A level: the chains of the height and of the width from the input.
Level = tuple[Chain, Chain]

_CONV = {torch.ops.aten.convolution.default, torch.ops.aten._convolution.default}
_PROBE = np.arange(1, 8193, dtype=np.int64)


def axis_size(n: int | np.ndarray, chain: Chain) -> int | np.ndarray:
    """Returns the size an axis of ``n`` pixels has after ``chain`` (exact integer arithmetic)."""
    for k, s, p, d in chain:
        n = (n + 2 * p - d * (k - 1) - 1) // s + 1
    return n


def level_size(level: Level, size: tuple[int, int]) -> tuple[int, int]:
    """Returns the ``(h, w)`` of ``level`` for an input of ``size``."""
    return int(axis_size(size[0], level[0])), int(axis_size(size[1], level[1]))


@dataclass(frozen=True)
class PassFormula:
    """FLOPs and peak live bytes of one pass as functions of its ``(h, w)`` input size.

    Attributes:
        levels: the network's levels (index 0 is the input itself).
        flops: ``(L + 1,)`` FLOPs per pixel of each level's area, and a constant last.
        live: ``(T, L + 1)`` live bytes after each allocation, per level area and constant.
    """

    levels: tuple[Level, ...]
    flops: np.ndarray
    live: np.ndarray

    def _areas(self, size: tuple[int, int]) -> np.ndarray:
        sizes = [level_size(level, size) for level in self.levels]
        return np.array([h * w for h, w in sizes] + [1], dtype=np.float64)

    def count(self, size: tuple[int, int]) -> tuple[int, int]:
        """Returns ``(flops, peak activation bytes)`` of one batch-1 pass at ``size``."""
        areas = self._areas(size)
        flops = round(float(self.flops @ areas))
        peak = round(float((self.live @ areas).max(initial=0.0)))
        return flops, peak


class _Unplaceable(Exception):
    """The model did something the recorder cannot express as a formula."""


def _normalise(chain: Chain) -> Chain:
    """Returns ``chain`` without the steps that keep every size (stride 1, size-keeping pad)."""
    return tuple(
        step for step in chain if not (step[1] == 1 and 2 * step[2] == step[3] * (step[0] - 1))
    )


def _pair(value: object) -> tuple[int, int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]  # type: ignore[arg-type]
    return (int(values[0]), int(values[-1]))


class _Recorder(TorchDispatchMode):
    """Records levels, per-level FLOP coefficients and the live-bytes history of one pass."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self.size = (int(image.shape[-2]), int(image.shape[-1]))
        self.levels: list[Level] = [((), ())]
        self.level_of = WeakIdKeyDictionary()
        self.level_of[image] = 0
        self.flops: dict[int, float] = {}
        self.live = np.zeros(1, dtype=np.float64)
        self.history: list[np.ndarray] = []

    def _vector(self) -> np.ndarray:
        return np.zeros(len(self.levels) + 1, dtype=np.float64)

    def _add_level(self, level: Level) -> int:
        level = (_normalise(level[0]), _normalise(level[1]))
        if level in self.levels:
            return self.levels.index(level)
        self.levels.append(level)
        return len(self.levels) - 1

    def _match_size(self, hw: tuple[int, int]) -> int | None:
        """Returns the level of reference size ``hw`` (None when none has it)."""
        found = [i for i, lv in enumerate(self.levels) if level_size(lv, self.size) == hw]
        if not found:
            return None
        first = self.levels[found[0]]
        for i in found[1:]:
            other = self.levels[i]
            same = all(
                np.array_equal(axis_size(_PROBE, first[a]), axis_size(_PROBE, other[a]))
                for a in (0, 1)
            )
            if not same:
                raise _Unplaceable(f"two levels share the size {hw}")
        return found[0]

    def _area_level(self, dims: list[int]) -> int | None:
        """Returns the level whose area is one of ``dims`` (None when none is)."""
        areas = {
            i: h * w for i, lv in enumerate(self.levels) for h, w in [level_size(lv, self.size)]
        }
        hits = [(i, d) for d in dims for i, a in areas.items() if a == d and a > 1]
        if len({d for _, d in hits}) > 1 or (
            len({i for i, _ in hits}) > 1 and not self._same(hits)
        ):
            raise _Unplaceable(f"an op multiplies two spatial extents: {dims}")
        return hits[0][0] if hits else None

    def _same(self, hits: list[tuple[int, int]]) -> bool:
        levels = [self.levels[i] for i, _ in hits]
        probe = [(axis_size(_PROBE, lv[0]) * axis_size(_PROBE, lv[1])).tobytes() for lv in levels]
        return len(set(probe)) == 1

    def _place(self, func, args, kwargs, out: torch.Tensor, inputs: list) -> int | None:  # type: ignore[no-untyped-def]
        """Returns the level of the 4-d ``out`` of ``func`` (None: not spatial)."""
        if func in _CONV:
            source = self.level_of.get(args[0])
            if source is None:
                return None
            stride, pad, dil = _pair(args[3]), _pair(args[4]), _pair(args[5])
            if args[6]:
                raise _Unplaceable("transposed convolution")
            kh, kw = int(args[1].shape[-2]), int(args[1].shape[-1])
            h_chain, w_chain = self.levels[source]
            return self._add_level(
                (
                    (*h_chain, (kh, stride[0], pad[0], dil[0])),
                    (*w_chain, (kw, stride[1], pad[1], dil[1])),
                )
            )
        hw = (int(out.shape[-2]), int(out.shape[-1]))
        level = self._match_size(hw)
        spatial_input = any(self.level_of.get(t) is not None for t in inputs)
        if (
            level is None
            and spatial_input
            and func.name().split("::")[-1].split(".")[0]
            not in (
                "view",
                "_unsafe_view",
                "reshape",
                "permute",
                "unsqueeze",
                "squeeze",
                "transpose",
                "expand",
                "clone",
            )
        ):
            raise _Unplaceable(f"{func} changes a spatial size in a way the recorder cannot follow")
        return level

    def _bytes_vector(self, t: torch.Tensor) -> np.ndarray:
        vector = self._vector()
        nbytes = float(t.untyped_storage().nbytes())
        level = self.level_of.get(t)
        if level is None:
            level = self._area_level([int(d) for d in t.shape])
        if level is None:
            vector[-1] = nbytes
        else:
            h, w = level_size(self.levels[level], self.size)
            vector[level] = nbytes / (h * w)
        return vector

    def _grow(self, vector: np.ndarray) -> np.ndarray:
        if len(vector) < len(self.levels) + 1:
            wide = self._vector()
            wide[: len(vector) - 1] = vector[:-1]
            wide[-1] = vector[-1]
            return wide
        return vector

    def _release(self, vector: np.ndarray) -> None:
        self.live = self._grow(self.live)
        self.live[: len(vector) - 1] -= vector[:-1]
        self.live[-1] -= vector[-1]

    def _count(self, func, args, kwargs, out) -> None:  # type: ignore[no-untyped-def]
        packet = func._overloadpacket
        if packet not in flop_registry:
            return
        flops = float(flop_registry[packet](*args, **(kwargs or {}), out_val=out))
        if func in _CONV:
            level = self.level_of.get(out)
        else:
            dims = [
                int(d)
                for t in tree_flatten(args)[0]
                if isinstance(t, torch.Tensor)
                for d in t.shape
            ]
            level = self._area_level(dims)
        if level is None:
            self.flops[-1] = self.flops.get(-1, 0.0) + flops
            return
        h, w = level_size(self.levels[level], self.size)
        self.flops[level] = self.flops.get(level, 0.0) + flops / (h * w)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        input_ids = {id(t) for t in inputs}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            if t.dim() == 4:
                level = self._place(func, args, kwargs, t, inputs)
                if level is not None:
                    self.level_of[t] = level
            if id(t) in input_ids or t._is_view():
                continue
            vector = self._bytes_vector(t)
            self.live = self._grow(self.live)
            self.live = self.live + self._grow(vector)
            self.history.append(self.live.copy())
            weakref.finalize(t, self._release, vector)
        self._count(func, args, kwargs, out)
        return out

    def formula(self) -> PassFormula:
        width = len(self.levels) + 1
        flops = np.zeros(width, dtype=np.float64)
        for level, value in self.flops.items():
            flops[level] = value
        live = np.zeros((max(1, len(self.history)), width), dtype=np.float64)
        for row, vector in enumerate(self.history):
            live[row, : len(vector) - 1] = vector[:-1]
            live[row, -1] = vector[-1]
        return PassFormula(tuple(self.levels), flops, live)


def trace(replica: torch.nn.Module, size: tuple[int, int] = REFERENCE_SIZE) -> PassFormula | None:
    """Returns the :class:`PassFormula` of the meta replica ``replica`` (see
    :func:`hmsa_core.counting.estimate_pass`) from one batch-1 meta pass at ``size``, or ``None``
    when the model does something the formula cannot express (then count each size)."""
    image = torch.empty((1, 3, *size), device="meta")
    recorder = _Recorder(image)
    try:
        with torch.no_grad(), recorder:
            replica(image)
    except (_Unplaceable, NotImplementedError, RuntimeError, TypeError, ValueError):
        return None
    return recorder.formula()
