"""Temporal analysis of a clip's results: which scale decides, cost, flicker, mIoU per frame.

Flicker of a method (DESIGN 1.9) is the share of pixels whose label differs from the previous
frame's. Motion-compensated flicker first warps the previous labels by the optical flow from
the current frame to the previous one (``skimage.registration.optical_flow_tvl1`` or
``optical_flow_ilk`` on a reduced grey copy, upsampled; nearest-neighbour warp), so camera
motion is not counted; pixels that flow in from outside the frame are left out. Every merge
method and single scale comes from the same passes (``result.remerge``: no extra forward pass).

Streaming: :class:`TemporalTracker` keeps only the previous frame's labels and grey copy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hmsa_core.inference import InferenceResult
from hmsa_core.labels import LabelSet
from hmsa_core.models.base import resize

FLOW_METHODS = ("tvl1", "ilk", "none")


@dataclass(frozen=True)
class TemporalSettings:
    """How flicker is measured.

    Attributes:
        methods: merge methods to follow (``None``: every single scale, mean, max and
            hierarchical).
        flow: ``"ilk"`` (default, ``optical_flow_ilk``: faster, and exact on the tests'
            translations), ``"tvl1"`` (``optical_flow_tvl1``) or ``"none"`` (no
            motion-compensated flicker).
        flow_side: long side in pixels of the grey copies the flow is computed on.
    """

    methods: tuple[str, ...] | None = None
    flow: str = "ilk"
    flow_side: int = 128

    def __post_init__(self) -> None:
        """Raises ``ValueError`` for an unknown flow or a flow side under 16."""
        if self.flow not in FLOW_METHODS:
            raise ValueError(f"unknown flow {self.flow!r}; use one of {', '.join(FLOW_METHODS)}")
        if self.flow_side < 16:
            raise ValueError(f"flow_side must be at least 16 pixels, got {self.flow_side}")


def default_methods(scales: tuple[float, ...]) -> tuple[str, ...]:
    """Returns ``single:<s>`` for every scale, then ``mean``, ``max`` and ``hierarchical``."""
    return (*(f"single:{s:g}" for s in scales), "mean", "max", "hierarchical")


def methods_for(result: InferenceResult) -> tuple[str, ...]:
    """Returns :func:`default_methods` of ``result``'s cascade that its passes support:
    ``hierarchical`` only when every scale but the largest has attention, and the result's
    own method (e.g. ``explicit``) last when it is not among them."""
    methods = default_methods(tuple(result.scales))
    lower = tuple(result.scales)[:-1]
    if any(result.per_scale[s].attention is None for s in lower):
        methods = tuple(m for m in methods if m != "hierarchical")
    return methods if result.method in methods else (*methods, result.method)


def method_label(method: str) -> str:
    """Returns a table label: ``single 0.5``, ``mean``, ``max``, ``HMSA``..."""
    if method.startswith("single:"):
        return f"single {method.split(':', 1)[1]}"
    return "HMSA" if method == "hierarchical" else method


@dataclass
class FrameStats:
    """One processed frame's numbers.

    Attributes:
        number: position among the processed frames (0-based).
        frame_index: index in the decoded clip.
        time: presentation time in seconds.
        gflops: the cascade's GFLOPs on this frame.
        seconds: the cascade's forward seconds on this frame.
        scale_share: scale -> share of pixels where it has the largest effective weight.
        flicker: method -> share of pixels whose label changed since the previous processed
            frame (``None`` on the first frame).
        flicker_mc: the same after warping the previous labels by optical flow (``None`` on the
            first frame or with ``flow="none"``).
        miou: method -> mIoU against the frame's mask (empty without a mask).
    """

    number: int
    frame_index: int
    time: float
    gflops: float
    seconds: float
    scale_share: dict[float, float]
    flicker: dict[str, float | None]
    flicker_mc: dict[str, float | None]
    miou: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Returns a JSON-ready dict (scale keys as strings)."""
        out = asdict(self)
        out["scale_share"] = {f"{s:g}": v for s, v in self.scale_share.items()}
        return out


