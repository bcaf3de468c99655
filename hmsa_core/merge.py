"""Merging per-scale predictions: hierarchical attention (HMSA), mean, max and single scales.

Every function here is pure: it takes per-scale outputs and returns new tensors, so a change
of cascade or method costs a few tensor ops, never a forward pass. All mixing is done on
logits; all resizes are bilinear with ``align_corners=False`` (DESIGN 1.1).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch

from hmsa_core.models.base import ScaleOutput, resize

BASE_METHODS = ("hierarchical", "mean", "max", "explicit")


@dataclass
class MergeResult:
    """The merged prediction of a cascade.

    Attributes:
        method: the merge method string, e.g. ``"hierarchical"`` or ``"single:0.5"``.
        scales: the merged scales, ascending.
        logits: ``(B, C, H, W)`` merged logits at the output size.
        weights: per scale, ``(B, H, W)`` weight of that scale in the result at every pixel
            (they sum to 1 over scales): HMSA's effective weights (DESIGN 1.2), ``1/n`` for mean,
            the arg-max scale of the winning class for max, explicit attention's softmax.
        aux_logits: ``(B, C, H, W)`` auxiliary logits merged the same way, when every scale has them.
    """

    method: str
    scales: tuple[float, ...]
    logits: torch.Tensor
    weights: dict[float, torch.Tensor]
    aux_logits: torch.Tensor | None = None

    def __repr__(self) -> str:
        """Returns one readable line: method, scales, batch, classes, size."""
        from hmsa_core.display import merge_summary

        return merge_summary(self)

    def _repr_html_(self) -> str:
        """Returns the notebook display: the summary and each scale's mean weight."""
        from hmsa_core.display import merge_html

        return merge_html(self)


@runtime_checkable
class ExplicitMerger(Protocol):
    """A model whose merge needs its own learnt head (explicit attention, Chen et al. 2016)."""

    def merge_explicit(
        self, per_scale: Mapping[float, ScaleOutput], output_size: tuple[int, int]
    ) -> MergeResult:
        """Returns the explicit-attention merge of ``per_scale`` at ``output_size``."""
        ...


def parse_method(method: str) -> tuple[str, float | None]:
    """Returns ``(kind, scale)`` for a method string; ``scale`` is set only for ``single:<s>``.

    Raises ``ValueError`` for an unknown method.
    """
    if method.startswith("single:"):
        try:
            scale = float(method.split(":", 1)[1])
        except ValueError as exc:
            raise ValueError(f"bad single-scale method {method!r}; use e.g. 'single:0.5'") from exc
        return "single", scale
    if method in BASE_METHODS:
        return method, None
    raise ValueError(
        f"unknown merge method {method!r}; use one of {', '.join(BASE_METHODS)} or 'single:<scale>'"
    )


def _as_output(item: object) -> ScaleOutput:
    """Returns the batched :class:`ScaleOutput` inside a ScaleOutput or a ScaleResult."""
    output = getattr(item, "output", item)
    if not isinstance(output, ScaleOutput):
        raise TypeError(f"expected ScaleOutput or ScaleResult, got {type(item).__name__}")
    if output.logits.dim() != 4:
        raise ValueError(f"per-scale logits must be (B, C, h, w), got {tuple(output.logits.shape)}")
    return output


def _check_map(tensor: torch.Tensor, what: str, scale: float, shape: tuple[int, ...]) -> None:
    """Raises ``ValueError`` unless ``tensor`` is floating point with exactly ``shape``."""
    if not tensor.is_floating_point():
        raise ValueError(
            f"scale {scale:g}: {what} must be floating point, got {tensor.dtype} "
            "(cast logits with .float())"
        )
    if tuple(tensor.shape) != shape:
        raise ValueError(
            f"scale {scale:g}: {what} must have shape {shape}, got {tuple(tensor.shape)}"
        )


def _check_outputs(outputs: Mapping[float, ScaleOutput]) -> None:
    """Raises ``ValueError`` unless every scale has floating-point, non-empty logits with one
    batch size and class count, and attention/aux maps that match its logits."""
    first = min(outputs)
    batch, classes = (int(n) for n in outputs[first].logits.shape[:2])
    for scale in sorted(outputs):
        out = outputs[scale]
        b, c, h, w = (int(n) for n in out.logits.shape)
        if (b, c) != (batch, classes):
            raise ValueError(
                f"scale {scale:g} has {c} classes and batch {b}, but scale {first:g} has {classes} "
                f"classes and batch {batch}: every scale must come from the same model and images"
            )
        if min(b, c, h, w) < 1:
            raise ValueError(f"scale {scale:g} has empty logits of shape {(b, c, h, w)}")
        _check_map(out.logits, "logits", scale, (b, c, h, w))
        if out.attention is not None:
            _check_map(out.attention, "attention", scale, (b, 1, h, w))
        if out.aux_logits is not None:
            _check_map(out.aux_logits, "aux logits", scale, (b, c, h, w))


