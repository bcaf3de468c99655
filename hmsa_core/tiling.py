"""Running one scale's pass in overlapping windows, blended back into one map.

A *window* is a rectangle of the pass's input that the model is run on; its *core* is the part
of the image it is responsible for. Cores never overlap; a window is its core grown by the
overlap on every side that is not the image border. Outputs are blended with a raised-cosine
ramp of width ``overlap`` centred on each core edge that faces a neighbour, so every blended
pixel lies at least ``overlap / 2`` inside the window that supplies it. For a model whose
receptive-field radius is at most ``overlap / 2`` and whose strides divide the window
offsets (``align``), the blended pass equals the whole pass up to float rounding. For a model
with global context (HRNet-OCR pools over the whole input) it is an approximation.

Everything here except :func:`run_windows` is a pure function of sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from hmsa_core.limits import InputLimits
from hmsa_core.models.base import ScaleOutput

Box = tuple[int, int, int, int]  # top, bottom, left, right (half-open)


@dataclass(frozen=True)
class Window:
    """One model run of a tiled pass.

    Attributes:
        box: ``(top, bottom, left, right)`` of the input rectangle the model sees.
        core: ``(top, bottom, left, right)`` of the part of the image this window owns.
    """

    box: Box
    core: Box

    @property
    def size(self) -> tuple[int, int]:
        """Returns the ``(h, w)`` of the window's input."""
        return self.box[1] - self.box[0], self.box[3] - self.box[2]

    @property
    def area(self) -> int:
        """Returns the window's input area in pixels."""
        h, w = self.size
        return h * w


