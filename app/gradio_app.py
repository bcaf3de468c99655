"""HMSA Explorer as a Gradio app (and a Hugging Face Space): ``python app/gradio_app.py``.

The page runs a scale cascade on an image and shows the merged prediction, every scale's own
prediction, attention and effective weight, the merge methods side by side, per-class IoU when
a mask is given, and the compute cost. Uploads are plain files (``gr.File``): Gradio decodes
nothing, the app's own readers do, so a bad file is a clear error; a read-only preview shows
what they read. The ``/segment`` API endpoint returns the mask, the per-scale numbers and the
per-scale attention and weight maps (``.npz``) to scripts (see README.md for a
``gradio_client`` example).

Environment: ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (host and port; default
127.0.0.1:7860, 0.0.0.0 on a Space), ``HMSA_MODELS_DIR`` (extra checkpoints),
``HMSA_CACHE_BYTES`` (per-scale cache budget), ``HMSA_GRADIO_CONCURRENCY`` (requests run at
once, default 2), ``HMSA_MAX_*`` input limits.
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
from app.gradio_parts.handlers import Handlers  # noqa: E402
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
QUEUE_MAX_SIZE = 16
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
                        names, value=names[0] if names else None, label="Model", scale=3
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
                about = gr.Markdown(handlers.describe(names[0] if names else None))
                run = gr.Button("Segment", variant="primary", elem_id="run")
                if samples:
                    gr.Examples(
                        [
                            [str(s.image_path), str(s.mask_path) if s.mask_path else None]
                            for s in samples
                        ],
                        inputs=[image, mask],
                        label="Samples (click one, then Segment)",
                        example_labels=[s.name for s in samples],
                        cache_examples=False,
                        elem_id="examples",
                    )
            with gr.Column(scale=3, min_width=400):
                summary = gr.Markdown("Pick an image and press **Segment**.", elem_id="summary")
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
        ui_inputs = [image, mask, scales, extra, method, model, max_side]
        run.click(
            handlers.analyse,
            inputs=ui_inputs,
            outputs=[
                overlay,
                gallery,
                summary,
                comparison_plot,
                iou_table,
                iou_plot,
                cost_table,
                cost_plot,
                downloads,
            ],
            api_name="analyse",
            api_visibility="undocumented",
            scroll_to_output=False,
        )
        arrays_button.click(
            handlers.arrays,
            inputs=ui_inputs,
            outputs=arrays_file,
            api_name="arrays",
            api_visibility="undocumented",
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
        )
    demo.queue(default_concurrency_limit=concurrency_limit(), max_size=QUEUE_MAX_SIZE)
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
        allowed_paths=[str(common.SAMPLES_DIR)],
        max_file_size=limits_from_env().max_file_bytes,
        theme=THEME,
        footer_links=["api", "gradio"],
    )
    return url


if __name__ == "__main__":
    launch(build_app())
