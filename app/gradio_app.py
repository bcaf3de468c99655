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
)
from app.gradio_parts.handlers import (  # noqa: E402
    ESTIMATE_FIELDS,
    PAGE_FIELDS,
    Handlers,
    page_handler,
)
from app.gradio_parts.held_result import show_classes  # noqa: E402
from app.gradio_parts.layout import (  # noqa: E402
    ApiRow,
    Controls,
    Results,
    api_row,
    image_page,
)
from app.gradio_parts.video_tab import video_page  # noqa: E402
from hmsa_core.limits import env_number, limits_from_env  # noqa: E402

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
    return int(env_number("HMSA_GRADIO_CONCURRENCY", DEFAULT_CONCURRENCY))


def queue_max_size() -> int:
    """Returns how many requests may wait in the queue: env ``HMSA_GRADIO_QUEUE_SIZE``, default
    :data:`QUEUE_MAX_SIZE`; a request beyond it is refused at once ("Queue is full").

    Raises:
        ValueError: the variable is not a positive integer.
    """
    return int(env_number("HMSA_GRADIO_QUEUE_SIZE", QUEUE_MAX_SIZE))


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


def wire_previews(handlers: Handlers, controls: Controls) -> None:
    """Wires the upload previews: the image's on upload, the mask's on upload or model change
    (its colours are the model's classes)."""
    image, mask = controls.inputs["image"], controls.inputs["mask"]
    model = controls.inputs["model_name"]
    show_preview([image.change], handlers.preview_image, [image], controls.image_preview, "image")
    mask_triggers = [mask.change, model.change]
    show_preview(mask_triggers, handlers.preview_mask, [mask, model], controls.mask_preview, "mask")


def wire_settings(demo: gr.Blocks, handlers: Handlers, controls: Controls) -> None:
    """Wires what follows a change of settings, without running the model: the method menu and
    model description (a pretrained model is downloaded here), and the expected-cost line."""
    inputs = controls.inputs
    gr.on(
        [inputs["model_name"].change, inputs["scales"].change, demo.load],
        handlers.model_changed,
        inputs=controls.request(("model_name", "scales", "method")),
        outputs=[inputs["method"], controls.about],
        api_visibility="undocumented",
        queue=False,
    )
    gr.on(
        [inputs[name].change for name in ESTIMATE_FIELDS] + [demo.load],
        page_handler(handlers.memory_estimate, ESTIMATE_FIELDS, progress=False),
        inputs=controls.request(ESTIMATE_FIELDS),
        outputs=controls.memory,
        api_name="memory_estimate",
        api_visibility="undocumented",
        queue=False,
    )


def wire_runs(handlers: Handlers, controls: Controls, results: Results) -> None:
    """Wires the page's runs: Segment (``/analyse``), Prepare arrays (``/arrays``) and the
    per-class toggles (no model run)."""
    controls.run.click(
        page_handler(handlers.analyse),
        inputs=controls.request(),
        outputs=results.analysis(),
        api_name="analyse",
        api_visibility="undocumented",
        scroll_to_output=False,
        concurrency_id=COMPUTE_GROUP,
    )
    results.arrays_button.click(
        page_handler(handlers.arrays),
        inputs=controls.request(),
        outputs=results.arrays_file,
        api_name="arrays",
        api_visibility="undocumented",
        concurrency_id=COMPUTE_GROUP,
    )
    shown = results.outputs
    shown["class_toggles"].input(
        show_classes,
        inputs=[shown["held"], shown["class_toggles"]],
        outputs=[shown["slider"], shown["overlay"]],
        queue=False,
        api_name="show_classes",
        api_visibility="undocumented",
    )


def wire_api(handlers: Handlers, api: ApiRow) -> None:
    """Wires the documented ``/segment`` endpoint."""
    api.button.click(
        handlers.segment,
        inputs=api.inputs,
        outputs=api.outputs,
        api_name="segment",
        concurrency_id=COMPUTE_GROUP,
    )


def wire_samples(
    demo: gr.Blocks,
    handlers: Handlers,
    samples: list[common.Sample],
    controls: Controls,
    results: Results,
) -> None:
    """Wires the samples: a click runs the clicked sample with the page's settings, and the
    page opens on the first sample; both are served from one :class:`ExampleResults`."""
    settings_fields = [name for name in PAGE_FIELDS if name not in ("image", "mask")]
    settings = controls.request(settings_fields)
    model_at = settings_fields.index("model_name")
    analyse = page_handler(handlers.analyse)
    cache = ExampleResults(analyse, lambda values: handlers.weights_key(values[model_at]))
    if controls.examples is not None:
        controls.examples.load_input_event.then(
            cache.outputs,
            inputs=controls.request(),
            outputs=results.analysis(),
            api_name="example",
            api_visibility="undocumented",
            concurrency_id=COMPUTE_GROUP,
        )
    opening = first_sample(samples)
    if opening is not None:
        open_on_first_sample(
            demo,
            opening,
            cache,
            settings,
            controls.inputs["image"],
            controls.inputs["mask"],
            results.analysis(),
            COMPUTE_GROUP,
        )


def build_app(
    models_dir: str | os.PathLike | None = None, *, samples_dir: str | os.PathLike | None = None
) -> gr.Blocks:
    """Returns the app's ``gr.Blocks``, its queue configured (a few requests at once on CPU).

    The page is built section by section (:mod:`app.gradio_parts.layout`), then each section's
    events are wired; a new section is one build call and one wiring call here, and a new
    page is a tab next to "Image" built by its own module.

    Args:
        models_dir: folder of extra checkpoints; default env ``HMSA_MODELS_DIR`` or ``./models``.
        samples_dir: folder of example images (``<stem>.png`` + ``<stem>_mask.png``); default
            the bundled ``assets/samples``.
    """
    handlers = Handlers(models_dir)
    samples = common.list_samples(samples_dir)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_POLICY) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs(elem_id="pages"):
            controls, results = image_page(handlers, samples)
            # further pages: one call each here, building a ``gr.Tab`` in its own module
            video_page(handlers)
        api = api_row()
        wire_previews(handlers, controls)
        wire_settings(demo, handlers, controls)
        wire_runs(handlers, controls, results)
        wire_api(handlers, api)
        wire_samples(demo, handlers, samples, controls, results)
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