def round_up(value: int, multiple: int) -> int:
    """Returns the smallest multiple of ``multiple`` that is at least ``value``."""
    return -(-int(value) // multiple) * multiple


def window_for_core(core: Box, size: tuple[int, int], overlap: int) -> Window:
    """Returns the :class:`Window` whose core is ``core``: grown by ``overlap`` on each side,
    clipped to the ``(H, W)`` image."""
    top, bottom, left, right = core
    h, w = size
    box = (
        max(0, top - overlap),
        min(h, bottom + overlap),
        max(0, left - overlap),
        min(w, right + overlap),
    )
    return Window(box=box, core=core)


def _shifted_axis(lo: int, hi: int, length: int, margin: int, align: int) -> tuple[int, int]:
    """Returns the ``[start, end)`` of a window along one axis for the core ``[lo, hi)``:
    grown by ``margin`` on each side and, where that passes an image edge, shifted back
    inside (keeping its length) when the image is long enough and the shifted start is a
    multiple of ``align``; else clipped."""
    start, end = lo - margin, hi + margin
    if end - start > length:
        return max(0, start), min(length, end)
    if start < 0:
        start, end = 0, end - start
    elif end > length:
        start, end = start - (end - length), length
        if start % align:
            return max(0, lo - margin), length
    return start, end


def kept_window(core: Box, size: tuple[int, int], margin: int, align: int = 32) -> Window:
    """Returns the :class:`Window` of a kept gate core ``(top, bottom, left, right)``: grown by
    ``margin`` (the model's context margin) on every side, shifted back inside the ``(H, W)``
    image at its edges rather than clipped where that keeps the window aligned, so cores of
    one size get windows of one size (and can run as one batch, :func:`run_batched`)."""
    top, bottom, left, right = core
    y0, y1 = _shifted_axis(top, bottom, size[0], margin, align)
    x0, x1 = _shifted_axis(left, right, size[1], margin, align)
    return Window(box=(y0, y1, x0, x1), core=core)


def batch_groups(windows: Sequence[Window], max_pixels: int) -> list[list[Window]]:
    """Returns ``windows`` grouped into batches: windows of one box size together, in their
    order, each batch holding at most ``max_pixels`` input pixels (at least one window)."""
    by_size: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_size.setdefault(window.size, []).append(window)
    batches: list[list[Window]] = []
    for (h, w), group in by_size.items():
        per_batch = max(1, int(max_pixels) // max(1, h * w))
        batches += [group[i : i + per_batch] for i in range(0, len(group), per_batch)]
    return batches


def run_batched(
    forward: Callable[[torch.Tensor], ScaleOutput],
    x: torch.Tensor,
    windows: Sequence[Window],
    max_pixels: int,
    into: ScaleOutput | None = None,
) -> BlendedPass:
    """Returns the :class:`BlendedPass` of running ``forward`` on the windows of ``x``
    ``(B, 3, h, w)`` stacked into few batches (:func:`batch_groups`; windows of one size run
    as one ``(n * B, 3, wh, ww)`` call) and pasting each window's core (cores must not
    overlap; no blending): float32 logits ``(B, C, h, w)``, attention ``(B, 1, h, w)``, aux
    logits; 0 where no core lies, or the maps of ``into`` (float32 ``(B, *, h, w)`` tensors
    this function may write into: the cores are pasted in place, no full-size copy). Exact
    (up to float rounding) for a model whose receptive-field radius the windows' margin
    around each core covers.

    Raises:
        ValueError: ``forward`` returned features.
    """
    size = (int(x.shape[-2]), int(x.shape[-1]))
    batch = int(x.shape[0])
    covered = torch.zeros(size, dtype=torch.bool, device=x.device)
    sums: dict[str, torch.Tensor] = {}
    if into is not None:
        for name in ("logits", "attention", "aux_logits"):
            if getattr(into, name) is not None:
                sums[name] = getattr(into, name)
    for group in batch_groups(windows, max_pixels):
        crops = [x[:, :, w.box[0] : w.box[1], w.box[2] : w.box[3]] for w in group]
        out = forward(torch.cat(crops, 0) if len(crops) > 1 else crops[0])
        if out.features is not None:
            raise ValueError("a model whose merge needs features cannot run in tiles")
        for i, window in enumerate(group):
            top, bottom, left, right = window.core
            oy, ox = top - window.box[0], left - window.box[2]
            h, w = bottom - top, right - left
            covered[top:bottom, left:right] = True
            for name in ("logits", "attention", "aux_logits"):
                value = getattr(out, name)
                if value is None:
                    continue
                if into is not None and name not in sums:
                    continue  # the base has no such map: neither has the result
                if name not in sums:
                    shape = (batch, int(value.shape[1]), *size)
                    sums[name] = torch.zeros(shape, dtype=torch.float32, device=x.device)
                part = value[i * batch : (i + 1) * batch, :, oy : oy + h, ox : ox + w]
                sums[name][:, :, top:bottom, left:right] = part.float()
        del out
    return BlendedPass.from_maps(sums, covered)


def _axis_cores(length: int, core: int) -> list[tuple[int, int]]:
    """Returns the ``[start, end)`` spans of cores of ``core`` pixels covering ``length``."""
    return [(start, min(length, start + core)) for start in range(0, length, core)]


def plan_tiles(
    size: tuple[int, int], max_pixels: int, overlap: int, align: int = 32
) -> tuple[Window, ...]:
    """Returns the windows of a pass over an ``(H, W)`` input whose windows each hold at most
    ``max_pixels`` pixels: one whole-image window when the input fits.

    Core sides are multiples of ``align`` (the model's largest stride) and at least ``overlap``;
    the plan with the fewest windows wins (then the squarest cores).

    Raises:
        ValueError: ``overlap`` not a multiple of ``align``, or a budget too small for any plan.
    """
    h, w = size
    if overlap < 0 or overlap % align:
        raise ValueError(f"tile overlap must be a non-negative multiple of {align}, got {overlap}")
    if h * w <= max_pixels:
        return (Window(box=(0, h, 0, w), core=(0, h, 0, w)),)
    best: tuple[int, float, int, int] | None = None
    for ny in range(1, math.ceil(h / align) + 1):
        core_h = h if ny == 1 else max(round_up(math.ceil(h / ny), align), overlap)
        win_h = min(h, core_h + (2 * overlap if ny > 1 else 0))
        if win_h * min(w, max(align, overlap) + 2 * overlap) > max_pixels and ny > 1:
            continue
        for nx in range(1, math.ceil(w / align) + 1):
            core_w = w if nx == 1 else max(round_up(math.ceil(w / nx), align), overlap)
            win_w = min(w, core_w + (2 * overlap if nx > 1 else 0))
            if win_h * win_w > max_pixels:
                continue
            count = math.ceil(h / core_h) * math.ceil(w / core_w)
            candidate = (count, abs(math.log(core_h / core_w)), core_h, core_w)
            if best is None or candidate[:2] < best[:2]:
                best = candidate
            break  # more columns only adds windows
    if best is None:
        raise ValueError(
            f"HMSA_MAX_TILE_PIXELS={max_pixels:,} is too small for tiles with an overlap of "
            f"{overlap} pixels; raise it to at least {(max(align, overlap) + 2 * overlap) ** 2:,} or lower "
            "HMSA_TILE_OVERLAP"
        )
    _, _, core_h, core_w = best
    return tuple(
        window_for_core((top, bottom, left, right), size, overlap)
        for top, bottom in _axis_cores(h, core_h)
        for left, right in _axis_cores(w, core_w)
    )


def pass_tiles(
    size: tuple[int, int], limits: InputLimits, device_type: str, align: int = 32
) -> tuple[Window, ...] | None:
    """Returns the windows a pass over an ``(H, W)`` input runs in on a ``device_type`` device
    (its budget: :meth:`InputLimits.tile_pixels`), or ``None`` when the input fits and the pass
    runs whole."""
    budget = limits.tile_pixels(device_type)
    if size[0] * size[1] <= budget:
        return None
    return plan_tiles(size, budget, limits.tile_overlap, align)


def _ramp(
    n: int, start: int, core_lo: int, core_hi: int, length: int, overlap: int
) -> torch.Tensor:
    """Returns the ``(n,)`` blend weights along one axis of a window starting at ``start``:
    1 inside the core, a raised-cosine ramp of width ``overlap`` centred on each core edge that
    is not the image border, 0 beyond."""
    pos = torch.arange(n, dtype=torch.float64) + start + 0.5
    weight = torch.ones(n, dtype=torch.float64)
    half = overlap / 2
    if overlap == 0:
        inside = (pos >= core_lo) & (pos < core_hi)
        return inside.to(torch.float32)
    if core_lo > 0:
        t = ((pos - (core_lo - half)) / overlap).clamp(0, 1)
        weight = weight * (0.5 - 0.5 * torch.cos(math.pi * t))
    if core_hi < length:
        t = (((core_hi + half) - pos) / overlap).clamp(0, 1)
        weight = weight * (0.5 - 0.5 * torch.cos(math.pi * t))
    return weight.to(torch.float32)


def blend_weights(window: Window, size: tuple[int, int], overlap: int) -> torch.Tensor:
    """Returns the ``(h, w)`` blend weight of ``window``'s output at each pixel of its box
    (separable raised-cosine ramps, see the module docstring)."""
    top, bottom, left, right = window.box
    ctop, cbottom, cleft, cright = window.core
    wy = _ramp(bottom - top, top, ctop, cbottom, size[0], overlap)
    wx = _ramp(right - left, left, cleft, cright, size[1], overlap)
    return wy[:, None] * wx[None, :]


@dataclass
class BlendedPass:
    """The outputs of a pass run in windows, at the whole input's size.

    Attributes:
        output: the blended :class:`ScaleOutput` (float32); pixels no window covers hold 0.
        covered: ``(h, w)`` bool, True where some window supplied a value.
    """

    output: ScaleOutput
    covered: torch.Tensor

    @classmethod
    def from_maps(cls, maps: dict[str, torch.Tensor], covered: torch.Tensor) -> BlendedPass:
        """Returns the pass holding ``maps`` (``"logits"``, and ``"attention"`` /
        ``"aux_logits"`` when the model has them) and the ``(h, w)`` ``covered`` mask."""
        return cls(
            output=ScaleOutput(
                logits=maps["logits"],
                attention=maps.get("attention"),
                aux_logits=maps.get("aux_logits"),
            ),
            covered=covered,
        )


def run_windows(
    forward: Callable[[torch.Tensor], ScaleOutput],
    x: torch.Tensor,
    windows: Sequence[Window],
    overlap: int,
) -> BlendedPass:
    """Returns the :class:`BlendedPass` of running ``forward`` on each window of ``x``
    ``(B, 3, h, w)`` and blending the outputs (float32 logits ``(B, C, h, w)``, attention
    ``(B, 1, h, w)`` and aux logits). Features (explicit attention) cannot be tiled.

    Raises:
        ValueError: ``forward`` returned features.
    """
    size = (int(x.shape[-2]), int(x.shape[-1]))
    device = x.device
    total = torch.zeros((1, 1, *size), dtype=torch.float32, device=device)
    sums: dict[str, torch.Tensor] = {}
    for window in windows:
        top, bottom, left, right = window.box
        out = forward(x[:, :, top:bottom, left:right])
        if out.features is not None:
            raise ValueError("a model whose merge needs features cannot run in tiles")
        weight = blend_weights(window, size, overlap).to(device)[None, None]
        total[:, :, top:bottom, left:right] += weight
        for name in ("logits", "attention", "aux_logits"):
            value = getattr(out, name)
            if value is None:
                continue
            if name not in sums:
                shape = (int(value.shape[0]), int(value.shape[1]), *size)
                sums[name] = torch.zeros(shape, dtype=torch.float32, device=device)
            sums[name][:, :, top:bottom, left:right].addcmul_(value.float(), weight)
        del out
    covered = total[0, 0] > 0
    safe = torch.where(total > 0, total, torch.ones_like(total))
    for value in sums.values():
        value.div_(safe)
    return BlendedPass.from_maps(sums, covered)