@dataclass
class FrameAnalysis:
    """What :meth:`TemporalTracker.update` returns for one frame.

    Attributes:
        stats: the frame's :class:`FrameStats`.
        deciding: ``(H, W)`` uint8 index (into the cascade) of the scale with the largest
            effective weight at each pixel.
    """

    stats: FrameStats
    deciding: np.ndarray


def deciding_scale(weights: Mapping[float, torch.Tensor]) -> np.ndarray:
    """Returns the ``(H, W)`` uint8 index (ascending scale order) of the scale with the
    largest weight at each pixel, from ``weights``: scale -> ``(H, W)``.

    Raises:
        ValueError: no weights (the result was computed with ``return_attn=False``).
    """
    if not weights:
        raise ValueError("the result has no effective weights; run infer with return_attn=True")
    stack = torch.stack([weights[s].float() for s in sorted(weights)])
    return stack.max(dim=0).indices.to(torch.uint8).cpu().numpy()  # = argmax, faster on CPU


def label_flicker(prev: np.ndarray, cur: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Returns the share of pixels (of ``valid`` ones, when given) where ``prev`` and ``cur``
    ``(H, W)`` labels differ (0.0 when no pixel is valid)."""
    changed = prev != cur
    if valid is None:
        return float(changed.mean())
    n = np.count_nonzero(valid)
    return float(np.count_nonzero(changed & valid) / n) if n else 0.0


def grey(rgb: np.ndarray, side: int) -> np.ndarray:
    """Returns a float32 grey copy of ``rgb`` ``(H, W, 3)`` with its long side at most
    ``side``, values in [0, 1]."""
    h, w = rgb.shape[:2]
    f = min(1.0, side / max(h, w))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    image = Image.fromarray(rgb).convert("L")
    if size != (w, h):
        image = image.resize(size, Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255.0


def flow_to_previous(
    prev_grey: np.ndarray, cur_grey: np.ndarray, size: tuple[int, int], method: str = "ilk"
) -> np.ndarray:
    """Returns ``(2, H, W)`` float32 flow in full-size pixels (rows, cols): the previous
    frame's pixel ``x + flow(x)`` shows what the current frame shows at ``x``.

    Computed on the reduced grey copies, then upsampled bilinearly to ``size`` ``(H, W)``.
    """
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1

    if method == "ilk":
        flow = optical_flow_ilk(cur_grey, prev_grey)
    else:
        flow = optical_flow_tvl1(cur_grey, prev_grey)
    h, w = size
    gh, gw = cur_grey.shape
    t = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))[None]
    t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0]
    t[0] *= h / gh
    t[1] *= w / gw
    return t.numpy()


def flow_sources(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(index, valid)`` of a ``(2, H, W)`` flow: the ``(H, W)`` flat index into an
    ``(H, W)`` map of the nearest pixel to ``x + flow(x)`` (clipped to the frame) and the bool
    mask of pixels whose source lies inside the frame; shared by every map warped by it."""
    _, h, w = flow.shape
    rows = np.rint(np.arange(h, dtype=np.float32)[:, None] + flow[0]).astype(np.int64)
    cols = np.rint(np.arange(w, dtype=np.float32)[None, :] + flow[1]).astype(np.int64)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    index = np.clip(rows, 0, h - 1) * w + np.clip(cols, 0, w - 1)
    return index, valid


def warp_labels(labels: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(warped, valid)``: ``labels`` ``(H, W)`` read at ``x + flow(x)`` (nearest
    neighbour) and the ``(H, W)`` bool mask of pixels whose source lies inside the frame."""
    index, valid = flow_sources(flow)
    return labels.ravel()[index], valid


def _to_labels(pred: torch.Tensor) -> np.ndarray:
    return pred.to(torch.int16).cpu().numpy()


def _cheap_labels(result: InferenceResult, methods: list[str]) -> dict[str, np.ndarray]:
    """Returns method -> ``(H, W)`` int16 labels of the ``single:<s>``, ``mean`` and ``max``
    ``methods``: each scale's ``(C, h, w)`` logits resized to ``result.size`` once, then the
    reductions of :func:`hmsa_core.merge.merge` (the stacked mean over scales; the element-wise
    max) and the first-maximum class of each."""
    scales = tuple(sorted(result.per_scale))
    resized = {s: resize(result.per_scale[s].output.logits[:1], result.size)[0] for s in scales}
    out: dict[str, np.ndarray] = {}
    for method in methods:
        if method.startswith("single:"):
            scale = float(method.split(":", 1)[1])
            if scale not in resized:
                raise ValueError(f"scale {scale:g} is not in the cascade {scales}")
            out[method] = _to_labels(resized[scale].max(0).indices)
    if "mean" in methods:
        out["mean"] = _to_labels(torch.stack([resized[s] for s in scales]).mean(0).max(0).indices)
    if "max" in methods:  # the stack's max over scales, pairwise (same values, ~10x faster)
        out["max"] = _to_labels(functools.reduce(torch.maximum, resized.values()).max(0).indices)
    return out


class TemporalTracker:
    """Follows a clip frame by frame; keeps only what the next frame needs (streaming).

    ``update(result, mask)`` per frame, in order; ``stats`` lists every frame's
    :class:`FrameStats`; :func:`flicker_table` summarises them.
    """

    def __init__(
        self,
        scales: tuple[float, ...],
        labels: LabelSet,
        settings: TemporalSettings | None = None,
        model: object | None = None,
    ) -> None:
        """Follows the cascade ``scales`` with ``settings`` (default :class:`TemporalSettings`);
        ``model`` is needed only when ``"explicit"`` is among the methods."""
        self.scales = tuple(sorted(float(s) for s in scales))
        self.labels = labels
        self.settings = settings or TemporalSettings()
        self.methods: tuple[str, ...] = self.settings.methods or ()
        self.model = model
        self.stats: list[FrameStats] = []
        self._prev: dict[str, np.ndarray] | None = None
        self._prev_grey: np.ndarray | None = None

    def flow_description(self) -> str:
        """Returns how motion is compensated, for outputs: method and flow size."""
        if self.settings.flow == "none":
            return "none (no motion-compensated flicker)"
        name = {"tvl1": "optical_flow_tvl1", "ilk": "optical_flow_ilk"}[self.settings.flow]
        return (
            f"skimage.registration.{name} on grey copies with long side "
            f"{self.settings.flow_side} px, upsampled; nearest-neighbour warp of the previous "
            "labels; pixels flowing in from outside the frame left out"
        )

    def method_preds(self, result: InferenceResult) -> dict[str, np.ndarray]:
        """Returns method -> ``(H, W)`` int16 labels, merged from ``result``'s passes.

        The result's own method is its ``pred``; ``single:<s>``, ``mean`` and ``max`` come
        from each scale's logits resized to the output size once and shared (the same
        resizes and reductions as :func:`hmsa_core.merge.merge`, so the labels equal
        ``result.remerge(method).pred``, without building each merge's weights or stacking
        the logits twice); any other method through ``result.remerge``.
        """
        preds: dict[str, np.ndarray] = {}
        plain = not getattr(result, "flip", False)  # flipped results merge mirrored passes too
        cheap = [
            m
            for m in self.methods
            if m != result.method and (m in ("mean", "max") or m.startswith("single:"))
        ]
        if plain and cheap:
            preds.update(_cheap_labels(result, cheap))
        for method in self.methods:
            if method == result.method:
                preds[method] = _to_labels(result.pred)
            elif method not in preds:
                preds[method] = _to_labels(result.remerge(method, model=self.model).pred)
        return {m: preds[m] for m in self.methods}

    def update(self, result: InferenceResult, mask: np.ndarray | None = None) -> FrameAnalysis:
        """Returns the :class:`FrameAnalysis` of the next frame's ``result`` (``mask``:
        its ``(H, W)`` class-id ground truth, optional) and remembers its labels.

        Raises:
            ValueError: a result of another cascade or size, or a mask that does not fit.
        """
        if tuple(result.scales) != self.scales:
            raise ValueError(f"result cascade {result.scales} is not the tracker's {self.scales}")
        if not self.methods:
            self.methods = methods_for(result)
        preds = self.method_preds(result)
        size = result.size
        if self._prev is not None and next(iter(self._prev.values())).shape != size:
            raise ValueError("frame size changed within the clip; every frame must share a size")
        deciding = deciding_scale(result.weights)
        share = np.bincount(deciding.ravel(), minlength=len(self.scales)) / deciding.size
        flicker: dict[str, float | None] = dict.fromkeys(self.methods)
        flicker_mc: dict[str, float | None] = dict.fromkeys(self.methods)
        cur_grey = (
            grey(result.image, self.settings.flow_side) if self.settings.flow != "none" else None
        )
        if self._prev is not None:
            for m in self.methods:
                flicker[m] = label_flicker(self._prev[m], preds[m])
            if cur_grey is not None and self._prev_grey is not None:
                flow = flow_to_previous(self._prev_grey, cur_grey, size, self.settings.flow)
                index, valid = flow_sources(flow)  # once for every method's labels
                for m in self.methods:
                    warped = self._prev[m].ravel()[index]
                    flicker_mc[m] = label_flicker(warped, preds[m], valid)
        miou = self._miou(preds, mask, size) if mask is not None else {}
        frame_index = int(getattr(result, "frame_index", len(self.stats)))
        stats = FrameStats(
            number=len(self.stats),
            frame_index=frame_index,
            time=float(getattr(result, "time", 0.0)),
            gflops=float(result.cost.gflops),
            seconds=float(result.cost.seconds),
            scale_share={s: float(v) for s, v in zip(self.scales, share)},
            flicker=flicker,
            flicker_mc=flicker_mc,
            miou=miou,
        )
        self.stats.append(stats)
        self._prev, self._prev_grey = preds, cur_grey
        return FrameAnalysis(stats=stats, deciding=deciding)

    def _miou(
        self, preds: dict[str, np.ndarray], mask: np.ndarray, size: tuple[int, int]
    ) -> dict[str, float | None]:
        from analysis.compare import validate_gt
        from analysis.metrics import nan_to_none, score_prediction

        gt = validate_gt(mask, size, self.labels)
        return {
            m: nan_to_none(
                score_prediction(p, gt, self.labels.num_classes, self.labels.ignore_index).miou
            )
            for m, p in preds.items()
        }


@dataclass(frozen=True)
class FlickerRow:
    """One method's summary over a clip.

    Attributes:
        method: the method string; ``label``: its table label.
        flicker: mean raw flicker over frames 2..n (``None`` with under two frames).
        flicker_mc: mean motion-compensated flicker (``None`` when not measured).
        miou: mean per-frame mIoU (``None`` without masks).
    """

    method: str
    label: str
    flicker: float | None
    flicker_mc: float | None
    miou: float | None


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def flicker_table(stats: list[FrameStats], methods: tuple[str, ...]) -> list[FlickerRow]:
    """Returns one :class:`FlickerRow` per method: means over the frames in ``stats``."""
    return [
        FlickerRow(
            method=m,
            label=method_label(m),
            flicker=_mean([s.flicker.get(m) for s in stats]),
            flicker_mc=_mean([s.flicker_mc.get(m) for s in stats]),
            miou=_mean([s.miou.get(m) for s in stats]),
        )
        for m in methods
    ]


def table_markdown(rows: list[FlickerRow]) -> str:
    """Returns the flicker table as Markdown: method, flicker %, motion-compensated %, mIoU %."""

    def pct(v: float | None, digits: int = 2) -> str:
        return "n/a" if v is None else f"{100 * v:.{digits}f}"

    lines = [
        "| method | flicker % | motion-compensated flicker % | mean mIoU % |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.label} | {pct(r.flicker)} | {pct(r.flicker_mc)} | {pct(r.miou, 1)} |" for r in rows
    ]
    return "\n".join(lines)
