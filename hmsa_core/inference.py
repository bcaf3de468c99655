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

import numpy as np
import torch

from hmsa_core.cache import ByteLRUCache, model_token, tensor_digest, weights_version
from hmsa_core.cascade import validate_scales
from hmsa_core.cost import ACTIVATION_SHARE, CascadeCost, PassEstimate, ScaleCost, estimate_pass
from hmsa_core.fastpath import FastPathOptions, fast_forward
from hmsa_core.fastpath import check_device as check_fast_device
from hmsa_core.folding import pass_module
from hmsa_core.gating import combine as gating_combine
from hmsa_core.gating import fill_output as gating_fill
from hmsa_core.gating import needed_tiles, rectangle_cores, remaining_envelope, tile_rectangles
from hmsa_core.images import ImageLike, load_rgb, rgb_to_uint8
from hmsa_core.labels import LabelSet
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.merge import ExplicitMerger, merge
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, rescale_input, scaled_size
from hmsa_core.modes import eval_mode
from hmsa_core.precision import RUN_DTYPES, autocast_for, resolve_precision, to_layout
from hmsa_core.tiling import Box, Window, pass_tiles, plan_tiles, run_windows, window_for_core

#: The precisions a pass can run in (``"auto"`` resolves to one of them).
PRECISIONS = RUN_DTYPES
DEFAULT_CACHE_BYTES = 1024 * 1024 * 1024
#: Tile offsets keep multiples of this many pixels unless the model says otherwise.
DEFAULT_TILE_ALIGNMENT = 32
#: A gated pass runs whole when its windows would cover at least this share of its area.
WHOLE_PASS_SHARE = 0.9

#: A per-scale cache entry: the outputs, their cost, and the ``(h, w)`` mask of computed
#: pixels (``None`` when the whole pass was computed).
CacheEntry = tuple[ScaleOutput, ScaleCost, "torch.Tensor | None"]

#: Progress callback: ``(scale, index, total, cached)`` after each scale is done.
ProgressFn = Callable[[float, int, int, bool], None]


