"""The Gradio page's sections: the components of each part of the page, built in its place.

:func:`controls_column` builds the inputs (uploads, cascade, model, speed controls),
:func:`results_column` the outputs (summary, slider, overlay, gallery and the result tabs),
:func:`api_row` the hidden components of the ``/segment`` endpoint. Each returns a small
dataclass naming its components; :mod:`app.gradio_app` wires events between them. A new
section (a tab, an output) is built by its own function and wired by its own call in
``build_app``: a page input is a :class:`~app.gradio_parts.handlers.PageRequest` field and an
entry of :attr:`Controls.inputs`; an output of ``/analyse`` is a name in
:data:`~app.gradio_parts.handlers.ANALYSIS_OUTPUTS` and an entry of :attr:`Results.outputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gradio as gr

from app import common
from app.gradio_parts.first_visit import sample_examples
from app.gradio_parts.handlers import ANALYSIS_OUTPUTS, PAGE_FIELDS, Handlers
from app.gradio_parts.views import color_map
from hmsa_core.gating import GATE_CRITERIA
from hmsa_core.labels import CITYSCAPES

Component = gr.components.Component


@dataclass
class Controls:
    """The input column.

    Attributes:
        inputs: :class:`~app.gradio_parts.handlers.PageRequest` field -> its component.
        image_preview: read-only preview of the uploaded image.
        mask_preview: read-only preview of the uploaded mask.
        memory: the expected-cost line.
        about: the model's description.
        run: the Segment button.
        examples: the samples table (``None`` without samples).
    """

    inputs: dict[str, Component]
    image_preview: gr.Image
    mask_preview: gr.Image
    memory: gr.Markdown
    about: gr.Markdown
    run: gr.Button
    examples: gr.Examples | None

    def request(self, names: Sequence[str] = PAGE_FIELDS) -> list[Component]:
        """Returns the components of the request fields ``names`` (default: all), in order."""
        return [self.inputs[name] for name in names]


@dataclass
class Results:
    """The output column.

    Attributes:
        outputs: :data:`~app.gradio_parts.handlers.ANALYSIS_OUTPUTS` name -> its component.
        arrays_button: the "Prepare arrays" button.
        arrays_file: the ``.npz`` it fills.
    """

    outputs: dict[str, Component]
    arrays_button: gr.Button
    arrays_file: gr.File

    def analysis(self) -> list[Component]:
        """Returns the output components of ``/analyse`` in
        :data:`~app.gradio_parts.handlers.ANALYSIS_OUTPUTS` order."""
        return [self.outputs[name] for name in ANALYSIS_OUTPUTS]


@dataclass
class ApiRow:
    """The hidden inputs and outputs of the ``/segment`` endpoint (its parameter names are the
    labels of ``inputs``)."""

    inputs: list[Component]
    outputs: list[Component]
    button: gr.Button


def upload_with_preview(
    label: str, types: tuple[str, ...], name: str, height: int
) -> tuple[gr.File, gr.Image]:
    """Returns ``(file upload, read-only preview)`` for one input file.

    The upload is a ``gr.File`` (Gradio stores the bytes and decodes nothing), so every file
    reaches the app's own readers, which refuse bad ones with a message; the preview shows what
    those readers made of it. Elements are ``#input-<name>`` and ``#<name>-preview``.
    """
    upload = gr.File(
        label=label,
        file_types=[f".{t}" for t in types],
        file_count="single",
        height=110,
        elem_id=f"input-{name}",
    )
    preview = gr.Image(
        label=f"{name.capitalize()} preview",
        interactive=False,
        format="png",
        height=height,
        elem_id=f"{name}-preview",
    )
    return upload, preview


def cascade_controls() -> dict[str, Component]:
    """Returns the cascade inputs: ``scales`` (ticked scales) and ``extra_scales`` (text)."""
    scales = gr.CheckboxGroup(
        [(f"{s:g}", s) for s in common.SCALE_CHOICES],
        value=list(common.DEFAULT_CASCADE),
        label="Scale cascade",
        elem_id="scales",
    )
    extra = gr.Textbox(label="Other scales (optional)", placeholder="e.g. 0.33, 3", max_lines=1)
    return {"scales": scales, "extra_scales": extra}


def model_controls(handlers: Handlers, first: str | None) -> dict[str, Component]:
    """Returns the ``model_name`` menu (``first`` selected) and the ``method`` menu, in a row."""
    with gr.Row():
        model = gr.Dropdown(
            handlers.model_choices(), value=first, label="Model", scale=3, elem_id="model"
        )
        method = gr.Dropdown(
            ["hierarchical", "mean", "max"], value="hierarchical", label="Merge method", scale=2
        )
    return {"model_name": model, "method": method}


def speed_controls() -> dict[str, Component]:
    """Returns the inputs that trade exactness or size for speed: ``max_side``, ``precision``,
    ``gate``, its criterion ``gate_by`` (DESIGN 1.8) and ``flip`` (flip testing: more
    accuracy for twice the passes)."""
    max_side = gr.Slider(
        128,
        2048,
        value=min(512, common.DEFAULT_MAX_SIDE),
        step=32,
        label="Maximum image side (px)",
        info="larger images are shrunk first; 2.0 then runs at twice this",
    )
    with gr.Row():
        precision = gr.Radio(
            ["auto", "fp32"],
            value="auto",
            label="Precision",
            info="auto: bfloat16 + channels-last where the hardware has it; fp32: exact",
            elem_id="precision",
        )
        gate = gr.Slider(
            0.0,
            0.5,
            value=0.0,
            step=0.01,
            label="Attention gate",
            info="skip tiles of a scale that the lower scales leave at most this weight "
            "(hierarchical only; 0: exact)",
            elem_id="gate",
        )
    gate_by = gr.Radio(
        list(GATE_CRITERIA),
        value="bound",
        label="Gate criterion",
        info="bound: exact up to a proven bound; attention: skip where the lower scales leave "
        "at most the gate on all but 5% of a tile; confidence: where their merge is at least "
        "1 - gate sure (both approximate)",
        elem_id="gate-by",
    )
    flip = gr.Checkbox(
        value=False,
        label="Flip: also run the mirrored image and average (twice the passes)",
        elem_id="flip",
    )
    return {
        "max_side": max_side,
        "precision": precision,
        "gate": gate,
        "flip": flip,
        "gate_by": gate_by,
    }


def controls_column(handlers: Handlers, samples: Sequence[common.Sample]) -> Controls:
    """Builds the input column in the current layout context and returns its components."""
    names = handlers.model_names()
    first = names[0] if names else None
    with gr.Column(scale=2, min_width=320):
        image, image_preview = upload_with_preview(
            "Image (PNG, JPEG, WebP or TIFF)", common.IMAGE_TYPES, "image", 240
        )
        mask, mask_preview = upload_with_preview(
            "Ground-truth mask (optional: class ids, e.g. a palette PNG)",
            common.MASK_TYPES,
            "mask",
            140,
        )
        inputs: dict[str, Component] = {"image": image, "mask": mask}
        inputs |= cascade_controls()
        inputs |= model_controls(handlers, first)
        inputs |= speed_controls()
        memory = gr.Markdown("Expected cost: pick an image first.", elem_id="memory")
        about = gr.Markdown(handlers.describe(first))
        run = gr.Button("Segment", variant="primary", elem_id="run")
        examples = sample_examples(samples, image, mask) if samples else None
    missing = [name for name in PAGE_FIELDS if name not in inputs]
    if missing:
        raise ValueError(f"the page has no control for request fields {missing}")
    return Controls(inputs, image_preview, mask_preview, memory, about, run, examples)


def result_tabs() -> tuple[dict[str, Component], gr.Button, gr.File]:
    """Builds the result tabs (method comparison, per-class IoU, compute cost, confidence,
    downloads); returns ``(their analysis outputs by name, arrays button, arrays file)``."""
    with gr.Tabs():
        with gr.Tab("Method comparison"):
            comparison_plot = gr.Plot(show_label=False)
        with gr.Tab("Per-class IoU"):
            iou_table = gr.Dataframe(label="IoU per class and method", wrap=True)
            iou_plot = gr.Plot(show_label=False)
        with gr.Tab("Compute cost"):
            cost_table = gr.Dataframe(label="Per-scale cost")
            cost_plot = gr.Plot(show_label=False)
        with gr.Tab("Confidence"):
            confidence = gr.Image(
                label="Confidence of the merged prediction: top softmax probability per pixel "
                "(dark 0 to bright 1; low along boundaries and on unsure classes)",
                format="png",
                interactive=False,
                elem_id="confidence",
            )
        with gr.Tab("Downloads"):
            downloads = gr.File(
                label="Mask PNG (pixel value = class id) and metrics (.json)",
                file_count="multiple",
            )
            arrays_button = gr.Button("Prepare arrays (.npz)", size="sm")
            arrays_file = gr.File(label="Merged and per-scale logits, attention and weights (.npz)")
    outputs: dict[str, Component] = {
        "comparison_plot": comparison_plot,
        "iou_table": iou_table,
        "iou_plot": iou_plot,
        "cost_table": cost_table,
        "cost_plot": cost_plot,
        "downloads": downloads,
        "confidence": confidence,
    }
    return outputs, arrays_button, arrays_file


def results_column(has_samples: bool) -> Results:
    """Builds the output column in the current layout context and returns its components
    (the summary says a sample is being computed when ``has_samples``)."""
    with gr.Column(scale=3, min_width=400):
        summary = gr.Markdown(
            "Computing a sample for you…"
            if has_samples
            else "Pick an image and press **Segment**.",
            elem_id="summary",
        )
        slider = gr.ImageSlider(
            label="Before / after: drag to compare the input with the prediction",
            format="png",
            interactive=False,
            max_height=520,
            elem_id="before-after",
        )
        class_toggles = gr.CheckboxGroup(
            [], label="Classes on the overlay (untick to hide)", elem_id="class-toggles"
        )
        held = gr.State()
        overlay = gr.AnnotatedImage(
            label="Merged prediction (hover a class in the legend)",
            color_map=color_map(CITYSCAPES),
            elem_id="overlay",
        )
        gallery = gr.Gallery(
            label="Per scale: prediction · attention · effective weight",
            columns=3,
            height=760,
            format="png",
            object_fit="contain",
            elem_id="scale-gallery",
        )
        tabs, arrays_button, arrays_file = result_tabs()
    outputs: dict[str, Component] = {
        "summary": summary,
        "slider": slider,
        "class_toggles": class_toggles,
        "held": held,
        "overlay": overlay,
        "gallery": gallery,
        **tabs,
    }
    missing = [name for name in ANALYSIS_OUTPUTS if name not in outputs]
    if missing:
        raise ValueError(f"the page has no component for analysis outputs {missing}")
    return Results(outputs, arrays_button, arrays_file)


def image_page(handlers: Handlers, samples: Sequence[common.Sample]) -> tuple[Controls, Results]:
    """Builds the "Image" tab (inputs beside results) in the current ``gr.Tabs`` and returns
    its ``(controls, results)``."""
    with gr.Tab("Image", elem_id="image-page"), gr.Row():
        controls = controls_column(handlers, samples)
        results = results_column(bool(samples))
    return controls, results


def api_row() -> ApiRow:
    """Builds the hidden row of the ``/segment`` endpoint's inputs (``image, scales, method,
    model, mask, max_side, arrays, flip, gate, gate_by``) and outputs (``mask_png, data, scale_maps_npz``)."""
    with gr.Row(visible=False):
        inputs: list[Component] = [
            gr.File(label="image", type="filepath"),
            gr.JSON(label="scales", value=list(common.DEFAULT_CASCADE)),
            gr.Textbox(label="method", value=""),
            gr.Textbox(label="model", value=""),
            gr.File(label="mask", type="filepath"),
            gr.Number(label="max_side", value=common.DEFAULT_MAX_SIDE, precision=0),
            gr.Checkbox(label="arrays", value=True),
            gr.Checkbox(label="flip", value=False),
            gr.Number(label="gate", value=0.0),
            gr.Dropdown(label="gate_by", choices=list(GATE_CRITERIA), value="bound"),
        ]
        outputs: list[Component] = [
            gr.File(label="mask_png"),
            gr.JSON(label="data"),
            gr.File(label="scale_maps_npz"),
        ]
        button = gr.Button("segment")
    return ApiRow(inputs, outputs, button)
