"""Downloadable exports of one run: indexed mask PNG, per-scale arrays (.npz), metrics JSON, cost
rows, the per-class IoU table.

Both apps call these for their download buttons and tables, so the files are the same whichever
front end made them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from analysis.compare import MethodComparison, method_cost
from hmsa_core.confidence import result_confidence
from hmsa_core.cost import CascadeCost
from hmsa_core.inference import InferenceResult


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _json_default(value: object) -> object:
    """Returns numpy scalars and arrays as plain Python values for ``json.dumps``."""
    if isinstance(value, np.generic):
        return _finite_or_none(value.item()) if isinstance(value, np.floating) else value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def mask_png_bytes(result: InferenceResult) -> bytes:
    """Returns the merged prediction as an indexed (mode ``P``) PNG: pixel values are class ids,
    the palette is the label set's colours (so it shows coloured and reads back as ids)."""
    pred = _np(result.pred)
    if pred.max(initial=0) > 255 or pred.min(initial=0) < 0:
        raise ValueError("class ids outside 0..255 cannot be stored in an indexed PNG")
    img = Image.fromarray(pred.astype(np.uint8), mode="P")
    img.putpalette(result.labels.flat_palette())
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def scale_key(scale: float) -> str:
    """Returns the short form of a scale used in export keys, e.g. ``0.5``, ``1``, ``2``."""
    return f"{scale:g}"


def arrays_npz_bytes(
    result: InferenceResult,
    *,
    dtype: type[np.floating] = np.float16,
    compress: bool = False,
    include_logits: bool = True,
    confidence: bool = True,
) -> bytes:
    """Returns an ``.npz`` of the run's arrays (float maps stored as ``dtype``).

    Keys: ``scales`` ``(S,)``; ``logits`` ``(C, H, W)`` merged; ``pred`` ``(H, W)`` int64;
    ``image`` ``(H, W, 3)`` uint8; ``class_names`` ``(C,)``; ``method`` (0-d string); and per
    scale ``s``: ``logits_<s>`` ``(C, h, w)`` at that scale's input size, ``attention_<s>``
    ``(h, w)`` (when the model has attention) and ``weights_<s>`` ``(H, W)`` (the effective
    weight maps); ``aux_logits`` when present. ``<s>`` is written as in :func:`scale_key`.
    With ``confidence`` (:mod:`hmsa_core.confidence`): ``top_prob``, ``margin`` and ``entropy``
    ``(H, W)`` of the merged logits and ``top_prob_<s>`` ``(h, w)`` of each scale's own logits.

    Logits dominate the size (about ``2 * C * H * W * (1 + sum s^2)`` bytes in float16): pass
    ``include_logits=False`` for attention, weights and prediction only. ``compress`` deflates
    the archive (slow on float noise, little gain).
    """
    arrays: dict[str, np.ndarray] = {
        "scales": np.asarray(result.scales, dtype=np.float64),
        "pred": _np(result.pred).astype(np.int64),
        "image": np.asarray(result.image, dtype=np.uint8),
        "class_names": np.asarray(result.labels.names),
        "method": np.asarray(result.method),
    }
    if include_logits:
        arrays["logits"] = _np(result.logits).astype(dtype)
        if result.aux_logits is not None:
            arrays["aux_logits"] = _np(result.aux_logits).astype(dtype)
    for scale, per in result.per_scale.items():
        key = scale_key(scale)
        if include_logits:
            arrays[f"logits_{key}"] = _np(per.logits).astype(dtype)
        if per.attention is not None:
            arrays[f"attention_{key}"] = _np(per.attention).astype(dtype)
    for scale, weight in result.weights.items():
        arrays[f"weights_{scale_key(scale)}"] = _np(weight).astype(dtype)
    if confidence:
        for name, values in result_confidence(result).as_dict().items():
            arrays[name] = _np(values).astype(dtype)
        for scale in result.per_scale:
            top = result_confidence(result, scale).top_prob
            arrays[f"top_prob_{scale_key(scale)}"] = _np(top).astype(dtype)
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def metrics_dict(comparison: MethodComparison) -> dict:
    """Returns the JSON-serialisable metrics of a comparison (see :func:`metrics_json`)."""
    result = comparison.base
    labels = result.labels
    methods = {}
    for method in comparison.methods:
        cost = method_cost(comparison, method)
        entry: dict = {
            "scales": [float(c.scale) for c in cost.per_scale],
            "gflops": _finite_or_none(cost.gflops),
            "seconds": _finite_or_none(cost.compute_seconds),
        }
        if comparison.scores is not None:
            scores = comparison.scores[method]
            entry.update(scores.as_dict(labels))
        methods[method] = entry
    return {
        "model": result.model_name,
        "label_set": labels.name,
        "image_size": {"height": result.size[0], "width": result.size[1]},
        "cascade": [float(s) for s in result.scales],
        "reference": "ground truth" if comparison.gt is not None else None,
        "methods": methods,
        "skipped": dict(comparison.skipped),
    }


