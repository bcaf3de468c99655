"""HMSA Explorer as a Gradio app (and a Hugging Face Space): ``python app/gradio_app.py``.

The page runs a scale cascade on an image and shows the merged prediction, every scale's own
prediction, attention and effective weight, the merge methods side by side, per-class IoU when
a mask is given, and the compute cost. Uploads are plain files (``gr.File``): Gradio decodes
nothing, the app's own readers do, so a bad file is a clear error; a read-only preview shows
what they read. The page opens on a computed sample (see :mod:`app.gradio_parts.first_visit`),
with a before/after slider and per-class toggles. The ``/segment`` API endpoint returns the mask, the per-scale numbers and the
per-scale attention and weight maps (``.npz``) to scripts (see README.md for a
``gradio_client`` example).

Environment: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (host and port; default
127.0.0.1:7860, 0.0.0.0 on a Space), ``HMSA_MODELS_DIR`` (extra checkpoints),
``HMSA_DEFAULT_MODEL`` (the model selected first, e.g. ``cityscapes``: downloaded on the first
visit), ``HMSA_CACHE_DIR`` / ``HMSA_OFFLINE`` / ``HMSA_URL_<NAME>`` (pretrained downloads),
``HMSA_CACHE_BYTES`` (per-scale cache budget), ``HMSA_GRADIO_CONCURRENCY`` (requests run at
once, default 2), ``HMSA_GRADIO_QUEUE_SIZE`` (requests that may wait, default 16),
``HMSA_MAX_*`` input limits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # a Space runs this file without installing the repo
    sys.path.insert(0, str(REPO_ROOT))

import gradio as gr  # noqa: E402

from app import common  # noqa: E402
from app.gradio_parts.first_visit import (  # noqa: E402
    ExampleResults,
    first_sample,
    open_on_first_sample,
    sample_examples,
)
from app.gradio_parts.handlers import Handlers  # noqa: E402
from app.gradio_parts.held_result import show_classes  # noqa: E402
from app.gradio_parts.views import color_map  # noqa: E402
from hmsa_core.labels import CITYSCAPES  # noqa: E402
from hmsa_core.limits import limits_from_env  # noqa: E402

TITLE = "HMSA Explorer"
INTRO = (
    "# HMSA Explorer\n"
    "Hierarchical multi-scale attention (Tao et al. 2020) runs a segmentation network at "
    "several scales and learns, per pixel, how much each scale should decide. Pick an image "
    "and a scale cascade to see every scale's prediction, its attention and the weight it "
    "got in the merge, and how HMSA compares with mean, max and single-scale inference."
)
DEFAULT_CONCURRENCY = 2
#: Concurrency group of every event that runs the model: HMSA_GRADIO_CONCURRENCY bounds them
#: together, so the page's button, sample clicks, the first visit and the API share one queue.
COMPUTE_GROUP = "compute"
#: Requests that may wait in the queue (env ``HMSA_GRADIO_QUEUE_SIZE``); more are refused.
QUEUE_MAX_SIZE = 16
#: Runs on page load: rewrites Gradio's "queue: 3/5 |" status as "2 ahead of you |".
QUEUE_POSITION_JS = """
() => {
  const pattern = /^queue: (\\d+)\\/(\\d*) \\|$/;
  const rewrite = (node) => {
    const found = pattern.exec(node.nodeValue || "");
    if (found) node.nodeValue = `${Number(found[1]) - 1} ahead of you |`;
  };
  const scan = (root) => {
    if (root.nodeType === Node.TEXT_NODE) return rewrite(root);
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) rewrite(node);
  };
  new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === "characterData") rewrite(record.target);
      else record.addedNodes.forEach(scan);
    }
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""
CACHE_POLICY = (1800, 3600)  # delete generated files older than an hour, checked every 30 min
# Gradio's bundled SemiBold (600) Source Sans Pro lacks glyphs (headings lose their "A"s):
# offer only the regular and bold files, so 600 falls back to the complete bold face.
THEME = gr.themes.Default(
    font=[
        gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)),
        "ui-sans-serif",
        "system-ui",
        "sans-serif",
    ]
)


def concurrency_limit() -> int:
    """Returns how many requests run at once: env ``HMSA_GRADIO_CONCURRENCY``, default 2 (CPU).

    Raises:
        ValueError: the variable is not a positive integer.
    """
    raw = os.environ.get("HMSA_GRADIO_CONCURRENCY", "")
    if not raw:
        return DEFAULT_CONCURRENCY
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"HMSA_GRADIO_CONCURRENCY must be a positive integer, got {raw!r}")
    return int(raw)


