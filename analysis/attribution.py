"""Attributions with captum: which input pixels drove a class logit or a scale's attention.

The target is a scalar of one scale's forward pass: the summed logit of a class, or the summed
attention map, over a set of pixels (a region, narrowed to the pixels that scale predicts as the
class when there are any). It is attributed to the input pixels at the 1.0 input with Integrated
Gradients or Layer Grad-CAM. The work runs on a copy downsized to ``max_side`` (bounding the
cost); the map is resized back (bilinear) so it always has the input's ``(H, W)``.

The hierarchical merge starts from the largest scale of a cascade and never uses that scale's
attention; :func:`attention_scales` names the scales whose attention it does use.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import plotly.graph_objects as go
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from plotly.subplots import make_subplots
from torch import nn

from analysis.figures import HEATMAP_SIDE, attention_scales, image_trace, style_image_axes
from hmsa_core.images import ImageLike, fit_max_side, rgb_to_uint8
from hmsa_core.inference import model_device, prepare_input
from hmsa_core.models.base import MultiScaleSegmenter, rescale_input, resize
from hmsa_core.modes import eval_mode

__all__ = [
    "METHODS",
    "TARGETS",
    "Attribution",
    "attention_scales",
    "attribute",
    "attribution_figure",
    "default_layer",
]

Target = Literal["logits", "attention"]
Method = Literal["integrated_gradients", "grad_cam"]
TARGETS: tuple[str, ...] = ("logits", "attention")
METHODS: tuple[str, ...] = ("integrated_gradients", "grad_cam")

#: Grad-CAM layer per architecture: the features both the classifier and the attention head read.
DEFAULT_LAYERS: dict[str, str] = {
    "lite": "trunk.fuse",
    "explicit_lite": "trunk.fuse",
    "hrnet48_ocr_mscale": "ocr.ocr_distri_head",
}


@dataclass(frozen=True)
class Attribution:
    """An attribution map over the input pixels.

    Attributes:
        map: ``(H, W)`` float32 attribution at the input's resolution: Integrated Gradients
            summed over RGB (signed), or Grad-CAM (>= 0). Computed at :attr:`working_size` and
            resized bilinearly to ``(H, W)`` when the input was downsized (Integrated Gradients
            values are then per working pixel: the map sums to about
            ``H * W / (h * w)`` times the attributed difference).
        method: ``"integrated_gradients"`` or ``"grad_cam"``.
        target: ``"logits"`` or ``"attention"``.
        scale: the scale whose forward pass was attributed.
        target_class: the class whose logit (or whose pixels' attention) was summed.
        input_rgb: ``(H, W, 3)`` uint8 input the map belongs to.
        region: ``(x0, y0, x1, y1)`` of the summed pixels in ``input_rgb`` coordinates.
        class_pixels: pixels of the region the scale predicts as ``target_class``, counted at
            the working size (0: the whole region was summed).
        layer: the Grad-CAM layer name (empty for Integrated Gradients).
        seconds: wall time of the attribution.
        working_size: ``(h, w)`` the attribution was computed at (the input fitted to
            ``max_side``; equal to ``(H, W)`` when it already fitted).
    """

    map: np.ndarray
    method: str
    target: str
    scale: float
    target_class: int
    input_rgb: np.ndarray
    region: tuple[int, int, int, int] = (0, 0, 0, 0)
    class_pixels: int = 0
    layer: str = ""
    seconds: float = 0.0
    working_size: tuple[int, int] = (0, 0)


def default_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """Returns ``(name, module)`` of the Grad-CAM layer: the known one for the architecture,
    else the last ``Conv2d`` of the model.

    Raises:
        ValueError: the model has no Conv2d.
    """
    name = DEFAULT_LAYERS.get(getattr(model, "arch", ""), "")
    if name:
        try:
            return name, model.get_submodule(name)
        except AttributeError:
            pass
    last: tuple[str, nn.Module] | None = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            last = (module_name, module)
    if last is None:
        raise ValueError("the model has no Conv2d layer for Grad-CAM; pass layer=...")
    return last


def _resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> tuple[str, nn.Module]:
    if layer is None:
        return default_layer(model)
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError("the Grad-CAM layer given is not a module of this model")
    try:
        return layer, model.get_submodule(layer)
    except AttributeError as exc:
        raise ValueError(f"the model has no layer named {layer!r}") from exc


def _check_region(
    region: tuple[int, int, int, int] | None, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Returns ``region`` ``(x0, y0, x1, y1)`` clipped to an image of ``size`` ``(H, W)``
    (outward to whole pixels), or the whole image for ``None``.

    Raises:
        ValueError: not four numbers, or no pixel of the image inside.
    """
    h, w = size
    if region is None:
        return 0, 0, w, h
    if len(region) != 4:
        raise ValueError(f"region must be (x0, y0, x1, y1), got {region!r}")
    x0, y0, x1, y1 = (float(v) for v in region)
    box = (
        max(0, math.floor(x0)),
        max(0, math.floor(y0)),
        min(w, math.ceil(x1)),
        min(h, math.ceil(y1)),
    )
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(
            f"region {tuple(region)} holds no pixel of the image (x0 < x1, y0 < y1 needed)"
        )
    return box


def _scale_box(
    box: tuple[int, int, int, int], size: tuple[int, int], working: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Returns the non-empty box of ``working`` ``(h, w)`` pixels covering ``box`` of an image
    of ``size`` ``(H, W)`` (outward rounding)."""
    fy, fx = working[0] / size[0], working[1] / size[1]
    x0, y0, x1, y1 = box
    return (
        min(working[1] - 1, math.floor(x0 * fx)),
        min(working[0] - 1, math.floor(y0 * fy)),
        max(1, min(working[1], math.ceil(x1 * fx))),
        max(1, min(working[0], math.ceil(y1 * fy))),
    )


def _to_size(values: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Returns an ``(h, w)`` map as a finite float32 ``(H, W)`` array, resized bilinearly."""
    out = resize(values.detach().float()[None, None], size)[0, 0].cpu().numpy()
    return np.nan_to_num(out.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _scale_output(
    model: MultiScaleSegmenter,
    x: torch.Tensor,
    scale: float,
    target: str,
    channel: int | None = None,
) -> torch.Tensor:
    """Returns the ``(B, C, H, W)`` logits (``(B, 1, H, W)`` with ``channel``) or the
    ``(B, 1, H, W)`` attention of ``scale``'s pass, resized to the size of ``x``."""
    out = model(rescale_input(x, scale))
    size = (int(x.shape[-2]), int(x.shape[-1]))
    if target == "attention":
        if out.attention is None:
            raise ValueError(
                f"{model.arch} has no scale-attention head: attribute 'logits' instead"
            )
        return resize(out.attention, size)
    logits = out.logits if channel is None else out.logits[:, channel : channel + 1]
    return resize(logits, size)


def attribute(
    model: MultiScaleSegmenter,
    image: ImageLike,
    *,
    scale: float,
    target_class: int,
    target: Target = "logits",
    method: Method = "integrated_gradients",
    region: tuple[int, int, int, int] | None = None,
    steps: int = 16,
    max_side: int = 512,
    progress: Callable[[float], None] | None = None,
    layer: str | nn.Module | None = None,
    internal_batch_size: int = 4,
) -> Attribution:
    """Returns the :class:`Attribution` of one scale's class logit or attention to the input.

    The attributed scalar is, at ``scale``'s forward pass resized to the input size, the sum of
    ``target_class``'s logit (``target="logits"``) or of the attention (``target="attention"``)
    over the pixels of ``region`` that the scale predicts as ``target_class``; over the whole
    region when it predicts none there.

    Args:
        model: the segmenter (its mode is restored afterwards; gradients flow to the input only).
        image: anything :func:`hmsa_core.infer` accepts.
        scale: the scale whose pass is attributed (the input is resized by it, as in inference).
        target_class: class id in ``0..C-1``.
        target: ``"logits"`` or ``"attention"``.
        method: ``"integrated_gradients"`` (black baseline in normalised space: the mean colour,
            ``steps`` steps) or ``"grad_cam"`` (Layer Grad-CAM on ``layer``).
        region: ``(x0, y0, x1, y1)`` in the original image's pixels (end exclusive); ``None``:
            the whole image.
        steps: Integrated Gradients steps (cost grows linearly).
        max_side: the work runs on the input downsized so its long side is at most this
            (bounds the cost); the map is resized back to the input's size.
        progress: called with a fraction in [0, 1] as the work advances.
        layer: Grad-CAM layer name or module (default: :func:`default_layer`).
        internal_batch_size: Integrated Gradients batch per forward pass.

    Raises:
        ValueError: unknown target or method, class out of range, bad scale, steps or region, a
            model without attention asked for ``"attention"``.
    """
    start = time.perf_counter()
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0 <= int(target_class) < model.num_classes:
        raise ValueError(f"target_class must lie in 0..{model.num_classes - 1}, got {target_class}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if target == "attention" and not model.has_attention:
        raise ValueError(f"{model.arch} has no scale-attention head: attribute 'logits' instead")
    report = progress or (lambda _fraction: None)

    prepared = prepare_input(image, model)
    full = prepared.size
    rgb = fit_max_side(prepared.rgb, max_side)
    rgb_u8 = rgb if rgb.dtype == np.uint8 else rgb_to_uint8(rgb)
    h, w = rgb_u8.shape[:2]
    small = min(h * float(scale), w * float(scale))
    if small < model.min_input_side:
        raise ValueError(
            f"scale {scale:g} of a {w} x {h} input is under the model's minimum side of "
            f"{model.min_input_side} pixels; raise max_side or the scale"
        )
    region_box = _check_region(region, full)
    box = _scale_box(region_box, full, (h, w))

    device = model_device(model)
    x = torch.from_numpy(rgb_u8).permute(2, 0, 1)[None].float().div(255.0).to(device)
    x = model.normalize(x)
    with eval_mode(model):
        with torch.no_grad():
            logits = _scale_output(model, x, scale, "logits")
        selection = torch.zeros((1, 1, h, w), device=device)
        selection[..., box[1] : box[3], box[0] : box[2]] = 1.0
        predicted = (logits.argmax(1, keepdim=True) == int(target_class)).float() * selection
        class_pixels = int(predicted.sum().item())
        if class_pixels > 0:
            selection = predicted
        report(0.1)

        channel = int(target_class) if target == "logits" else 0
        calls = {"n": 0}
        expected = max(1, math.ceil(steps / max(1, internal_batch_size)))

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            """Returns the ``(B,)`` summed target of a batch of normalised inputs."""
            maps = _scale_output(model, inputs, scale, target, channel)
            calls["n"] += 1
            if method == "integrated_gradients":
                report(0.1 + 0.85 * min(1.0, calls["n"] / expected))
            return (maps * selection).sum(dim=(1, 2, 3))

        layer_name = ""
        if method == "integrated_gradients":
            ig = IntegratedGradients(forward)
            attr = ig.attribute(
                x,
                baselines=torch.zeros_like(x),
                n_steps=int(steps),
                internal_batch_size=max(1, int(internal_batch_size)),
            )
            result = attr.sum(dim=1)[0]
        else:
            layer_name, module = _resolve_layer(model, layer)
            cam = LayerGradCam(forward, module)
            attr = cam.attribute(x, relu_attributions=True)
            report(0.8)
            if attr.dim() != 4:
                raise ValueError(f"layer {layer_name!r} does not output (B, C, h, w) maps")
            result = LayerAttribution.interpolate(attr, (h, w), interpolate_mode="bilinear")[0, 0]
    out = _to_size(result, full)
    report(1.0)
    return Attribution(
        map=out,
        method=method,
        target=target,
        scale=float(scale),
        target_class=int(target_class),
        input_rgb=prepared.rgb,
        region=region_box,
        class_pixels=class_pixels,
        layer=layer_name,
        seconds=time.perf_counter() - start,
        working_size=(h, w),
    )


def attribution_figure(
    attr: Attribution, class_name: str | None = None, opacity: float = 0.6
) -> go.Figure:
    """Returns the input (left) and the input with the attribution heatmap overlaid (right);
    Integrated Gradients on a diverging scale centred on 0, Grad-CAM on a sequential one; the
    summed region outlined."""
    h, w = attr.map.shape
    what = class_name or f"class {attr.target_class}"
    target = f"{what} logit" if attr.target == "logits" else f"attention on {what} pixels"
    method = (
        "Integrated Gradients"
        if attr.method == "integrated_gradients"
        else f"Grad-CAM ({attr.layer})"
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("input", f"{method}: {target} @ scale {attr.scale:g}"),
        horizontal_spacing=0.03,
    )
    fig.add_trace(image_trace(attr.input_rgb, name="input"), 1, 1)
    fig.add_trace(image_trace(attr.input_rgb, name="input"), 1, 2)
    step = max(1, math.ceil(max(h, w) / (2 * HEATMAP_SIDE)))
    values = attr.map[::step, ::step]
    if attr.method == "integrated_gradients":
        bound = float(np.max(np.abs(values))) or 1.0
        colors = {"colorscale": "RdBu_r", "zmin": -bound, "zmax": bound, "zmid": 0.0}
    else:
        colors = {"colorscale": "Inferno", "zmin": 0.0, "zmax": float(values.max()) or 1.0}
    fig.add_trace(
        go.Heatmap(
            z=values, x0=0, dx=step, y0=0, dy=step, opacity=opacity, name="attribution",
            hovertemplate="x %{x}, y %{y}<br>attribution %{z:.3g}<extra></extra>",
            colorbar={"title": "attribution"}, **colors,
        ),
        1,
        2,
    )  # fmt: skip
    x0, y0, x1, y1 = attr.region
    if (x0, y0, x1, y1) != (0, 0, w, h) and x1 > x0:
        fig.add_shape(
            type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
            line={"color": "cyan", "width": 2}, row=1, col=2,
        )  # fmt: skip
    style_image_axes(fig)
    fig.update_layout(
        height=int(min(900, max(300, 80 + 520 * h / max(w, 1)))),
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        title=f"{attr.seconds:.2f} s; {attr.class_pixels:,} pixel(s) of {what} summed"
        if attr.class_pixels
        else f"{attr.seconds:.2f} s; {what} not predicted in the region: whole region summed",
    )
    return fig
