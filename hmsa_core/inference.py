"""Hierarchical multi-scale inference: one forward pass per scale (cached), then a cheap merge.

The expensive part, :func:`run_scales`, runs the model once per scale and keeps every output;
the cheap part, :func:`hmsa_core.merge.merge`, combines them. :func:`infer` does both and
returns an :class:`InferenceResult` that keeps every per-scale prediction and attention map.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import torch

from hmsa_core.cache import ByteLRUCache, model_token, tensor_digest, weights_version
from hmsa_core.cascade import validate_scales
from hmsa_core.cost import CascadeCost, ScaleCost, estimate_pass
from hmsa_core.images import ImageLike, load_rgb, rgb_to_uint8
from hmsa_core.labels import LabelSet
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.merge import merge
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, rescale_input

PRECISIONS: Mapping[str, torch.dtype | None] = MappingProxyType(
    {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
)
DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024

#: Progress callback: ``(scale, index, total, cached)`` after each scale is done.
ProgressFn = Callable[[float, int, int, bool], None]


@dataclass
class ScaleResult:
    """One scale's forward pass, its outputs at that scale's own input size.

    Attributes:
        scale: the scale.
        output: the batched :class:`ScaleOutput` (``(B, C, h, w)`` logits, ``(B, 1, h, w)`` attention).
        cost: FLOPs, seconds, peak memory and whether it came from the cache.
    """

    scale: float
    output: ScaleOutput
    cost: ScaleCost

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


@dataclass
class PreparedInput:
    """An image ready for the model.

    Attributes:
        tensor: ``(1, 3, H, W)`` float32, normalised with the model's mean and std.
        rgb: ``(H, W, 3)`` uint8 RGB for display.
    """

    tensor: torch.Tensor
    rgb: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """Returns ``(H, W)``."""
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])


@dataclass
class InferenceResult:
    """Everything one multi-scale inference computed, for one image.

    Attributes:
        scales: the cascade, ascending.
        method: the merge method used for ``logits``.
        logits: ``(C, H, W)`` merged logits at input resolution.
        probs: ``(C, H, W)`` softmax of ``logits`` (a property, computed on first use).
        pred: ``(H, W)`` int64 class ids (arg-max).
        per_scale: scale -> :class:`ScaleResult` (logits ``(C, h, w)``, attention ``(h, w)``, cost).
        weights: scale -> ``(H, W)`` effective weight of that scale at every pixel (sum to 1).
        cost: the cascade's :class:`CascadeCost`.
        labels: the label set of the class ids.
        image: ``(H, W, 3)`` uint8 RGB input (after any resizing), for display.
        aux_logits: ``(C, H, W)`` merged auxiliary logits when the model has an aux head.
        model_name: the model's architecture name.
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

    def remerge(
        self,
        method: str | None = None,
        scales: Iterable[float] | None = None,
        *,
        model: MultiScaleSegmenter | None = None,
    ) -> InferenceResult:
        """Returns a new result merged from this one's per-scale outputs, with no forward pass.

        Args:
            method: merge method (default: this result's).
            scales: a subset of this result's scales (default: all of them).
            model: the explicit-attention model, needed only for ``method="explicit"``.

        Raises:
            ValueError: a requested scale was not computed in this result.
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
        per_scale = {s: self.per_scale[s] for s in chosen}
        return _assemble(
            per_scale,
            method or self.method,
            self.image,
            self.labels,
            model,
            self.model_name,
            keep_attention=True,
        )


def prepare_input(
    image: ImageLike, model: MultiScaleSegmenter, limits: InputLimits = DEFAULT_LIMITS
) -> PreparedInput:
    """Returns the :class:`PreparedInput` of any accepted image form.

    A ``torch.Tensor`` ``(3, H, W)`` or ``(1, 3, H, W)`` is taken as already normalised; any
    other form (path, bytes, PIL image, numpy array) is read as RGB and normalised with the
    model's mean and std.

    Raises:
        ValueError: unreadable, oversized, wrongly shaped or non-finite input.
    """
    if isinstance(image, torch.Tensor):
        x = image.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[:2] != (1, 3):
            raise ValueError(
                f"a tensor image must be a normalised (3, H, W) or (1, 3, H, W); got {tuple(image.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"a tensor image must be floating point, got {x.dtype}")
        x = x.to(torch.float32).cpu()
        if not torch.isfinite(x).all():
            raise ValueError("image tensor holds NaN or infinite values")
        h, w = x.shape[-2:]
        if h * w > limits.max_pixels:
            raise ValueError(f"image is too large: {w} x {h} pixels (limit {limits.max_pixels:,})")
        mean = torch.tensor(model.mean).view(1, 3, 1, 1)
        std = torch.tensor(model.std).view(1, 3, 1, 1)
        rgb = (x * std + mean)[0].permute(1, 2, 0).clamp(0, 1).numpy()
        return PreparedInput(tensor=x.contiguous(), rgb=rgb_to_uint8(rgb))
    rgb = load_rgb(image, limits)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    return PreparedInput(tensor=model.normalize(tensor), rgb=rgb_to_uint8(rgb))


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type != "cuda":
        raise ValueError(
            f"precision {precision!r} is only supported on CUDA; use 'fp32' on {device.type}"
        )
    return torch.autocast("cuda", dtype=dtype)


def _output_bytes(output: ScaleOutput) -> int:
    tensors = [output.logits, output.attention, output.aux_logits, output.features]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _to_float32(output: ScaleOutput) -> ScaleOutput:
    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.float()

    return ScaleOutput(
        logits=output.logits.float(),
        attention=cast(output.attention),
        aux_logits=cast(output.aux_logits),
        features=cast(output.features),
    )


def model_device(model: torch.nn.Module) -> torch.device:
    """Returns the device of the model's first parameter (CPU for a parameterless model)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def run_scales(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scales: Iterable[float],
    *,
    cache: ByteLRUCache[tuple[ScaleOutput, ScaleCost]] | None = None,
    precision: str = "fp32",
    progress: ProgressFn | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> dict[float, ScaleResult]:
    """Returns scale -> :class:`ScaleResult`: one eval-mode forward pass per scale.

    Args:
        model: the segmenter (run in eval mode, without gradients).
        image: ``(B, 3, H, W)`` normalised input at scale 1.0.
        scales: the cascade; validated (see :func:`~hmsa_core.cascade.validate_scales`).
        cache: per-scale cache keyed by image content, model identity, weights version,
            device, scale and precision; ``None`` disables caching. A hit costs no forward
            pass and returns the cached tensors themselves: treat them as read-only.
        precision: ``"fp32"``, or ``"bf16"``/``"fp16"`` autocast on CUDA. Outputs are float32.
        progress: called after each scale with ``(scale, index, total, cached)``.
        limits: cascade and size limits.
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be a (B, 3, H, W) tensor, got {tuple(image.shape)}")
    size = (int(image.shape[-2]), int(image.shape[-1]))
    cascade = validate_scales(scales, size, model.min_input_side, limits)
    device = model_device(model)
    autocast = _autocast(device, precision)
    image = image.to(device)
    digest = tensor_digest(image) if cache is not None else ""
    token = (model_token(model), weights_version(model), str(device))
    was_training = model.training
    model.eval()
    results: dict[float, ScaleResult] = {}
    try:
        for index, scale in enumerate(cascade):
            key = (digest, token, scale, precision)
            hit = cache.get(key) if cache is not None else None
            if hit is not None:
                output, cost = hit
                results[scale] = ScaleResult(scale, output, replace(cost, cached=True))
            else:
                results[scale] = _run_one(model, image, scale, autocast, device)
                if cache is not None:
                    entry = (results[scale].output, results[scale].cost)
                    cache.put(key, entry, _output_bytes(entry[0]))
            if progress is not None:
                progress(scale, index, len(cascade), hit is not None)
    finally:
        model.train(was_training)
    return results


def _run_one(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scale: float,
    autocast: contextlib.AbstractContextManager,
    device: torch.device,
) -> ScaleResult:
    """Returns the :class:`ScaleResult` of one timed forward pass at ``scale``."""
    x = rescale_input(image, scale)
    input_size = (int(x.shape[-2]), int(x.shape[-1]))
    estimate = estimate_pass(model, input_size, batch=int(x.shape[0]))
    on_cuda = device.type == "cuda"
    held_before = 0
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        held_before = int(torch.cuda.memory_allocated(device))
    start = time.perf_counter()
    with torch.no_grad(), autocast:
        output = model(x)
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if on_cuda:  # the pass's own peak plus the weights, as on CPU: not what others hold
        pass_peak = int(torch.cuda.max_memory_allocated(device)) - held_before
        peak, measured = pass_peak + estimate.param_bytes, True
    else:
        peak, measured = estimate.activation_bytes + estimate.param_bytes, False
    cost = ScaleCost(
        scale=scale,
        input_size=input_size,
        flops=estimate.flops,
        seconds=seconds,
        peak_bytes=peak,
        peak_measured=measured,
    )
    return ScaleResult(scale, _to_float32(output), cost)


def _assemble(
    per_scale: Mapping[float, ScaleResult],
    method: str,
    rgb: np.ndarray,
    labels: LabelSet,
    model: MultiScaleSegmenter | None,
    model_name: str,
    keep_attention: bool,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of merging ``per_scale`` with ``method``."""
    size = (int(rgb.shape[0]), int(rgb.shape[1]))
    merged = merge(per_scale, method, output_size=size, model=model)
    logits = merged.logits[0]
    kept = dict(per_scale)
    if not keep_attention:
        kept = {
            s: ScaleResult(s, replace(r.output, attention=None), r.cost)
            for s, r in per_scale.items()
        }
    return InferenceResult(
        scales=merged.scales,
        method=method,
        logits=logits,
        pred=logits.max(0).indices,  # = argmax(0) (first maximum), ~10x faster on CPU
        per_scale=kept,
        weights={s: w[0] for s, w in merged.weights.items()} if keep_attention else {},
        cost=CascadeCost(tuple(per_scale[s].cost for s in sorted(per_scale))),
        labels=labels,
        image=rgb,
        aux_logits=None if merged.aux_logits is None else merged.aux_logits[0],
        model_name=model_name,
    )


def infer_prepared(
    prepared: PreparedInput,
    scales: Iterable[float],
    model: MultiScaleSegmenter,
    *,
    method: str = "hierarchical",
    return_attn: bool = True,
    precision: str = "fp32",
    cache: ByteLRUCache[tuple[ScaleOutput, ScaleCost]] | None = None,
    progress: ProgressFn | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of an already prepared image (see :func:`infer`)."""
    per_scale = run_scales(
        model,
        prepared.tensor,
        scales,
        cache=cache,
        precision=precision,
        progress=progress,
        limits=limits,
    )
    return _assemble(
        per_scale, method, prepared.rgb, model.labels, model, model.arch, keep_attention=return_attn
    )