def queue_max_size() -> int:
    """Returns how many requests may wait in the queue: env ``HMSA_GRADIO_QUEUE_SIZE``, default
    :data:`QUEUE_MAX_SIZE`; a request beyond it is refused at once ("Queue is full").

    Raises:
        ValueError: the variable is not a positive integer.
    """
    raw = os.environ.get("HMSA_GRADIO_QUEUE_SIZE", "")
    if not raw:
        return QUEUE_MAX_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"HMSA_GRADIO_QUEUE_SIZE must be a positive integer, got {raw!r}")
    return int(raw)


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


def show_preview(
    triggers: Sequence[Any],
    fn: Callable[..., object],
    inputs: list[gr.components.Component],
    preview: gr.Image,
    name: str,
) -> None:
    """Wires ``triggers`` (event listeners such as ``upload.change``) to empty ``preview`` at
    once, then fill it with ``fn(*inputs)``: an unreadable file leaves the preview empty and
    shows ``fn``'s error. The second step is the undocumented endpoint ``/preview_<name>``."""
    gr.on(triggers, clear_value, outputs=preview, queue=False, api_visibility="private").then(
        fn,
        inputs=inputs,
        outputs=preview,
        api_name=f"preview_{name}",
        api_visibility="undocumented",
    )


def clear_value() -> None:
    """Returns ``None``: the value that empties a component."""
    return None