def _common_dtype(outputs: Mapping[float, ScaleOutput]) -> dict[float, ScaleOutput]:
    """Returns ``outputs`` with every map cast to the promoted floating dtype of all scales
    (unchanged, same objects, when they already agree)."""
    dtypes = {o.logits.dtype for o in outputs.values()}
    dtypes |= {o.attention.dtype for o in outputs.values() if o.attention is not None}
    dtypes |= {o.aux_logits.dtype for o in outputs.values() if o.aux_logits is not None}
    if len(dtypes) == 1:
        return dict(outputs)
    common = functools.reduce(torch.promote_types, dtypes)

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(common)

    return {
        s: replace(
            o,
            logits=o.logits.to(common),
            attention=cast(o.attention),
            aux_logits=cast(o.aux_logits),
        )
        for s, o in outputs.items()
    }


def _resolve_output_size(
    outputs: Mapping[float, ScaleOutput], output_size: tuple[int, int] | None
) -> tuple[int, int]:
    """Returns the ``(H, W)`` of the merged result; ``ValueError`` if it is missing or not positive."""
    if output_size is None:
        if 1.0 not in outputs:
            raise ValueError("output_size is required when the cascade does not contain scale 1.0")
        output_size = tuple(outputs[1.0].logits.shape[-2:])  # type: ignore[assignment]
    try:
        h, w = (int(n) for n in output_size)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"output_size must be (H, W), got {output_size!r}") from exc
    if h < 1 or w < 1:
        raise ValueError(f"output_size must be positive, got {(h, w)}")
    return h, w


def hierarchical_logits(
    logits: Mapping[float, torch.Tensor],
    attention: Mapping[float, torch.Tensor | None],
) -> torch.Tensor:
    """Returns the HMSA merge of per-scale maps, at the size of the smallest scale >= 1.0.

    (If every scale is < 1.0, at the size of the largest one.) ``logits[s]`` is ``(B, C, h, w)``
    and ``attention[s]`` ``(B, 1, h, w)`` at scale ``s``'s size. Scales are visited from the
    highest resolution down; the highest scale's attention is never used (DESIGN 1.1).
    """
    scales = sorted(logits, reverse=True)
    merged = logits[scales[0]]
    for scale in scales[1:]:
        attn = attention[scale]
        if attn is None:
            raise ValueError(
                f"scale {scale:g} has no attention map: this model cannot be merged "
                "hierarchically (use 'mean', 'max' or a single scale)"
            )
        pred = logits[scale]
        if scale >= 1.0:
            # attn * pred + (1 - attn) * down(merged), fused in one pass (lerp), written into
            # the resized copy; the caller's tensors are never modified.
            down = resize(merged, tuple(pred.shape[-2:]))
            if down is merged:
                down = merged.clone()
            merged = down.lerp_(pred, attn)
        else:
            size = tuple(merged.shape[-2:])
            # up(attn * pred) + (1 - up(attn)) * merged, fused in one pass (addcmul), written
            # into the freshly computed up(attn * pred): in place saves a full-size allocation.
            merged = resize(attn * pred, size).addcmul_(1 - resize(attn, size), merged)
    return merged


def effective_weights(
    attention: Mapping[float, torch.Tensor | None], output_size: tuple[int, int]
) -> dict[float, torch.Tensor]:
    """Returns, per scale, the ``(B, H, W)`` weight HMSA gives that scale's logits (DESIGN 1.2).

    With scales ``s_1 < ... < s_n`` and every attention resized to ``output_size``:
    ``w_1 = a_1``, ``w_k = a_k * prod_{j<k} (1 - a_j)``, ``w_n = prod_{j<n} (1 - a_j)``.
    They sum to 1 at every pixel.
    """
    scales = sorted(attention)
    remaining: torch.Tensor | None = None  # prod_{j<k} (1 - a_j)
    weights: dict[float, torch.Tensor] = {}
    for scale in scales[:-1]:
        attn = attention[scale]
        if attn is None:
            raise ValueError(f"scale {scale:g} has no attention map")
        a = resize(attn, output_size)[:, 0]
        weights[scale] = a if remaining is None else a * remaining
        remaining = (1 - a) if remaining is None else remaining * (1 - a)
    last = scales[-1]
    if remaining is None:
        ref = next(iter(attention.values()))
        batch = ref.shape[0] if ref is not None else 1
        device = ref.device if ref is not None else None
        remaining = torch.ones((batch, *output_size), device=device)
    weights[last] = remaining
    return weights