@dataclass
class ScaleResult:
    """One scale's forward pass, its outputs at that scale's own input size.

    Attributes:
        scale: the scale.
        output: the batched :class:`ScaleOutput` (``(B, C, h, w)`` logits, ``(B, 1, h, w)`` attention).
        cost: FLOPs, seconds, peak memory, precision, computed fraction and whether it came
            from the cache.
        computed: ``(h, w)`` bool, True where the model computed this scale, False where
            attention gating skipped it (logits there are the lower scales' merge, attention
            1); ``None`` when the whole pass was computed.
    """

    scale: float
    output: ScaleOutput
    cost: ScaleCost
    computed: torch.Tensor | None = None

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

    A ``torch.Tensor`` ``(3, H, W)`` or ``(1, 3, H, W)`` is taken as already normalised and
    stays on its device (a GPU tensor is not copied to the CPU and back; only the uint8 RGB
    for display comes to the CPU); any other form (path, bytes, PIL image, numpy array) is
    read as RGB and normalised with the model's mean and std.

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
        h, w = x.shape[-2:]
        if h * w > limits.max_pixels:
            raise ValueError(f"image is too large: {w} x {h} pixels (limit {limits.max_pixels:,})")
        x = x.to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("image tensor holds NaN or infinite values")
        mean = torch.tensor(model.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(model.std, device=x.device).view(1, 3, 1, 1)
        # rgb_to_uint8's rounding, done where the tensor is: only uint8 crosses to the CPU
        rgb = ((x * std + mean).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
        rgb_np = rgb[0].permute(1, 2, 0).contiguous().cpu().numpy()
        return PreparedInput(tensor=x.contiguous(), rgb=rgb_np)
    rgb = load_rgb(image, limits)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    return PreparedInput(tensor=model.normalize(tensor), rgb=rgb_to_uint8(rgb))


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


def tile_alignment(model: MultiScaleSegmenter) -> int:
    """Returns the multiple of pixels tile offsets keep for ``model`` (its largest stride;
    32 unless the model names another as ``tile_alignment``)."""
    return int(getattr(model, "tile_alignment", DEFAULT_TILE_ALIGNMENT))


def can_tile(model: MultiScaleSegmenter) -> bool:
    """Returns True when ``model``'s passes can run in tiles (not for explicit attention,
    whose merge needs each scale's whole feature map)."""
    return not isinstance(model, ExplicitMerger)


def _check_gate(gate: float, model: MultiScaleSegmenter) -> float:
    """Returns ``gate`` as a float; ``ValueError`` unless it is in ``[0, 1)`` and usable."""
    try:
        tau = float(gate)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"gate must be a number in [0, 1), got {gate!r}") from exc
    if not (0.0 <= tau < 1.0):
        raise ValueError(f"gate must be in [0, 1) (0 turns gating off), got {gate!r}")
    if tau > 0 and not model.has_attention:
        raise ValueError(
            f"gate={tau:g} needs a model with a scale-attention head; {model.arch} has none: "
            "use gate=0"
        )
    return tau


def run_scales(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scales: Iterable[float],
    *,
    cache: ByteLRUCache[CacheEntry] | None = None,
    precision: str = "auto",
    progress: ProgressFn | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    gate: float = 0.0,
    fast_path: FastPathOptions | None = None,
    aux: bool = False,
) -> dict[float, ScaleResult]:
    """Returns scale -> :class:`ScaleResult`: one eval-mode forward pass per scale, ascending.

    Args:
        model: the segmenter (run in eval mode, without gradients).
        image: ``(B, 3, H, W)`` normalised input at scale 1.0.
        scales: the cascade; validated (see :func:`~hmsa_core.cascade.validate_scales`).
        cache: per-scale cache keyed by image content, model identity, weights version,
            device, scale, the precision that actually ran, the tiling and the gate;
            ``None`` disables caching. A hit costs no forward pass and returns the cached
            tensors themselves: treat them as read-only.
        precision: ``"auto"`` (bf16 + channels-last where the hardware computes bf16 natively,
            else fp32; see :mod:`hmsa_core.precision`), ``"fp32"`` (exact), ``"bf16"`` (CUDA or a
            CPU with native bf16) or ``"fp16"`` (CUDA). Outputs are float32 either way.
        progress: called after each scale with ``(scale, index, total, cached)``.
        limits: cascade and size limits, and the tiling settings (``max_tile_pixels``,
            ``tile_overlap``, ``gate_tile``).
        gate: attention gating threshold ``tau`` in ``[0, 1)`` (see :mod:`hmsa_core.gating`):
            each scale above the lowest runs only on the tiles where the lower scales leave it
            a weight above ``tau``. 0 (default) runs every pass whole, exactly as ungated.
        fast_path: the opt-in GPU fast path for small, launch-bound passes (CUDA only; see
            :mod:`hmsa_core.fastpath`); ``None`` (default) runs every pass eager.
        aux: keep the auxiliary (OCR soft object region) logits of models that have them.
            ``False`` (default) drops them as each pass ends: HMSA's prediction does not use
            them, and at scale 2.0 they would hold as much memory as the logits themselves.
    """
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be a (B, 3, H, W) tensor, got {tuple(image.shape)}")
    size = (int(image.shape[-2]), int(image.shape[-1]))
    cascade = validate_scales(scales, size, model.min_input_side, limits)
    tau = _check_gate(gate, model)
    device = model_device(model)
    ran = resolve_precision(precision, device)
    if fast_path is not None:
        check_fast_device(device)
    setup = _PassSetup(
        precision=ran,
        device=device,
        tiled=can_tile(model),
        align=tile_alignment(model),
        limits=limits,
        num_scales=len(cascade),
        fast=fast_path,
        keep_aux=aux,
        runner=pass_module(model, RUN_DTYPES[ran]),
    )
    image = image.to(device)
    digest = tensor_digest(image) if cache is not None else ""
    # The token reads every weight's version counter: only worth it when there is a cache.
    token = (model_token(model), weights_version(model), str(device)) if cache is not None else ()
    results: dict[float, ScaleResult] = {}
    with eval_mode(model):
        for index, scale in enumerate(cascade):
            gated = tau > 0 and index > 0
            lower = tuple(cascade[:index]) if gated else ()
            key = (
                digest,
                token,
                scale,
                ran,
                setup.tile_key(size, scale),
                tau if gated else 0.0,
                lower,
                fast_path,
                aux and model.has_aux,
            )
            hit = cache.get(key) if cache is not None else None
            if hit is not None:
                output, cost, computed = hit
                results[scale] = ScaleResult(scale, output, replace(cost, cached=True), computed)
            else:
                if gated:
                    results[scale] = _run_gated(model, image, scale, results, tau, setup)
                else:
                    results[scale] = _run_one(model, image, scale, setup)
                if cache is not None:
                    r = results[scale]
                    cache.put(key, (r.output, r.cost, r.computed), _output_bytes(r.output))
            if progress is not None:
                progress(scale, index, len(cascade), hit is not None)
    return results


@dataclass(frozen=True)
class _PassSetup:
    """How every pass of one :func:`run_scales` call runs."""

    precision: str
    device: torch.device
    tiled: bool
    align: int
    limits: InputLimits
    num_scales: int
    fast: FastPathOptions | None = None
    keep_aux: bool = False
    runner: torch.nn.Module | None = None

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_for(self.device, self.precision)

    def windows(self, size: tuple[int, int]) -> tuple[Window, ...] | None:
        """Returns the tiles of a pass at ``size``, or ``None`` when it runs whole."""
        if not self.tiled:
            return None
        return pass_tiles(size, self.limits, self.device.type, self.align)

    @property
    def tile_budget(self) -> int:
        """Returns the largest input area one pass runs on, on this setup's device."""
        return self.limits.tile_pixels(self.device.type)

    def tile_key(self, size: tuple[int, int], scale: float) -> tuple[int, int] | None:
        """Returns the part of the cache key that says how the pass at ``scale`` was tiled."""
        scaled = scaled_size(size, scale)
        if self.windows(scaled) is None:
            return None
        return (self.tile_budget, self.limits.tile_overlap)


def _forward(
    model: MultiScaleSegmenter, setup: _PassSetup
) -> Callable[[torch.Tensor], ScaleOutput]:
    """Returns the function running one no-grad pass in the setup's precision and layout
    (reduced precision runs on the model's BatchNorm-folded copy, see :mod:`hmsa_core.folding`;
    :func:`run_scales` looks it up once per call, as ``setup.runner``)."""
    runner = (
        setup.runner
        if setup.runner is not None
        else pass_module(model, RUN_DTYPES[setup.precision])
    )

    def run(x: torch.Tensor) -> ScaleOutput:
        fast = setup.fast
        if fast is not None and x.shape[-2] * x.shape[-1] <= fast.small_pixels:
            return fast_forward(runner, fast, setup.precision)(x)
        with torch.no_grad(), setup.autocast:
            return runner(to_layout(x, setup.precision))

    def forward(x: torch.Tensor) -> ScaleOutput:
        output = run(x)
        if setup.keep_aux or output.aux_logits is None:
            return output
        return replace(output, aux_logits=None)

    return forward


def _timed(
    setup: _PassSetup, work: Callable[[], ScaleOutput]
) -> tuple[ScaleOutput, float, int | None]:
    """Returns ``(output, seconds, cuda_peak_bytes or None)`` of running ``work``."""
    device = setup.device
    on_cuda = device.type == "cuda"
    held_before = 0
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        held_before = int(torch.cuda.memory_allocated(device))
    start = time.perf_counter()
    output = work()
    if on_cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = int(torch.cuda.max_memory_allocated(device)) - held_before if on_cuda else None
    return output, seconds, peak


def _pass_cost(
    scale: float,
    size: tuple[int, int],
    estimate: PassEstimate,
    setup: _PassSetup,
    seconds: float,
    cuda_peak: int | None,
    windows: tuple[Window, ...] | None,
    computed_fraction: float = 1.0,
    saved: bool = False,
) -> ScaleCost:
    """Returns the :class:`ScaleCost` of a pass run whole (``windows`` None) or in windows.

    FLOPs of windows are the whole pass's counted FLOPs scaled by the windows' total area
    (the models' cost is linear in area); ``saved`` reports the difference as saved."""
    full_area = size[0] * size[1]
    if windows is None:
        flops, largest = estimate.flops, full_area
    else:
        area = sum(w.area for w in windows)
        flops = round(estimate.flops * area / full_area)
        largest = max((w.area for w in windows), default=0)
    if cuda_peak is not None:  # the pass's own peak plus the weights, as on CPU
        peak, measured = cuda_peak + estimate.param_bytes, True
    else:
        activations = estimate.activation_bytes * largest / full_area
        peak = round(activations * ACTIVATION_SHARE[setup.precision]) + estimate.param_bytes
        measured = False
    return ScaleCost(
        scale=scale,
        input_size=size,
        flops=flops,
        seconds=seconds,
        peak_bytes=peak,
        peak_measured=measured,
        precision=setup.precision,
        computed_fraction=computed_fraction,
        flops_saved=max(0, estimate.flops - flops) if saved else 0,
    )


def _run_one(
    model: MultiScaleSegmenter, image: torch.Tensor, scale: float, setup: _PassSetup
) -> ScaleResult:
    """Returns the :class:`ScaleResult` of one timed forward pass at ``scale``: whole, or in
    blended tiles when its input exceeds ``limits.max_tile_pixels``."""
    x = rescale_input(image, scale)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    estimate = estimate_pass(model, size, batch=int(x.shape[0]))
    forward = _forward(model, setup)
    windows = setup.windows(size)
    if windows is None:
        output, seconds, cuda_peak = _timed(setup, lambda: forward(x))
    else:
        overlap = setup.limits.tile_overlap
        output, seconds, cuda_peak = _timed(
            setup, lambda: run_windows(forward, x, windows, overlap).output
        )
    cost = _pass_cost(scale, size, estimate, setup, seconds, cuda_peak, windows)
    return ScaleResult(scale, _to_float32(output), cost)


def _gated_windows(
    cores: list[Box], size: tuple[int, int], setup: _PassSetup
) -> tuple[Window, ...]:
    """Returns the windows that compute ``cores`` (each split further when its window would
    exceed ``limits.max_tile_pixels``)."""
    overlap, budget = setup.limits.tile_overlap, setup.tile_budget
    windows: list[Window] = []
    for top, bottom, left, right in cores:
        window = window_for_core((top, bottom, left, right), size, overlap)
        if window.area <= budget:
            windows.append(window)
            continue
        for part in plan_tiles((bottom - top, right - left), budget, overlap, setup.align):
            ct, cb, cl, cr = part.core
            windows.append(
                window_for_core((ct + top, cb + top, cl + left, cr + left), size, overlap)
            )
    return tuple(windows)


def _run_gated(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scale: float,
    lower: Mapping[float, ScaleResult],
    tau: float,
    setup: _PassSetup,
) -> ScaleResult:
    """Returns the :class:`ScaleResult` of the pass at ``scale`` run only on the tiles where
    the ``lower`` scales leave it a weight above ``tau`` (see :mod:`hmsa_core.gating`); the
    other tiles hold the lower scales' merge (logits) and 1 (attention)."""
    x = rescale_input(image, scale)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    estimate = estimate_pass(model, size, batch=int(x.shape[0]))
    tile = setup.limits.gate_tile
    lower_outputs = {s: r.output for s, r in lower.items()}
    for s, out in lower_outputs.items():
        if out.attention is None:
            raise ValueError(f"scale {s:g} has no attention map: gating needs a gate of 0")
    start = time.perf_counter()
    envelope = remaining_envelope(
        {s: o.attention for s, o in lower_outputs.items()},  # type: ignore[misc]
        size,
        setup.num_scales,
    )
    needed = needed_tiles(envelope, tile, tau)
    gate_seconds = time.perf_counter() - start
    if bool(needed.all()):
        result = _run_one(model, image, scale, setup)
        return replace(
            result, cost=replace(result.cost, seconds=result.cost.seconds + gate_seconds)
        )
    cores = rectangle_cores(tile_rectangles(needed), tile, size)
    windows = _gated_windows(cores, size, setup)
    full_area = size[0] * size[1]
    if sum(w.area for w in windows) >= WHOLE_PASS_SHARE * full_area:
        result = _run_one(model, image, scale, setup)  # windows would cost as much as the pass
        return replace(
            result, cost=replace(result.cost, seconds=result.cost.seconds + gate_seconds)
        )
    forward = _forward(model, setup)
    overlap = setup.limits.tile_overlap

    covered = torch.zeros(size, dtype=torch.bool, device=x.device)

    def work() -> ScaleOutput:
        nonlocal covered
        fill = gating_fill(lower_outputs, size)
        if not windows:
            return fill
        blended = run_windows(forward, x, windows, overlap)
        covered = blended.covered
        return gating_combine(blended.output, blended.covered, fill)

    output, seconds, cuda_peak = _timed(setup, work)
    fraction = float(covered.float().mean())
    cost = _pass_cost(
        scale,
        size,
        estimate,
        setup,
        seconds + gate_seconds,
        cuda_peak,
        windows,
        computed_fraction=fraction,
        saved=True,
    )
    return ScaleResult(scale, _to_float32(output), cost, covered.cpu())


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
            s: ScaleResult(s, replace(r.output, attention=None), r.cost, r.computed)
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
    precision: str = "auto",
    cache: ByteLRUCache[CacheEntry] | None = None,
    progress: ProgressFn | None = None,
    limits: InputLimits = DEFAULT_LIMITS,
    gate: float = 0.0,
    fast_path: FastPathOptions | None = None,
    aux: bool = False,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of an already prepared image (see :func:`infer`).

    Raises:
        ValueError: as :func:`run_scales`; also a ``gate`` above 0 with a method other than
            ``"hierarchical"`` (gating is defined by the hierarchical merge).
    """
    tau = _check_gate(gate, model)
    if tau > 0 and method != "hierarchical":
        raise ValueError(
            f"gate={tau:g} applies to the hierarchical merge only; use gate=0 with {method!r}"
        )
    per_scale = run_scales(
        model,
        prepared.tensor,
        scales,
        cache=cache,
        precision=precision,
        progress=progress,
        limits=limits,
        gate=tau,
        fast_path=fast_path,
        aux=aux,
    )
    return _assemble(
        per_scale, method, prepared.rgb, model.labels, model, model.arch, keep_attention=return_attn
    )
