"""The results of a cascade: every pass kept (:class:`ScaleResult`), and their merge
(:class:`InferenceResult`), which can be merged again another way without a pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from hmsa_core.cost_types import CascadeCost, ScaleCost
from hmsa_core.labels import LabelSet
from hmsa_core.merge import MergeResult, merge
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput
from hmsa_core.tiling import Window


def map_output(output: ScaleOutput, fn: Callable[[torch.Tensor], torch.Tensor]) -> ScaleOutput:
    """Returns ``output`` with ``fn`` applied to every map it has."""

    def apply(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else fn(t)

    return ScaleOutput(
        logits=fn(output.logits),
        attention=apply(output.attention),
        aux_logits=apply(output.aux_logits),
        features=apply(output.features),
    )


def to_float32(output: ScaleOutput) -> ScaleOutput:
    """Returns ``output`` with every map in float32."""
    return map_output(output, lambda t: t.float())


def mirror(output: ScaleOutput) -> ScaleOutput:
    """Returns ``output`` with every map mirrored left to right (its own inverse)."""
    return map_output(output, lambda t: torch.flip(t, (-1,)))


@dataclass(frozen=True)
class PassOutcome:
    """What one forward pass left: the per-scale cache holds these.

    Attributes:
        output: the batched float32 :class:`ScaleOutput` at the pass's input size (a flipped
            pass's maps are mirrored back, so they line up with the image).
        cost: its :class:`ScaleCost`.
        computed: ``(h, w)`` bool, True where the model computed (a gated pass), ``None``
            when the whole pass was computed.
        windows: the windows the model ran on, ``None`` for one whole-input run (a flipped
            pass's windows are in the mirrored frame it ran in).
    """

    output: ScaleOutput
    cost: ScaleCost
    computed: torch.Tensor | None = None
    windows: tuple[Window, ...] | None = None

    def as_cached(self) -> PassOutcome:
        """Returns this outcome with its cost marked ``cached``."""
        return replace(self, cost=replace(self.cost, cached=True))


@dataclass
class ScaleResult:
    """One scale's forward pass (and its mirrored pass with flip), at that scale's input size.

    Attributes:
        scale: the scale.
        output: the batched :class:`ScaleOutput` (``(B, C, h, w)`` logits, ``(B, 1, h, w)`` attention).
        cost: FLOPs, seconds, peak memory, precision, computed fraction and whether it came
            from the cache.
        computed: ``(h, w)`` bool, True where the model computed this scale, False where
            attention gating skipped it (logits there are the lower scales' merge, attention
            1); ``None`` when the whole pass was computed.
        windows: the windows the pass ran on (``None``: one whole-input run).
        flipped_pass: the pass on the mirrored image, mirrored back (``None`` without flip).
    """

    scale: float
    output: ScaleOutput
    cost: ScaleCost
    computed: torch.Tensor | None = None
    windows: tuple[Window, ...] | None = None
    flipped_pass: PassOutcome | None = None

    @classmethod
    def of(cls, scale: float, plain: PassOutcome, flipped: PassOutcome | None) -> ScaleResult:
        """Returns the :class:`ScaleResult` of a scale's pass outcomes."""
        return cls(scale, plain.output, plain.cost, plain.computed, plain.windows, flipped)

    @property
    def plain_pass(self) -> PassOutcome:
        """Returns the unflipped pass as a :class:`PassOutcome`."""
        return PassOutcome(self.output, self.cost, self.computed, self.windows)

    @property
    def logits(self) -> torch.Tensor:
        """Returns the ``(C, h, w)`` logits of the first image in the batch."""
        return self.output.logits[0]

    @property
    def attention(self) -> torch.Tensor | None:
        """Returns the ``(h, w)`` attention of the first image, or ``None`` without a head."""
        return None if self.output.attention is None else self.output.attention[0, 0]

    @property
    def aux_logits(self) -> torch.Tensor | None:
        """Returns the ``(C, h, w)`` auxiliary logits of the first image, or ``None``."""
        return None if self.output.aux_logits is None else self.output.aux_logits[0]

    @property
    def flipped(self) -> ScaleOutput | None:
        """Returns the mirrored pass's batched :class:`ScaleOutput`, mirrored back, or ``None``."""
        return None if self.flipped_pass is None else self.flipped_pass.output

    @property
    def flipped_logits(self) -> torch.Tensor | None:
        """Returns the ``(C, h, w)`` logits of the mirrored pass (mirrored back), or ``None``."""
        return None if self.flipped is None else self.flipped.logits[0]

    @property
    def flipped_attention(self) -> torch.Tensor | None:
        """Returns the ``(h, w)`` attention of the mirrored pass (mirrored back), or ``None``."""
        if self.flipped is None or self.flipped.attention is None:
            return None
        return self.flipped.attention[0, 0]

    @property
    def flipped_cost(self) -> ScaleCost | None:
        """Returns the mirrored pass's :class:`ScaleCost`, or ``None`` without flip."""
        return None if self.flipped_pass is None else self.flipped_pass.cost

    def costs(self, flip: bool) -> tuple[ScaleCost, ...]:
        """Returns the cost of the pass, and of the mirrored one when ``flip``."""
        if flip and self.flipped_pass is not None:
            return (self.cost, self.flipped_pass.cost)
        return (self.cost,)


@dataclass
class InferenceResult:
    """Everything one multi-scale inference computed, for one image.

    Attributes:
        scales: the cascade, ascending.
        method: the merge method used for ``logits``.
        logits: ``(C, H, W)`` merged logits at input resolution (with ``flip``: the mean of
            the merge of the passes and the merge of the mirrored passes, DESIGN 1.6).
        probs: ``(C, H, W)`` softmax of ``logits`` (a property, computed on first use).
        pred: ``(H, W)`` int64 class ids (arg-max).
        per_scale: scale -> :class:`ScaleResult` (logits ``(C, h, w)``, attention ``(h, w)``,
            cost, and the mirrored pass with flip).
        weights: scale -> ``(H, W)`` effective weight of that scale at every pixel (sum to 1;
            with ``flip`` the mean of both merges' weights).
        cost: the :class:`CascadeCost` of the passes merged.
        labels: the label set of the class ids.
        image: ``(H, W, 3)`` uint8 RGB input (after any resizing), for display.
        aux_logits: ``(C, H, W)`` merged auxiliary logits when the model has an aux head.
        model_name: the model's architecture name.
        flip: whether ``logits`` include the mirrored passes.
    """

    scales: tuple[float, ...]
    method: str
    logits: torch.Tensor
    pred: torch.Tensor
    per_scale: dict[float, ScaleResult]
    weights: dict[float, torch.Tensor]
    cost: CascadeCost
    labels: LabelSet
    image: np.ndarray
    aux_logits: torch.Tensor | None = None
    model_name: str = ""
    flip: bool = False
    _probs: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def probs(self) -> torch.Tensor:
        """Returns the ``(C, H, W)`` softmax of ``logits``, computed on first use (it is not free:
        ~15 ms at 19 x 512 x 1024 on CPU, a third of a cached cascade change)."""
        if self._probs is None:
            self._probs = torch.softmax(self.logits, dim=0)
        return self._probs

    @property
    def size(self) -> tuple[int, int]:
        """Returns the ``(H, W)`` output size."""
        return int(self.pred.shape[0]), int(self.pred.shape[1])

    @property
    def gate_approximate(self) -> bool:
        """Returns True when some pass was gated by a criterion without an error bound
        (``"attention"`` or ``"confidence"``, DESIGN 1.8): the logits then approximate HMSA
        with no stated bound."""
        return self.cost.gate_by not in ("", "bound")

    @property
    def gate_note(self) -> str:
        """Returns one line on how gating shaped this result (empty when no pass was gated),
        e.g. ``"gated by confidence (tau 0.05): approximate, no error bound; skipped 2: 41%"``."""
        cost = self.cost
        if not cost.gate_by:
            return ""
        kind = (
            "approximate, no error bound"
            if self.gate_approximate
            else "exact up to the proven bound"
        )
        skipped = ", ".join(
            f"{c.scale:g}{' (flip)' if c.flipped else ''}: {100 * c.skipped_fraction:.0f}%"
            for c in cost.per_scale
            if c.gate_by
        )
        return f"gated by {cost.gate_by} (tau {cost.gate:g}): {kind}; skipped {skipped}"

    @property
    def has_flips(self) -> bool:
        """Returns True when every scale holds its mirrored pass (``remerge(flip=True)`` works)."""
        return all(r.flipped_pass is not None for r in self.per_scale.values())

    def __repr__(self) -> str:
        """Returns one readable line: model, cascade, method, size, classes, GFLOPs, seconds."""
        from hmsa_core.display import result_summary

        return result_summary(self)

    def _repr_html_(self) -> str:
        """Returns the notebook display: overlay, per-scale thumbnails, cost table (no JS)."""
        from hmsa_core.display import result_html

        return result_html(self)

    def figure(self, kind: str = "overlay", **options: object) -> object:
        """Returns the plotly figure ``kind`` (``"overlay"``, ``"scales"``, ``"methods"``,
        ``"iou"``, ``"cost"``, ``"pareto"``) from the installed figure plugins (see
        :func:`hmsa_core.display.result_figure`); ``options`` go to the builder."""
        from hmsa_core.display import result_figure

        return result_figure(self, kind, **options)

    def remerge(
        self,
        method: str | None = None,
        scales: Iterable[float] | None = None,
        *,
        model: MultiScaleSegmenter | None = None,
        flip: bool | None = None,
    ) -> InferenceResult:
        """Returns a new result merged from this one's per-scale outputs, with no forward pass.

        Args:
            method: merge method (default: this result's).
            scales: a subset of this result's scales (default: all of them).
            model: the explicit-attention model, needed only for ``method="explicit"``.
            flip: ``True`` merges the mirrored passes in too, ``False`` leaves them out,
                ``None`` (default) does as this result did.

        Raises:
            ValueError: a requested scale, or with ``flip=True`` its mirrored pass, was not
                computed in this result.
        """
        chosen = tuple(sorted({float(s) for s in scales})) if scales is not None else self.scales
        missing = [s for s in chosen if s not in self.per_scale]
        if missing:
            raise ValueError(
                f"scales {', '.join(f'{s:g}' for s in missing)} were not computed for this image; "
                "run infer with them"
            )
        if not chosen:
            raise ValueError("the cascade is empty: give at least one scale")
        use_flip = self.flip if flip is None else bool(flip)
        if use_flip and any(self.per_scale[s].flipped_pass is None for s in chosen):
            raise ValueError("this result holds no mirrored passes: run infer with flip=True")
        per_scale = {s: self.per_scale[s] for s in chosen}
        return assemble(
            per_scale,
            method or self.method,
            self.image,
            self.labels,
            model,
            self.model_name,
            keep_attention=True,
            flip=use_flip,
        )


def _mean_merge(a: MergeResult, b: MergeResult) -> MergeResult:
    """Returns the mean of two merges of one cascade (logits, weights, aux logits)."""
    aux = None
    if a.aux_logits is not None and b.aux_logits is not None:
        aux = (a.aux_logits + b.aux_logits) / 2
    return MergeResult(
        method=a.method,
        scales=a.scales,
        logits=(a.logits + b.logits) / 2,
        weights={s: (a.weights[s] + b.weights[s]) / 2 for s in a.weights},
        aux_logits=aux,
    )


def _drop_attention(result: ScaleResult) -> ScaleResult:
    """Returns ``result`` without attention maps (unflipped and flipped)."""
    flipped = result.flipped_pass
    if flipped is not None:
        flipped = replace(flipped, output=replace(flipped.output, attention=None))
    return replace(result, output=replace(result.output, attention=None), flipped_pass=flipped)


def assemble(
    per_scale: Mapping[float, ScaleResult],
    method: str,
    rgb: np.ndarray,
    labels: LabelSet,
    model: MultiScaleSegmenter | None,
    model_name: str,
    keep_attention: bool,
    flip: bool = False,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of merging ``per_scale`` with ``method``; with
    ``flip`` the mean of that merge and the merge of the mirrored passes (DESIGN 1.6)."""
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    merged = merge(per_scale, method, output_size=size, model=model)
    if flip:
        mirrored = {s: r.flipped for s, r in per_scale.items()}
        merged = _mean_merge(merged, merge(mirrored, method, output_size=size, model=model))
    logits = merged.logits[0]
    kept = dict(per_scale)
    if not keep_attention:
        kept = {s: _drop_attention(r) for s, r in per_scale.items()}
    return InferenceResult(
        scales=merged.scales,
        method=method,
        logits=logits,
        pred=logits.max(0).indices,  # = argmax(0) (first maximum), ~10x faster on CPU
        per_scale=kept,
        weights={s: w[0] for s, w in merged.weights.items()} if keep_attention else {},
        cost=CascadeCost(tuple(c for s in sorted(per_scale) for c in per_scale[s].costs(flip))),
        labels=labels,
        image=rgb,
        aux_logits=None if merged.aux_logits is None else merged.aux_logits[0],
        model_name=model_name,
        flip=flip,
    )