def _resized_stack(maps: Mapping[float, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Returns ``(S, B, C, H, W)``: every map resized to ``size``, stacked in ascending scale order."""
    return torch.stack([resize(maps[s], size) for s in sorted(maps)])


def _merge_single(
    method: str,
    scale: float,
    logits: Mapping[float, torch.Tensor],
    aux: Mapping[float, torch.Tensor] | None,
    size: tuple[int, int],
) -> MergeResult:
    """Returns the :class:`MergeResult` of taking ``scale`` alone (weight 1 there, 0 elsewhere)."""
    scales = tuple(sorted(logits))
    if scale not in logits:
        raise ValueError(
            f"scale {scale:g} is not in the cascade ({', '.join(f'{s:g}' for s in scales)})"
        )
    ref = logits[scale]
    ones = torch.ones((int(ref.shape[0]), *size), device=ref.device)
    weights = {s: ones if s == scale else torch.zeros_like(ones) for s in scales}
    return MergeResult(
        method=method,
        scales=scales,
        logits=resize(ref, size),
        weights=weights,
        aux_logits=resize(aux[scale], size) if aux else None,
    )


def merge(
    per_scale: Mapping[float, object],
    method: str = "hierarchical",
    *,
    output_size: tuple[int, int] | None = None,
    model: object | None = None,
) -> MergeResult:
    """Returns the :class:`MergeResult` of combining per-scale outputs with ``method``.

    Args:
        per_scale: scale -> :class:`ScaleOutput` or :class:`~hmsa_core.inference.ScaleResult`
            (batched ``(B, C, h, w)`` logits at each scale's own size).
        method: ``"hierarchical"`` (HMSA), ``"mean"``, ``"max"``, ``"single:<s>"`` or
            ``"explicit"`` (needs ``model`` with a ``merge_explicit`` head).
        output_size: ``(H, W)`` of the result; defaults to scale 1.0's size (required without it).
        model: the explicit-attention model, for ``method="explicit"``.

    Scales whose floating dtypes differ are merged in their promoted dtype.

    Raises:
        ValueError: empty cascade, unknown method, a single scale not in the cascade, a
            model without attention merged hierarchically, non-floating logits, or scales
            whose batch size or class count differ (or whose attention/aux maps do not match
            their logits).
    """
    if not per_scale:
        raise ValueError("cannot merge an empty cascade: give at least one scale")
    outputs = {float(s): _as_output(v) for s, v in per_scale.items()}
    _check_outputs(outputs)
    outputs = _common_dtype(outputs)
    kind, single_scale = parse_method(method)
    size = _resolve_output_size(outputs, output_size)
    scales = tuple(sorted(outputs))
    with_aux = all(o.aux_logits is not None for o in outputs.values())
    logits = {s: o.logits for s, o in outputs.items()}
    aux = {s: o.aux_logits for s, o in outputs.items()} if with_aux else None
    batch = next(iter(logits.values())).shape[0]
    device = next(iter(logits.values())).device

    if kind == "explicit":
        if not isinstance(model, ExplicitMerger):
            raise ValueError("the 'explicit' method needs an explicit-attention model")
        return model.merge_explicit(outputs, size)

    if kind == "single":
        return _merge_single(method, single_scale, logits, aux, size)  # type: ignore[arg-type]

    if kind == "hierarchical":
        attention = {s: o.attention for s, o in outputs.items()}
        merged = resize(hierarchical_logits(logits, attention), size)
        merged_aux = resize(hierarchical_logits(aux, attention), size) if aux else None
        return MergeResult(method, scales, merged, effective_weights(attention, size), merged_aux)

    stack = _resized_stack(logits, size)  # (S, B, C, H, W)
    aux_stack = _resized_stack(aux, size) if aux else None  # type: ignore[arg-type]
    if kind == "mean":
        share = torch.full((batch, *size), 1.0 / len(scales), device=device)
        return MergeResult(
            method,
            scales,
            stack.mean(0),
            {s: share for s in scales},
            aux_stack.mean(0) if aux_stack is not None else None,
        )
    # max: element-wise over scales; the weight map marks which scale supplied the winning
    # class's logit at each pixel.
    merged, source = stack.max(0)  # (B, C, H, W) each
    winner = merged.max(1, keepdim=True).indices  # (B, 1, H, W); = argmax, several times faster
    chosen = source.gather(1, winner)[:, 0]  # (B, H, W) index into scales
    weights = {s: (chosen == i).to(merged.dtype) for i, s in enumerate(scales)}
    merged_aux = aux_stack.max(0).values if aux_stack is not None else None
    return MergeResult(method, scales, merged, weights, merged_aux)
