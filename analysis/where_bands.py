"""The fast path of the where-analysis: every method's labels and top probability, merged in
row bands.

:func:`analysis.where_scales.analyse_where` needs of each merge method only its ``(H, W)``
arg-max labels, its top softmax probability on every ``stride``-th pixel and (for ``max``) the
scale that won each pixel. :func:`band_maps` computes exactly those, a band of rows at a time:
each scale's logits are resized to the output size once per band (shared by ``mean``, ``max``
and every ``single:<s>``), so no ``(S, C, H, W)`` stack and no full-size merged logits ever
exist; only every ``stride``-th row and column of each resized scale is kept whole (a quarter of
its size at stride 2), for the top probability.

Exactness: a band is resized by :func:`hmsa_core.models.base.resize` (bilinear,
``align_corners=False``) of the source rows it depends on plus a margin, cut where the output
row's source coordinate ``(y + 0.5) * h / H - 0.5`` is a whole source row, so every output
row gets the same interpolation weights from the same source rows as in the full-size resize:
the bands are bit-identical to it (``tests/test_where_bands.py`` checks the labels and the
whole report against the plain re-merge path). When ``h / H`` is not a short binary fraction
(weights would round differently), that scale is resized once at full size instead. The top
probability is taken at the end on ``(C, ceil(H / k), ceil(W / k))`` tensors, the shape the
plain path's :func:`analysis.calibration.top_probability` works on, because the vectorised
``exp`` rounds an element differently at the tail of a loop: per band it would not be
bit-identical on odd widths.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from hmsa_core.merge import parse_method
from hmsa_core.models.base import resize

#: Output rows per band (rounded up to a multiple of every scale's row step and the stride).
BAND_ROWS = 128
#: Kinds the bands compute from per-scale logits (hierarchical only as a result's own logits).
BANDED_KINDS = ("mean", "max", "single")


@dataclass
class MethodMaps:
    """What the where-analysis scores of one merge method.

    Attributes:
        pred: ``(H, W)`` arg-max class of the merged logits (first maximum), uint8 when the
            classes fit, else int64.
        top_prob: ``(ceil(H / k), ceil(W / k))`` float32 softmax probability of the arg-max
            class on every ``k``-th pixel of each row and column (``k`` = the stride).
        weights: scale -> ``(1, H, W)`` weight of that scale at every pixel, as
            :func:`hmsa_core.merge` gives it (filled for ``max``; empty otherwise).
    """

    pred: np.ndarray
    top_prob: np.ndarray
    weights: dict[float, torch.Tensor] = field(default_factory=dict)


def exact_row_step(h: int, out_h: int) -> int | None:
    """Returns the smallest output-row step at which a band of ``resize(x, (out_h, W))`` can
    start so that its resize is bit-identical to the full one (``x`` has ``h`` rows), or
    ``None`` when ``h / out_h`` is not a short binary fraction (interpolation weights would
    then round differently in a band)."""
    ratio = Fraction(h, out_h)
    den = ratio.denominator
    if den & (den - 1) or ratio.numerator >= 1 << 8 or 2 * max(h, out_h) + 1 >= 1 << 15:
        return None
    return den


def resize_rows(
    x: torch.Tensor, size: tuple[int, int], y0: int, y1: int, step: int
) -> torch.Tensor:
    """Returns ``(C, y1 - y0, W)``: rows ``y0:y1`` of ``resize(x[None], size)[0]`` for ``(C, h, w)``
    logits, resizing only the source rows they depend on. ``y0`` must be a multiple of
    ``step`` (from :func:`exact_row_step`) and ``y1`` one or ``size[0]``."""
    h, out_h = int(x.shape[-2]), int(size[0])
    w, out_w = int(x.shape[-1]), int(size[1])
    if h == out_h and w == out_w:
        return x[:, y0:y1]
    margin = step * math.ceil((math.ceil(out_h / h) + 2) / step)
    a = max(0, y0 - margin)
    b = min(out_h, y1 + margin)
    ra, rb = a * h // out_h, b * h // out_h
    band = resize(x[None, :, ra:rb], (b - a, int(size[1])))[0]
    return band[:, y0 - a : y1 - a]


def top_probability_of(x: torch.Tensor) -> torch.Tensor:
    """Returns the ``(h, w)`` float32 softmax probability of the arg-max class of ``(C, h, w)``
    logits, by the operations of :func:`analysis.calibration.top_probability` on a tensor of
    the same shape (so even its vectorised ``exp`` rounds every element the same way)."""
    return (x - x.amax(0)).exp_().sum(0).reciprocal_()


def _mean(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Returns the mean of equal-shape maps as ``torch.stack(maps).mean(0)`` computes it (a
    sum in order, then a division), without the stack for a few maps."""
    if len(maps) > 4:
        return torch.stack(list(maps)).mean(0)
    total = maps[0].clone() if len(maps) == 1 else maps[0] + maps[1]
    for m in maps[2:]:
        total += m
    return total.div_(len(maps))