def metrics_json(comparison: MethodComparison) -> str:
    """Returns the comparison's metrics as indented JSON text.

    Per method: ``miou``, ``pixel_accuracy`` and ``per_class_iou`` (class name -> IoU, classes
    present in ground truth or prediction; only with ground truth), ``gflops`` and ``seconds``
    of the forward passes that method needs, and its ``scales``; skipped methods with the reason.
    NaN is written as ``null``.
    """
    return json.dumps(metrics_dict(comparison), indent=2, allow_nan=False, default=_json_default)


def cost_rows(cost: CascadeCost, *, total: bool = False) -> list[dict]:
    """Returns one table row per scale of ``cost`` (and a final ``"total"`` row when ``total``).

    Each row: ``scale`` (float, or ``"total"``), ``input size`` (``"W x H"``), ``GFLOPs``,
    ``seconds`` (of the pass when it was computed), ``peak MB`` (measured on CUDA, estimated
    on CPU), ``source`` (``"cached"`` or ``"computed"``), ``precision`` (what ran),
    ``computed %`` (share of the pass's area computed; below 100 when gating skipped tiles),
    ``skipped %`` (the rest), ``GFLOPs saved`` (by gating) and ``gate`` (criterion and
    threshold of a gated pass, e.g. ``"attention 0.3 (approximate)"``; empty otherwise).
    """
    from hmsa_core.display import gate_label

    rows: list[dict] = [
        {
            "scale": float(c.scale),
            "input size": f"{c.input_size[1]} x {c.input_size[0]}",
            "GFLOPs": round(c.gflops, 4),
            "seconds": round(c.seconds, 4),
            "peak MB": round(c.peak_bytes / 2**20, 1),
            "source": "cached" if c.cached else "computed",
            "precision": c.precision,
            "computed %": round(100.0 * c.computed_fraction, 1),
            "skipped %": round(100.0 * c.skipped_fraction, 1),
            "GFLOPs saved": round(c.flops_saved / 1e9, 4),
            "gate": gate_label(c),
        }
        for c in cost.per_scale
    ]
    if total:
        rows.append(
            {
                "scale": "total",
                "input size": "",
                "GFLOPs": round(cost.gflops, 4),
                "seconds": round(cost.seconds, 4),
                "peak MB": round(cost.peak_bytes / 2**20, 1),
                "source": f"{len(cost.cached_scales)} cached",
                "precision": "/".join(cost.precisions),
                "computed %": round(
                    100.0 * sum(c.flops for c in cost.per_scale) / max(cost.full_flops, 1), 1
                ),
                "skipped %": round(100.0 * cost.flops_saved / max(cost.full_flops, 1), 1),
                "GFLOPs saved": round(cost.gflops_saved, 4),
                "gate": f"{cost.gate_by} {cost.gate:g}" if cost.gate_by else "",
            }
        )
    return rows


#: Name of the last row of the IoU table, the mean over classes.
MIOU_ROW = "mIoU"


@dataclass(frozen=True)
class IouRow:
    """One row of the per-class IoU table.

    Attributes:
        name: the class name, or :data:`MIOU_ROW` for the last row.
        class_id: the class id, ``None`` for the mIoU row.
        values: method -> IoU in [0, 1] (mIoU in the last row); ``None`` where undefined
            (the class is in neither the ground truth nor that method's prediction).
    """

    name: str
    class_id: int | None
    values: dict[str, float | None]

    @property
    def is_mean(self) -> bool:
        """Returns True for the mIoU row."""
        return self.class_id is None


def iou_table_rows(comparison: MethodComparison) -> list[IouRow]:
    """Returns the per-class IoU rows of a comparison: one per class present in the ground truth
    or any method's prediction (by class id), then the :data:`MIOU_ROW` row. Values are
    fractions in [0, 1]; ``[]`` without ground truth."""
    if comparison.scores is None:
        return []
    scores = comparison.scores
    labels = comparison.labels
    present = np.zeros(labels.num_classes, dtype=bool)
    for s in scores.values():
        present |= np.asarray(s.present, dtype=bool)
    rows = [
        IouRow(
            name=labels.names[int(c)],
            class_id=int(c),
            values={
                m: _finite_or_none(s.iou[c]) if s.present[c] else None for m, s in scores.items()
            },
        )
        for c in np.flatnonzero(present)
    ]
    rows.append(IouRow(MIOU_ROW, None, {m: _finite_or_none(s.miou) for m, s in scores.items()}))
    return rows


def iou_table(
    comparison: MethodComparison, *, percent: bool = False, digits: int = 4
) -> tuple[list[str], list[list[str | float | None]]]:
    """Returns ``(headers, rows)`` of the IoU table for a grid widget: headers ``["class",
    *methods]``; rows of :func:`iou_table_rows` as ``[name, value per method]`` with values
    rounded to ``digits`` (in percent when ``percent``), ``None`` where undefined. Both are
    ``[]`` without ground truth."""
    rows = iou_table_rows(comparison)
    if not rows:
        return [], []
    factor = 100.0 if percent else 1.0
    methods = list(rows[0].values)

    def cell(value: float | None) -> float | None:
        return None if value is None else round(factor * value, digits)

    return ["class", *methods], [[r.name, *(cell(r.values[m]) for m in methods)] for r in rows]
