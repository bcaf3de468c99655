"""Parts of a bilinear resize, bit-identical to the whole (the gated pass's fill, DESIGN 1.8).

``F.interpolate(x, size, mode="bilinear", align_corners=False)`` gives output pixel ``y`` the
source coordinate ``(y + 0.5) * f - 0.5`` with ``f = float32(in) / out`` (clamped at 0), and
blends the two source rows around it (likewise for columns). :func:`resize_box` computes only
the output pixels of a box: it resizes a crop of the source (with a margin of one source pixel
or more) by the same factor ``f`` (``scale_factor=1/f``), from an output origin ``A`` chosen so
that ``A * f`` is a whole source row. That gives every output pixel of the box the same source
rows, the same weights and the same arithmetic as the whole resize, so the same bits, where
the coordinates are computed exactly in float32: :func:`crop_plan` checks that for every
pixel of the box (it holds for the ratios a cascade produces, e.g. ``f = 0.5`` from scale 1 to
2) and answers ``None`` where it does not, and the caller resizes the whole map instead.

The same arithmetic also needs the same kernel: PyTorch's CPU resize takes a vectorised
channels-last kernel (other rounding) when the output's ``h + w`` is at most 128 or the input is
channels-last with more than 3 channels, the generic one otherwise. :func:`exact_on` admits only
maps on the generic kernel (contiguous, on the CPU, a large enough output), and
:func:`crop_plan` grows a box until its crop's output is large enough too.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hmsa_core.tiling import Box

#: Outputs with ``h + w`` at most this take PyTorch's vectorised CPU kernel (other rounding).
SMALL_OUTPUT_SUM = 128

#: How far back (in output pixels) :func:`axis_crop` looks for an origin ``A`` with ``A * f``
#: a whole source row before it gives up.
MAX_ORIGIN_SEARCH = 64


def _exact_coords(f: np.float32, ys: np.ndarray) -> bool:
    """Returns True when ``(y + 0.5) * f - 0.5`` is exact in float32 for every ``y`` of ``ys``
    (then any evaluation order, fused or not, gives the same coordinate)."""
    product = (ys.astype(np.float64) + 0.5) * np.float64(f)
    coords = product - 0.5
    return bool(
        np.all(product.astype(np.float32) == product)
        and np.all(coords.astype(np.float32) == coords)
    )


def axis_crop(in_size: int, out_size: int, start: int, stop: int) -> tuple[int, int, int] | None:
    """Returns ``(origin, src_start, src_stop)`` for output pixels ``[start, stop)`` of a
    resize of one axis from ``in_size`` to ``out_size``: resizing source ``[src_start,
    src_stop)`` by ``out_size / in_size``'s float32 factor gives output ``origin`` onwards, so
    the wanted pixels are ``[start - origin, stop - origin)`` of it; ``None`` when the crop
    would not compute the same bits (see the module docstring)."""
    f = np.float32(in_size) / np.float32(out_size)
    if in_size == out_size or not _exact_coords(f, np.arange(0, out_size)):
        return None
    for origin in range(start, max(-1, start - MAX_ORIGIN_SEARCH), -1):
        src_start = float(origin) * float(f)
        if src_start != int(src_start):
            continue
        # the first wanted pixel must not reach the crop's clamp at 0 (unless the whole does)
        first = (start - origin + 0.5) * float(f) - 0.5
        if origin > 0 and first < 0:
            continue
        last = (stop - 1 + 0.5) * float(f) - 0.5
        src_stop = min(in_size, int(np.floor(max(last, 0.0))) + 2)
        return origin, int(src_start), src_stop
    return None


def exact_on(x: torch.Tensor, size: tuple[int, int]) -> bool:
    """Returns True when resizing ``x`` ``(B, C, h, w)`` to ``size`` runs PyTorch's generic CPU
    kernel, the one :func:`resize_box` reproduces (see the module docstring)."""
    return (
        x.device.type == "cpu"
        and x.dim() == 4
        and x.is_contiguous()
        and not (x.shape[1] > 3 and x.is_contiguous(memory_format=torch.channels_last))
        and size[0] + size[1] > SMALL_OUTPUT_SUM
        and tuple(x.shape[-2:]) != tuple(size)
    )


def grown_box(box: Box, size: tuple[int, int]) -> Box:
    """Returns ``box`` grown (right, left, down, up, within ``size``) until its ``h + w``
    exceeds :data:`SMALL_OUTPUT_SUM` (a crop's output then takes the generic kernel)."""
    top, bottom, left, right = box
    short = SMALL_OUTPUT_SUM + 1 - (bottom - top) - (right - left)
    if short > 0:
        grow = min(short, size[1] - right)
        right, short = right + grow, short - grow
        grow = min(short, left)
        left, short = left - grow, short - grow
        grow = min(short, size[0] - bottom)
        bottom, short = bottom + grow, short - grow
        top -= min(short, top)
    return top, bottom, left, right


def crop_plan(
    in_size: tuple[int, int], out_size: tuple[int, int], box: Box
) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
    """Returns the row and column :func:`axis_crop` of output ``box`` ``(top, bottom, left,
    right)`` for a resize from ``in_size`` ``(h, w)`` to ``out_size``, or ``None`` when either
    axis has none."""
    rows = axis_crop(in_size[0], out_size[0], box[0], box[1])
    cols = axis_crop(in_size[1], out_size[1], box[2], box[3])
    if rows is None or cols is None:
        return None
    return rows, cols


def resize_box(x: torch.Tensor, size: tuple[int, int], box: Box) -> torch.Tensor | None:
    """Returns the pixels ``box`` ``(top, bottom, left, right)`` of ``x`` ``(B, C, h, w)``
    resized bilinearly (``align_corners=False``) to ``size``: ``(B, C, bottom - top, right -
    left)``, the same bits as ``F.interpolate(x, size, mode="bilinear")[..., top:bottom,
    left:right]``, computed from a crop of ``x``; ``None`` where that cannot be guaranteed
    (:func:`exact_on`, :func:`crop_plan`; the caller then resizes the whole map)."""
    if not exact_on(x, size):
        return None
    big = grown_box(box, size)
    plan = crop_plan((int(x.shape[-2]), int(x.shape[-1])), size, big)
    if plan is None:
        return None
    (oy, y0, y1), (ox, x0, x1) = plan
    fy = np.float32(x.shape[-2]) / np.float32(size[0])
    fx = np.float32(x.shape[-1]) / np.float32(size[1])
    out = F.interpolate(
        x[:, :, y0:y1, x0:x1],
        scale_factor=(1.0 / float(fy), 1.0 / float(fx)),
        mode="bilinear",
        align_corners=False,
        recompute_scale_factor=False,
    )
    top, bottom, left, right = box[0] - oy, box[1] - oy, box[2] - ox, box[3] - ox
    if out.shape[-2] < bottom or out.shape[-1] < right:
        return None
    if out.shape[-2] + out.shape[-1] <= SMALL_OUTPUT_SUM:
        return None  # a crop output this small took the other kernel
    return out[:, :, top:bottom, left:right]