def _maximum(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Returns the element-wise maximum of equal-shape maps (``torch.stack(maps).max(0)``'s
    values)."""
    merged = maps[0]
    for m in maps[1:]:
        merged = torch.maximum(merged, m)
    return merged


def _merged(kind: str, maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Returns the ``kind`` merge (mean, max, single) of maps already at the output size."""
    if kind == "mean":
        return _mean(maps)
    if kind == "max":
        return _maximum(maps)
    return maps[0]


def _max_labels(maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, np.ndarray]:
    """Returns ``(pred (h, w) int64, chosen (h, w) uint8)`` of the max merge of ``(C, h, w)``
    maps: its arg-max class and the first map holding that class's maximum (the index
    ``torch.stack(maps).max(0)`` gives there). The small per-pixel steps run in NumPy (fewer
    thread hand-offs on a busy machine)."""
    best, pred = _maximum(maps).max(0)
    top = best.numpy()
    if np.isnan(top).any():  # NaN: the stack's own rule
        merged, source = torch.stack(list(maps)).max(0)
        pred = merged.max(0).indices
        return pred, source.gather(0, pred[None])[0].to(torch.uint8).numpy()
    chosen = np.full(top.shape, len(maps) - 1, dtype=np.uint8)
    index = pred[None]
    for i in range(len(maps) - 2, -1, -1):  # the first maximum wins
        chosen[maps[i].gather(0, index)[0].numpy() == top] = i
    return pred, chosen


def bandable(method: str, cascade: Sequence[float], outputs: Mapping[float, torch.Tensor]) -> bool:
    """Returns True when ``method`` on ``cascade`` can be computed by :func:`band_maps` from
    ``outputs`` (scale -> ``(C, h, w)`` float32 CPU logits): mean, max or a single scale of the
    cascade, every scale present."""
    try:
        kind, scale = parse_method(method)
    except ValueError:
        return False
    if kind not in BANDED_KINDS or not cascade or any(s not in outputs for s in cascade):
        return False
    return kind != "single" or scale in cascade


def band_maps(
    outputs: Mapping[float, torch.Tensor],
    methods: Mapping[str, tuple[str, tuple[float, ...]]],
    size: tuple[int, int],
    stride: int,
    own: torch.Tensor | None = None,
    band_rows: int = BAND_ROWS,
    own_pred: torch.Tensor | None = None,
) -> dict[str, MethodMaps]:
    """Returns each method's :class:`MethodMaps`, merged a band of rows at a time.

    Args:
        outputs: scale -> ``(C, h, w)`` float32 CPU logits at that scale's size.
        methods: name -> ``(merge method, cascade)``: ``"mean"``, ``"max"``, ``"single:<s>"``
            (see :func:`bandable`), or ``"own"`` for ``own``'s logits as they are.
        size: ``(H, W)`` of the merged output.
        stride: the top probability's stride ``k``.
        own: ``(C, H, W)`` logits already merged (a result's own), for methods named ``"own"``.
        own_pred: ``(H, W)`` arg-max of ``own`` when already taken (a result's ``pred``).
        band_rows: output rows per band (rounded up to a multiple of every row step).
    """
    h_out, w_out = int(size[0]), int(size[1])
    k = max(int(stride), 1)
    needed = sorted({s for kind, cascade in methods.values() if kind != "own" for s in cascade})
    steps, sources = [k], {}
    for s in needed:
        x = outputs[s]
        step = exact_row_step(int(x.shape[-2]), h_out)
        if step is None:  # resized once at full size, then cut
            x, step = resize(x[None], (h_out, w_out))[0], 1
        sources[s] = (x, step)
        steps.append(step)
    unit = math.lcm(*steps)
    rows = unit * max(1, math.ceil(band_rows / unit))
    num_classes = int((own if own is not None else outputs[needed[0]]).shape[0])
    pred_dtype = np.uint8 if num_classes <= 256 else np.int64
    preds = {name: np.empty((h_out, w_out), pred_dtype) for name in methods}
    chosen = {
        n: np.empty((h_out, w_out), np.uint8) for n, (kind, _) in methods.items() if kind == "max"
    }
    # every k-th row and column of each resized scale: the top probability is taken from
    # these at the end, on tensors shaped as the plain path's
    kh, kw = -(-h_out // k), -(-w_out // k)
    strided = {s: torch.empty((num_classes, kh, kw)) for s in needed}
    with torch.no_grad():
        own_labels = own_pred
        if own is not None and own_labels is None:
            own_labels = own.max(0).indices
        for y0 in range(0, h_out, rows):
            y1 = min(h_out, y0 + rows)
            band = {s: resize_rows(x, size, y0, y1, st) for s, (x, st) in sources.items()}
            for s, b in band.items():
                strided[s][:, y0 // k : -(-y1 // k)] = b[:, ::k, ::k]
            for name, (kind, cascade) in methods.items():
                if kind == "own":
                    pred = own_labels[y0:y1]  # type: ignore[index]
                elif kind == "max":
                    pred, won = _max_labels([band[s] for s in sorted(cascade)])
                    chosen[name][y0:y1] = won
                else:
                    pred = _merged(kind, [band[s] for s in _scales(kind, cascade)]).max(0).indices
                preds[name][y0:y1] = pred.numpy()
        del band
        maps = {}
        for name, (kind, cascade) in methods.items():
            if kind == "own":
                prob = top_probability_of(own[:, ::k, ::k])  # type: ignore[index]
            else:
                prob = top_probability_of(
                    _merged(kind, [strided[s] for s in _scales(kind, cascade)])
                )
            maps[name] = MethodMaps(preds.pop(name), prob.numpy())
    for name, which in chosen.items():
        picked = torch.from_numpy(which)[None]
        scales = sorted(methods[name][1])
        maps[name].weights = {s: (picked == i).float() for i, s in enumerate(scales)}
    return maps


def _scales(kind: str, cascade: Sequence[float]) -> list[float]:
    """Returns the scales a mean, max or single merge takes, ascending."""
    return [parse_method(kind)[1]] if kind.startswith("single") else sorted(cascade)  # type: ignore[list-item]
