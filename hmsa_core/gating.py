"""Attention-gated cascades (DESIGN 1.5): skip the parts of a high scale that cannot matter.

Scales run in ascending order. Lower scales have the last word in the hierarchical merge, so
at a pixel the scales from ``s_k`` up together weigh at most the remaining weight
``R_{k-1} = prod_{j<k} (1 - a_j)``. Before ``s_k`` runs, :func:`remaining_envelope` computes
an upper bound of ``R_{k-1}`` at ``s_k``'s resolution that also covers every bilinear resize
the merge does between the levels (each ``1 - a_j`` is max-pooled over the resize footprint
before the product). ``s_k`` runs only on the tiles where that bound exceeds ``tau``; on the
other tiles its logits are filled with the merge of the lower scales resized to its size
(:func:`fill_output`) and its attention with 1, which cuts off every higher scale there.

**Bound.** Let ``G`` be the number of gated scales that skipped something and ``L`` the range
(max - min) of all per-scale logits involved. Then every merged logit moves by at most
``tau * G * L`` (:func:`gate_error_bound`). Proof sketch: swap the scales' true outputs for the
gated ones one scale at a time, from the lowest gated scale up. Each swap changes the merge
only through pixels of skipped tiles, where the value entering the merge moves from a convex
combination of logits to another (by at most ``L``), and it reaches the output through
bilinear resizes (convex) and products of ``1 - a_j`` that the envelope bounds by ``tau``.
``tau = 0`` gates nothing: the cascade is exactly the ungated one.

Every function here is pure.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from hmsa_core.merge import hierarchical_logits
from hmsa_core.models.base import ScaleOutput, resize
from hmsa_core.tiling import Box


def footprint_radius(num_scales: int) -> int:
    """Returns the max-pool radius, in pixels of a lower scale, that covers how far a value can
    travel through the merge's resizes in a cascade of ``num_scales`` (one pixel per resize,
    plus slack for the floor of scaled sizes)."""
    return int(num_scales) + 2


def remaining_envelope(
    lower_attention: Mapping[float, torch.Tensor], size: tuple[int, int], num_scales: int
) -> torch.Tensor:
    """Returns ``(B, 1, h, w)``: an upper bound, at ``size``, of the weight the merge can give
    to the scale about to run and every scale above it.

    Args:
        lower_attention: scale -> ``(B, 1, h_j, w_j)`` attention of every lower scale (as
            gated: 1 where that scale was skipped).
        size: ``(h, w)`` of the scale about to run.
        num_scales: scales in the whole cascade (sets the resize footprint).
    """
    radius = footprint_radius(num_scales)
    envelope: torch.Tensor | None = None
    for scale in sorted(lower_attention):
        rest = (1 - lower_attention[scale]).clamp(0, 1)
        pooled = F.max_pool2d(rest, kernel_size=2 * radius + 1, stride=1, padding=radius)
        factor = resize(pooled, size)
        envelope = factor if envelope is None else envelope * factor
    if envelope is None:
        raise ValueError("the lowest scale of a cascade is never gated: give lower scales")
    return envelope


def needed_tiles(envelope: torch.Tensor, tile: int, tau: float) -> torch.Tensor:
    """Returns ``(ny, nx)`` bool: True for each ``tile`` x ``tile`` tile of the ``(B, 1, h, w)``
    envelope whose maximum (over the tile and the batch) exceeds ``tau``."""
    pooled = F.max_pool2d(
        envelope.amax(0, keepdim=True), kernel_size=tile, stride=tile, ceil_mode=True
    )
    return pooled[0, 0] > tau


def tile_rectangles(needed: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Returns rectangles ``(row0, row1, col0, col1)`` (half-open, in tiles) that exactly cover
    the True tiles of ``needed`` ``(ny, nx)``: runs of each row, merged down while the next
    row has the same run."""
    rows = needed.cpu().tolist()
    open_runs: dict[tuple[int, int], int] = {}  # (col0, col1) -> row0
    rects: list[tuple[int, int, int, int]] = []
    for r, row in enumerate([*rows, [False] * (len(rows[0]) if rows else 0)]):
        runs: set[tuple[int, int]] = set()
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                runs.add((start, c))
            else:
                c += 1
        for span in [s for s in open_runs if s not in runs]:
            rects.append((open_runs.pop(span), r, *span))
        for span in runs:
            open_runs.setdefault(span, r)
    return sorted(rects)


