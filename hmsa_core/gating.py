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

**Criteria** (DESIGN 1.8, :data:`GATE_CRITERIA`). ``"bound"`` is the test above (exact up to
the proven bound). Two approximate criteria trade that guarantee for skips on trained models,
whose attention rarely saturates over a whole tile:

- ``"attention"``: skip a tile where the weight the lower scales leave to it,
  ``R_{k-1} = prod_{j<k} (1 - a_j)`` (each factor resized to the scale's size, no max-pool),
  is at most ``tau`` on all but :data:`GATE_OUTLIER_SHARE` of the tile's pixels.
- ``"confidence"``: skip a tile where the merge of the lower scales is confident, its top
  softmax probability at least ``1 - tau``, on all but :data:`GATE_OUTLIER_SHARE` of the tile's
  pixels (the ADP-C idea; the confidence is computed at the lower merge's own resolution and
  resized).

Both fill skipped tiles as ``"bound"`` does; neither has an error bound (judge them on a
dataset: mIoU against FLOPs and seconds). With a batch, a tile is skipped only when every
image of the batch passes the test.

Every function here is pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from hmsa_core.exact_resize import resize_box
from hmsa_core.merge import hierarchical_logits
from hmsa_core.models.base import ScaleOutput, resize
from hmsa_core.tiling import Box

#: Gate criteria (DESIGN 1.8): ``"bound"`` (exact up to :func:`gate_error_bound`), then the
#: approximate ``"attention"`` and ``"confidence"`` (see the module docstring).
GATE_CRITERIA = ("bound", "attention", "confidence")
#: The criteria with a proven error bound; the others are approximate.
EXACT_CRITERIA = ("bound",)
#: Share of a tile's pixels that may fail an approximate criterion's test while the tile is
#: still skipped (5%: a few boundary or outlier pixels do not keep a whole tile).
GATE_OUTLIER_SHARE = 0.05


def is_approximate(criterion: str) -> bool:
    """Returns True when gate ``criterion`` has no proven error bound (``"attention"``,
    ``"confidence"``); ``ValueError`` for an unknown name."""
    if criterion not in GATE_CRITERIA:
        raise ValueError(f"gate_by must be one of {', '.join(GATE_CRITERIA)}, got {criterion!r}")
    return criterion not in EXACT_CRITERIA


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


def tile_shares(mask: torch.Tensor, tile: int) -> torch.Tensor:
    """Returns ``(ny, nx)`` float: for each ``tile`` x ``tile`` tile of the ``(B, 1, h, w)``
    bool ``mask``, the share of its pixels that are True (a border tile: of the pixels it
    has), the largest over the batch."""
    h, w = int(mask.shape[-2]), int(mask.shape[-1])
    ny, nx = -(-h // tile), -(-w // tile)
    padded = F.pad(mask.float(), (0, nx * tile - w, 0, ny * tile - h))
    counts = padded.reshape(-1, ny, tile, nx, tile).sum(dim=(2, 4))
    rows = torch.full((ny,), float(tile), device=mask.device)
    cols = torch.full((nx,), float(tile), device=mask.device)
    rows[-1], cols[-1] = h - (ny - 1) * tile, w - (nx - 1) * tile
    return (counts / (rows[:, None] * cols[None, :])).amax(0)


def remaining_weight(
    lower_attention: Mapping[float, torch.Tensor], size: tuple[int, int]
) -> torch.Tensor:
    """Returns ``(B, 1, h, w)``: ``R = prod_j (1 - a_j)`` over the lower scales' attention
    ``(B, 1, h_j, w_j)``, each factor resized to ``size``: the weight the merge leaves to the
    scale about to run and every scale above it (no resize envelope: see
    :func:`remaining_envelope` for the bound)."""
    weight: torch.Tensor | None = None
    for scale in sorted(lower_attention):
        factor = resize((1 - lower_attention[scale]).clamp(0, 1), size)
        weight = factor if weight is None else weight * factor
    if weight is None:
        raise ValueError("the lowest scale of a cascade is never gated: give lower scales")
    return weight


def lower_confidence(lower: Mapping[float, ScaleOutput], size: tuple[int, int]) -> torch.Tensor:
    """Returns ``(B, 1, h, w)``: the top softmax probability of the hierarchical merge of the
    ``lower`` scales (computed at that merge's resolution), resized to ``size``."""
    logits = {s: o.logits for s, o in lower.items()}
    attention = {s: o.attention for s, o in lower.items()}
    merged = hierarchical_logits(logits, attention).float()
    top = merged.amax(1, keepdim=True)
    confidence = 1.0 / torch.exp(merged - top).sum(1, keepdim=True)
    return resize(confidence, size)


def needed_tiles_by(
    criterion: str,
    lower: Mapping[float, ScaleOutput],
    size: tuple[int, int],
    num_scales: int,
    tile: int,
    tau: float,
    outlier_share: float = GATE_OUTLIER_SHARE,
) -> torch.Tensor:
    """Returns ``(ny, nx)`` bool: the ``tile`` x ``tile`` tiles of the scale about to run at
    ``size`` that gate ``criterion`` keeps (see the module docstring), from the ``lower``
    scales' batched outputs (as gated).

    Args:
        criterion: ``"bound"``, ``"attention"`` or ``"confidence"``.
        lower: scale -> :class:`ScaleOutput` of every lower scale (with attention maps).
        size: ``(h, w)`` of the scale about to run.
        num_scales: scales in the whole cascade (the bound's resize footprint).
        tile: gate tile side in pixels.
        tau: the threshold in ``[0, 1)``.
        outlier_share: share of a tile's pixels that may fail an approximate test.

    Raises:
        ValueError: an unknown criterion, or a lower scale without attention.
    """
    is_approximate(criterion)  # raises for an unknown name
    for s, out in lower.items():
        if out.attention is None:
            raise ValueError(f"scale {s:g} has no attention map: gating needs a gate of 0")
    attention = {s: o.attention for s, o in lower.items()}
    if criterion == "bound":
        envelope = remaining_envelope(attention, size, num_scales)  # type: ignore[arg-type]
        return needed_tiles(envelope, tile, tau)
    if criterion == "attention":
        failing = remaining_weight(attention, size) > tau  # type: ignore[arg-type]
    else:
        failing = lower_confidence(lower, size) < 1.0 - tau
    return tile_shares(failing, tile) > outlier_share


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


#: What one more forward call costs, in input pixels, when kept tiles are grouped into
#: windows (:func:`merge_rectangles`): a call of the lite model on a tiny input takes about
#: 1 ms on one CPU thread, the time of 2,000 to 4,000 pixels of a large one.
WINDOW_OVERHEAD_PIXELS = 4_096


def _window_cost(rect: tuple[int, int, int, int], tile: int, margin: int) -> int:
    """Returns the input pixels of a window over tile rectangle ``rect`` with ``margin``,
    plus :data:`WINDOW_OVERHEAD_PIXELS`."""
    r0, r1, c0, c1 = rect
    area = ((r1 - r0) * tile + 2 * margin) * ((c1 - c0) * tile + 2 * margin)
    return area + WINDOW_OVERHEAD_PIXELS


def _bbox(rects: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """Returns the bounding rectangle of ``rects``."""
    return (
        min(r[0] for r in rects),
        max(r[1] for r in rects),
        min(r[2] for r in rects),
        max(r[3] for r in rects),
    )


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Returns True when tile rectangles ``a`` and ``b`` share a tile."""
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


#: Up to this many rectangles :func:`merge_rectangles` tries every pair each round; above it,
#: only the :data:`MERGE_CANDIDATES` pairs whose own bounding box saves most (bounded time on
#: large passes: an 8 x 16-tile pass never has more than 64 rectangles).
MERGE_EXHAUSTIVE = 64
MERGE_CANDIDATES = 32


def _grown_group(
    current: list[tuple[int, int, int, int]], i: int, j: int
) -> tuple[list[tuple[int, int, int, int]], tuple[int, int, int, int]]:
    """Returns rectangles ``i`` and ``j`` of ``current`` with every rectangle their bounding
    box meets (repeatedly), and that group's bounding box."""
    group = [current[i], current[j]]
    box = _bbox(group)
    while True:
        more = [r for r in current if r not in group and _overlaps(r, box)]
        if not more:
            return group, box
        group += more
        box = _bbox(group)


def _candidate_pairs(
    current: list[tuple[int, int, int, int]], tile: int, margin: int
) -> list[tuple[int, int]]:
    """Returns the index pairs of ``current`` to try in one round of :func:`merge_rectangles`:
    every pair up to :data:`MERGE_EXHAUSTIVE` rectangles, else the :data:`MERGE_CANDIDATES`
    pairs whose bounding box alone saves most."""
    n = len(current)
    if n <= MERGE_EXHAUSTIVE:
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    rects = np.asarray(current, dtype=np.int64)
    own = np.asarray([_window_cost(r, tile, margin) for r in current], dtype=np.int64)
    rows = np.maximum.outer(rects[:, 1], rects[:, 1]) - np.minimum.outer(rects[:, 0], rects[:, 0])
    cols = np.maximum.outer(rects[:, 3], rects[:, 3]) - np.minimum.outer(rects[:, 2], rects[:, 2])
    box = (rows * tile + 2 * margin) * (cols * tile + 2 * margin) + WINDOW_OVERHEAD_PIXELS
    saving = (own[:, None] + own[None, :] - box).astype(np.float64)
    saving[np.tril_indices(n)] = -np.inf
    flat = np.argsort(saving, axis=None)[::-1][:MERGE_CANDIDATES]
    return [(int(k // n), int(k % n)) for k in flat if np.isfinite(saving.flat[k])]


def merge_rectangles(
    rects: list[tuple[int, int, int, int]], tile: int, margin: int
) -> list[tuple[int, int, int, int]]:
    """Returns non-overlapping tile rectangles covering ``rects`` (half-open, in tiles) whose
    windows (each rectangle grown by ``margin`` pixels, tiles of ``tile`` pixels) cost less:
    greedily, while replacing two rectangles (and every one their bounding box meets) by that
    bounding box saves input pixels plus :data:`WINDOW_OVERHEAD_PIXELS` per window, the
    largest saving first (pairs tried: :func:`_candidate_pairs`). A merged rectangle may cover
    tiles the gate skipped: they are then computed (exactly)."""
    current = sorted(set(rects))
    while len(current) > 1:
        best: tuple[int, list[tuple[int, int, int, int]], tuple[int, int, int, int]] | None
        best = None
        for i, j in _candidate_pairs(current, tile, margin):
            group, box = _grown_group(current, i, j)
            saving = sum(_window_cost(r, tile, margin) for r in group)
            saving -= _window_cost(box, tile, margin)
            if saving > 0 and (best is None or saving > best[0]):
                best = (saving, group, box)
        if best is None:
            break
        _, group, box = best
        current = sorted([r for r in current if r not in group] + [box])
    return current


def rectangle_cores(
    rects: list[tuple[int, int, int, int]], tile: int, size: tuple[int, int]
) -> list[Box]:
    """Returns the pixel cores ``(top, bottom, left, right)`` of tile rectangles, clipped to ``size``."""
    h, w = size
    return [
        (r0 * tile, min(h, r1 * tile), c0 * tile, min(w, c1 * tile)) for r0, r1, c0, c1 in rects
    ]


def fill_output(
    lower: Mapping[float, ScaleOutput],
    size: tuple[int, int],
    boxes: Sequence[Box] | None = None,
) -> ScaleOutput:
    """Returns the :class:`ScaleOutput` a skipped region of the next scale takes, at ``size``:
    logits (and aux logits when every lower scale has them) = the hierarchical merge of the
    lower scales resized to ``size``; attention = 1 (the merge then ignores every higher
    scale there). Every map is a new float32 tensor (a caller may write into it).

    Args:
        lower: scale -> batched output of every lower scale (as gated).
        size: ``(h, w)`` of the scale being filled.
        boxes: ``(top, bottom, left, right)`` pixels that need the fill, for a caller that
            writes every other pixel of the logits: where each box can be resized from a crop
            with the same bits (:func:`hmsa_core.exact_resize.resize_box`), only the boxes
            of the logits are resized and their other pixels are left unset; otherwise, and
            with ``None``, every pixel is filled (aux logits always are).
    """
    logits = {s: o.logits for s, o in lower.items()}
    attention = {s: o.attention for s, o in lower.items()}
    held = [t for o in lower.values() for t in (o.logits, o.aux_logits) if t is not None]

    def fresh(t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        return t.clone() if any(t is h for h in held) else t

    def resized(t: torch.Tensor) -> torch.Tensor:
        if boxes is not None:
            out = torch.empty((*t.shape[:2], *size), dtype=torch.float32, device=t.device)
            for top, bottom, left, right in boxes:
                part = resize_box(t, size, (top, bottom, left, right))
                if part is None:
                    break
                out[:, :, top:bottom, left:right] = part
            else:
                return out
        return fresh(resize(t, size))

    merged = resized(hierarchical_logits(logits, attention))
    aux = None
    if all(o.aux_logits is not None for o in lower.values()):
        aux_maps = {s: o.aux_logits for s, o in lower.items()}
        aux = fresh(resize(hierarchical_logits(aux_maps, attention), size))  # type: ignore[arg-type]
    batch = int(merged.shape[0])
    ones = torch.ones((batch, 1, *size), dtype=torch.float32, device=merged.device)
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
    per_scale: Mapping[float, ScaleOutput], tau: float, tile: int, criterion: str = "bound"
) -> tuple[dict[float, ScaleOutput], dict[float, torch.Tensor]]:
    """Returns ``(gated, covered)``: what a run gated by ``criterion`` yields from outputs
    already computed in full, when the tiles it computes are exact; ``covered[s]`` is the
    ``(h, w)`` bool mask of the tiles scale ``s`` computed (all True for the lowest scale).
    Ascending scale order."""
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
        needed = needed_tiles_by(criterion, lower, size, len(scales), tile, tau)
        mask = covered_mask(needed, tile, size)
        gated[scale] = combine(out, mask, fill_output(lower, size))
        covered[scale] = mask
    return gated, covered