def build_app(
    models_dir: str | os.PathLike | None = None, *, samples_dir: str | os.PathLike | None = None
) -> gr.Blocks:
    """Returns the app's ``gr.Blocks``, its queue configured (a few requests at once on CPU).

    Args:
        models_dir: folder of extra checkpoints; default env ``HMSA_MODELS_DIR`` or ``./models``.
        samples_dir: folder of example images (``<stem>.png`` + ``<stem>_mask.png``); default
            the bundled ``assets/samples``.
    """
    handlers = Handlers(models_dir)
    names = handlers.model_names()
    samples = common.list_samples(samples_dir)
    scale_choices = [(f"{s:g}", s) for s in common.SCALE_CHOICES]
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_POLICY) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
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
                scales = gr.CheckboxGroup(
                    scale_choices,
                    value=list(common.DEFAULT_CASCADE),
                    label="Scale cascade",
                    elem_id="scales",
                )
                extra = gr.Textbox(
                    label="Other scales (optional)", placeholder="e.g. 0.33, 3", max_lines=1
                )
                with gr.Row():
                    model = gr.Dropdown(
                        handlers.model_choices(),
                        value=names[0] if names else None,
                        label="Model",
                        scale=3,
                    )
                    method = gr.Dropdown(
                        ["hierarchical", "mean", "max"],
                        value="hierarchical",
                        label="Merge method",
                        scale=2,
                    )
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
                        info="auto: bfloat16 + channels-last where the hardware has it; "
                        "fp32: exact",
                        elem_id="precision",
                    )
                    gate = gr.Slider(
                        0.0,
                        0.5,
                        value=0.0,
                        step=0.01,
                        label="Attention gate",
                        info="skip tiles of a scale that the lower scales leave at most this "
                        "weight (hierarchical only; 0: exact)",
                        elem_id="gate",
                    )
                memory = gr.Markdown("Expected cost: pick an image first.", elem_id="memory")
                about = gr.Markdown(handlers.describe(names[0] if names else None))
                run = gr.Button("Segment", variant="primary", elem_id="run")
                examples = sample_examples(samples, image, mask) if samples else None
            with gr.Column(scale=3, min_width=400):
                summary = gr.Markdown(
                    "Computing a sample for you…"
                    if samples
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
                    [],
                    label="Classes on the overlay (untick to hide)",
                    elem_id="class-toggles",
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
                with gr.Tabs():
                    with gr.Tab("Method comparison"):
                        comparison_plot = gr.Plot(show_label=False)
                    with gr.Tab("Per-class IoU"):
                        iou_table = gr.Dataframe(label="IoU per class and method", wrap=True)
                        iou_plot = gr.Plot(show_label=False)
                    with gr.Tab("Compute cost"):
                        cost_table = gr.Dataframe(label="Per-scale cost")
                        cost_plot = gr.Plot(show_label=False)
                    with gr.Tab("Downloads"):
                        downloads = gr.File(
                            label="Mask PNG (pixel value = class id) and metrics (.json)",
                            file_count="multiple",
                        )
                        arrays_button = gr.Button("Prepare arrays (.npz)", size="sm")
                        arrays_file = gr.File(
                            label="Merged and per-scale logits, attention and weights (.npz)"
                        )
        with gr.Row(visible=False):  # inputs and outputs of the /segment API endpoint
            api_image = gr.File(label="image", type="filepath")
            api_scales = gr.JSON(label="scales", value=list(common.DEFAULT_CASCADE))
            api_method = gr.Textbox(label="method", value="")
            api_model = gr.Textbox(label="model", value="")
            api_mask = gr.File(label="mask", type="filepath")
            api_max_side = gr.Number(label="max_side", value=common.DEFAULT_MAX_SIDE, precision=0)
            api_arrays = gr.Checkbox(label="arrays", value=True)
            api_png = gr.File(label="mask_png")
            api_data = gr.JSON(label="data")
            api_maps = gr.File(label="scale_maps_npz")
            api_button = gr.Button("segment")

        show_preview([image.change], handlers.preview_image, [image], image_preview, "image")
        show_preview(
            [mask.change, model.change], handlers.preview_mask, [mask, model], mask_preview, "mask"
        )
        gr.on(
            [model.change, scales.change, demo.load],
            handlers.model_changed,
            inputs=[model, scales, method],
            outputs=[method, about],
            api_visibility="undocumented",
            queue=False,
        )
        gr.on(
            [image.change, scales.change, extra.change, model.change, max_side.change,
             precision.change, demo.load],
            handlers.memory_estimate,
            inputs=[image, scales, extra, model, max_side, precision],
            outputs=memory,
            api_name="memory_estimate",
            api_visibility="undocumented",
            queue=False,
        )  # fmt: skip
        ui_inputs = [image, mask, scales, extra, method, model, max_side, precision, gate]
        analysis_outputs = [
            overlay,
            gallery,
            summary,
            comparison_plot,
            iou_table,
            iou_plot,
            cost_table,
            cost_plot,
            downloads,
            slider,
            class_toggles,
            held,
        ]
        run.click(
            handlers.analyse,
            inputs=ui_inputs,
            outputs=analysis_outputs,
            api_name="analyse",
            api_visibility="undocumented",
            scroll_to_output=False,
            concurrency_id=COMPUTE_GROUP,
        )
        arrays_button.click(
            handlers.arrays,
            inputs=ui_inputs,
            outputs=arrays_file,
            api_name="arrays",
            api_visibility="undocumented",
            concurrency_id=COMPUTE_GROUP,
        )
        api_button.click(
            handlers.segment,
            inputs=[
                api_image,
                api_scales,
                api_method,
                api_model,
                api_mask,
                api_max_side,
                api_arrays,
            ],
            outputs=[api_png, api_data, api_maps],
            api_name="segment",
            concurrency_id=COMPUTE_GROUP,
        )
        class_toggles.input(
            show_classes,
            inputs=[held, class_toggles],
            outputs=[slider, overlay],
            queue=False,
            api_name="show_classes",
            api_visibility="undocumented",
        )
        settings = ui_inputs[2:]
        model_at = settings.index(model)
        results = ExampleResults(
            handlers.analyse, lambda values: handlers.weights_key(values[model_at])
        )
        if examples is not None:
            examples.load_input_event.then(
                results.outputs,
                inputs=ui_inputs,
                outputs=analysis_outputs,
                api_name="example",
                api_visibility="undocumented",
                concurrency_id=COMPUTE_GROUP,
            )
        opening = first_sample(samples)
        if opening is not None:
            open_on_first_sample(
                demo, opening, results, settings, image, mask, analysis_outputs, COMPUTE_GROUP
            )
    demo.queue(default_concurrency_limit=concurrency_limit(), max_size=queue_max_size())
    return demo


def server_name() -> str:
    """Returns the host to bind: env ``GRADIO_SERVER_NAME``, else 0.0.0.0 on a Hugging Face
    Space (env ``SPACE_ID``), else 127.0.0.1."""
    return os.environ.get("GRADIO_SERVER_NAME") or (
        "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"
    )


def launch(
    demo: gr.Blocks,
    *,
    host: str | None = None,
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> str:
    """Starts serving ``demo`` and returns its local URL.

    Args:
        host: bind address (default :func:`server_name`).
        port: port (default env ``GRADIO_SERVER_PORT``, else 7860).
        prevent_thread_lock: return at once instead of blocking (tests).
        quiet: suppress Gradio's start-up messages.
    """
    _, url, _ = demo.launch(
        server_name=host or server_name(),
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        show_error=True,
        allowed_paths=[str(common.SAMPLES_DIR), str(common.samples_dir())],
        max_file_size=limits_from_env().max_file_bytes,
        theme=THEME,
        js=QUEUE_POSITION_JS,
        footer_links=["api", "gradio"],
    )
    return url


if __name__ == "__main__":
    launch(build_app())