def rectangle_cores(
    rects: list[tuple[int, int, int, int]], tile: int, size: tuple[int, int]
) -> list[Box]:
    """Returns the pixel cores ``(top, bottom, left, right)`` of tile rectangles, clipped to ``size``."""
    h, w = size
    return [
        (r0 * tile, min(h, r1 * tile), c0 * tile, min(w, c1 * tile)) for r0, r1, c0, c1 in rects
    ]


def fill_output(lower: Mapping[float, ScaleOutput], size: tuple[int, int]) -> ScaleOutput:
    """Returns the :class:`ScaleOutput` a skipped region of the next scale takes, at ``size``:
    logits (and aux logits when every lower scale has them) = the hierarchical merge of the
    lower scales resized to ``size``; attention = 1 (the merge then ignores every higher
    scale there).

    Args:
        lower: scale -> batched output of every lower scale (as gated).
        size: ``(h, w)`` of the scale being filled.
    """
    logits = {s: o.logits for s, o in lower.items()}
    attention = {s: o.attention for s, o in lower.items()}
    merged = resize(hierarchical_logits(logits, attention), size)
    aux = None
    if all(o.aux_logits is not None for o in lower.values()):
        aux_maps = {s: o.aux_logits for s, o in lower.items()}
        aux = resize(hierarchical_logits(aux_maps, attention), size)  # type: ignore[arg-type]
    batch = int(merged.shape[0])
    ones = torch.ones((batch, 1, *size), dtype=merged.dtype, device=merged.device)
    return ScaleOutput(logits=merged, attention=ones, aux_logits=aux)


def combine(computed: ScaleOutput, covered: torch.Tensor, fill: ScaleOutput) -> ScaleOutput:
    """Returns ``computed`` where ``covered`` ``(h, w)`` is True and ``fill`` elsewhere
    (logits, attention and aux logits; aux only when both have it)."""
    mask = covered[None, None]

    def pick(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None or b is None:
            return None
        return torch.where(mask, a, b.to(a.dtype))

    return ScaleOutput(
        logits=pick(computed.logits, fill.logits),  # type: ignore[arg-type]
        attention=pick(computed.attention, fill.attention),
        aux_logits=pick(computed.aux_logits, fill.aux_logits),
    )


def covered_mask(needed: torch.Tensor, tile: int, size: tuple[int, int]) -> torch.Tensor:
    """Returns the ``(h, w)`` bool mask of the pixels inside the True tiles of ``needed``."""
    h, w = size
    grid = needed.repeat_interleave(tile, 0).repeat_interleave(tile, 1)
    return grid[:h, :w].clone()


def gate_error_bound(
    per_scale_logits: Mapping[float, torch.Tensor], tau: float, gated: int
) -> float:
    """Returns the largest amount any merged logit can move under gating: ``tau * gated * L``,
    with ``L`` the range (max - min) of every logit in ``per_scale_logits`` (see the module
    docstring) and ``gated`` the number of scales that skipped tiles."""
    values = [t for t in per_scale_logits.values()]
    high = max(float(t.max()) for t in values)
    low = min(float(t.min()) for t in values)
    return float(tau) * int(gated) * (high - low)


def gate_cascade(
    per_scale: Mapping[float, ScaleOutput], tau: float, tile: int
) -> tuple[dict[float, ScaleOutput], dict[float, torch.Tensor]]:
    """Returns ``(gated, covered)``: what a gated run yields from outputs already computed in
    full, when the tiles it computes are exact; ``covered[s]`` is the ``(h, w)`` bool mask of
    the tiles scale ``s`` computed (all True for the lowest scale). Ascending scale order."""
    scales = sorted(per_scale)
    gated: dict[float, ScaleOutput] = {}
    covered: dict[float, torch.Tensor] = {}
    for index, scale in enumerate(scales):
        out = per_scale[scale]
        size = (int(out.logits.shape[-2]), int(out.logits.shape[-1]))
        if index == 0 or tau <= 0:
            gated[scale] = out
            covered[scale] = torch.ones(size, dtype=torch.bool)
            continue
        lower = {s: gated[s] for s in scales[:index]}
        envelope = remaining_envelope(
            {s: o.attention for s, o in lower.items()},  # type: ignore[misc]
            size,
            len(scales),
        )
        mask = covered_mask(needed_tiles(envelope, tile, tau), tile, size)
        gated[scale] = combine(out, mask, fill_output(lower, size))
        covered[scale] = mask
    return gated, covered
