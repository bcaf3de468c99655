"""The explorer's sidebar: model, image (sample or upload), mask, maximum side, cascade, methods.

:func:`render` draws the controls and returns a :class:`Choices`; anything the user got wrong
is collected in ``Choices.errors`` (messages from the ``ValueError`` of the core) instead of
stopping the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from app import common
from app.explorer_parts import query, sharing
from hmsa_core.discovery import ModelEntry
from hmsa_core.gating import GATE_CRITERIA
from hmsa_core.limits import limits_from_env
from hmsa_core.models import MultiScaleSegmenter

SOURCE_SAMPLE = sharing.SOURCE_SAMPLE
SOURCE_UPLOAD = sharing.SOURCE_UPLOAD


@dataclass
class Choices:
    """What the sidebar collected.

    Attributes:
        entry: the chosen model's entry (``None`` when none can be listed).
        model: the loaded model, or ``None`` when it failed to load.
        image: the input image, or ``None`` (none chosen or unreadable).
        image_name: a display name of the input.
        gt: ``(H, W)`` int64 ground truth at the image's size, or ``None``.
        scales: the cascade, or ``()`` when invalid.
        method: the merge method shown.
        methods: methods to compare.
        auto_run: run forward passes as soon as the inputs change.
        errors: user-facing messages of everything that was wrong.
        precision: ``"auto"`` (bf16 where the hardware has it) or ``"fp32"`` (exact).
        gate: attention-gating threshold (0: every pass runs whole).
        gate_by: the gate criterion (DESIGN 1.8): ``"bound"``, ``"attention"``, ``"confidence"``.
        flip: also run every scale on the mirrored image and average (flip testing).
    """

    entry: ModelEntry | None = None
    model: MultiScaleSegmenter | None = None
    image: common.LoadedImage | None = None
    image_name: str = ""
    gt: np.ndarray | None = None
    scales: tuple[float, ...] = ()
    method: str = "hierarchical"
    methods: tuple[str, ...] = ()
    auto_run: bool = True
    errors: list[str] = field(default_factory=list)
    precision: str = "auto"
    gate: float = 0.0
    gate_by: str = "bound"
    flip: bool = False

    @property
    def ready(self) -> bool:
        """Returns True when a model, an image and a valid cascade are all chosen."""
        return self.model is not None and self.image is not None and bool(self.scales)


#: Session-state key holding the name of the pretrained model whose download was cancelled.
CANCELLED_DOWNLOAD = "cancelled_download"


def _cancel_download(name: str) -> None:
    st.session_state[CANCELLED_DOWNLOAD] = name


def _resume_download() -> None:
    st.session_state.pop(CANCELLED_DOWNLOAD, None)


def _download_progress(name: str) -> tuple[object, common.ProgressCallback]:
    """Draws a cancel button and a progress bar; returns the bar and its byte callback.

    Pressing the button reruns the page, which stops this run's download at its next chunk
    (the part already fetched is kept for a resume)."""
    st.button("Cancel download", key="cancel_download", on_click=_cancel_download, args=(name,))
    bar = st.progress(0.0, text=f"Downloading {name}...")
    shown = [-1]

    def update(done: int, total: int | None) -> None:
        percent = int(100 * done / total) if total else -1
        if percent == shown[0] and total:
            return
        shown[0] = percent
        size = f"{done / 1e6:.0f} of {total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        bar.progress(max(0, percent) / 100, text=f"Downloading {name}: {size}")

    return bar, update


def _now_downloaded(name: str) -> bool:
    """Returns True when the model list now shows the pretrained entry ``name`` as downloaded."""
    try:
        return common.find_model(name).downloaded
    except ValueError:
        return False


def _model_section(choices: Choices) -> None:
    st.subheader("Model")
    entries = common.list_models()
    if not entries:
        choices.errors.append("No model is available: train the bundled one (see README.md).")
        return
    by_name = {e.name: e for e in entries}
    name = st.selectbox(
        "Model", list(by_name), key="model_name", format_func=lambda n: by_name[n].summary or n
    )
    entry = by_name[name]
    choices.entry = entry
    st.caption(common.describe_model(entry))
    if entry.kind == "pretrained" and not entry.downloaded:
        if st.session_state.get(CANCELLED_DOWNLOAD) == entry.name:
            st.button("Resume download", key="resume_download", on_click=_resume_download)
            choices.errors.append(
                f"The download of {entry.name!r} was cancelled; press 'Resume download' to "
                "continue where it stopped, or pick another model."
            )
            return
        bar, update = _download_progress(entry.name)
        try:
            choices.model = common.get_model(entry, progress=update)
        except ValueError as exc:
            choices.errors.append(str(exc))
        bar.empty()  # type: ignore[attr-defined]
        if choices.model is not None and _now_downloaded(entry.name):
            # The menu label, the caption and the Cancel button above still describe the
            # download: draw the page again from the refreshed entry (the model is cached).
            st.rerun()
        return
    try:
        with st.spinner(f"Loading {entry.name}..."):
            choices.model = common.get_model(entry)
    except ValueError as exc:
        choices.errors.append(str(exc))


def _uploader(label: str, types: tuple[str, ...], key: str) -> tuple[bytes, str] | None:
    """Draws a file uploader of ``types`` within the upload limit; returns the file's
    ``(bytes, name)``, or ``None`` without a file."""
    upload = st.file_uploader(label, type=list(types), key=key, max_upload_size=_upload_mb())
    return None if upload is None else (upload.getvalue(), upload.name)


def _upload_mb() -> int:
    """Returns the upload limit in MB (the engine's ``max_file_bytes``, at least 1)."""
    return max(1, limits_from_env().max_file_bytes // 2**20)


def _image_section(choices: Choices) -> tuple[object | None, tuple[int, int] | None]:
    """Draws the image controls; returns the mask source and the original size (if any)."""
    st.subheader("Image")
    samples = common.list_samples()
    sources = [SOURCE_SAMPLE, SOURCE_UPLOAD] if samples else [SOURCE_UPLOAD]
    opened: sharing.OpenedImage | None = st.session_state.get(sharing.OPENED_IMAGE)
    if opened is not None:
        sources.append(sharing.SOURCE_DATASET)
    source = st.radio("Source", sources, key="image_source", horizontal=True)
    image_source: object | None = None
    mask_source: object | None = None
    if source == SOURCE_SAMPLE:
        by_name = {s.name: s for s in samples}
        name = st.selectbox(
            "Sample", list(by_name), key="sample_name", format_func=lambda n: by_name[n].label
        )
        picked = by_name[name]
        image_source, choices.image_name = picked.image_path, picked.name
        if picked.mask_path is not None and st.checkbox(
            "Use the sample's mask", value=True, key="use_sample_mask"
        ):
            mask_source = picked.mask_path
        elif picked.mask_path is None:
            st.caption("No ground truth for this image: no scores, only predictions.")
    elif source == sharing.SOURCE_DATASET and opened is not None:
        image_source, choices.image_name = opened.rgb, opened.name
        st.caption(f"{opened.name}, opened from the dataset page")
        if opened.mask is not None and st.checkbox(
            "Use its mask", value=True, key="use_dataset_mask"
        ):
            mask_source = opened.mask
    else:
        upload = _uploader("Image (PNG, JPEG, WebP, TIFF)", common.IMAGE_TYPES, "image_upload")
        if upload is not None:
            image_source, choices.image_name = upload
    mask_upload = _uploader("Label mask (optional, class ids)", common.MASK_TYPES, "mask_upload")
    if mask_upload is not None:
        mask_source = mask_upload[0]
    max_side = st.number_input(
        "Maximum input side (px)",
        min_value=16,
        max_value=limits_from_env().max_side,
        value=common.DEFAULT_MAX_SIDE,
        step=64,
        key="max_side",
    )
    if image_source is None:
        st.caption("Choose an image to start.")
        return None, None
    try:
        choices.image = common.load_image(image_source, int(max_side))
    except ValueError as exc:
        choices.errors.append(f"Image {choices.image_name!r}: {exc}")
        return None, None
    (h0, w0), (h, w) = choices.image.original_size, choices.image.size
    resized = f" (resized from {w0} x {h0})" if choices.image.resized else ""
    st.caption(f"Input: {w} x {h} px{resized}")
    return mask_source, choices.image.original_size


def _mask(choices: Choices, mask_source: object | None, original: tuple[int, int] | None) -> None:
    if mask_source is None or choices.image is None or choices.model is None:
        return
    try:
        choices.gt = common.read_mask(
            mask_source, choices.image.size, choices.model.labels, original_size=original
        )
    except ValueError as exc:
        choices.errors.append(f"Mask: {exc}")


def _cascade_section(choices: Choices) -> None:
    st.subheader("Cascade")
    toggled = st.pills(
        "Scales",
        list(common.SCALE_CHOICES),
        selection_mode="multi",
        default=list(common.DEFAULT_CASCADE),
        format_func=lambda s: f"{s:g}",
        key="scale_pills",
    )
    extra = st.text_input(
        "More scales", key="extra_scales", placeholder="e.g. 0.35, 3", help="comma-separated"
    )
    size = choices.image.size if choices.image is not None else None
    min_side = choices.model.min_input_side if choices.model is not None else 1
    try:
        choices.scales = common.build_cascade(toggled or (), extra, size, min_side)
    except ValueError as exc:
        choices.errors.append(f"Cascade: {exc}")
        return
    st.caption(f"Cascade: ({common.format_cascade(choices.scales)})")


def _methods_section(choices: Choices) -> None:
    st.subheader("Merge")
    if choices.model is None:
        return
    options = common.method_options(choices.model, choices.scales)
    choices.method = st.selectbox("Method shown", options, key="method")
    usable = [
        m
        for m in common.METHOD_CHOICES
        if (m != "hierarchical" or choices.model.has_attention)
        and (m != "explicit" or common.default_method(choices.model) == "explicit")
    ]
    picked = st.multiselect("Methods to compare", usable, default=usable, key="compare_methods")
    choices.methods = tuple(picked)
    choices.auto_run = st.toggle(
        "Run automatically", value=True, key="auto_run", help="off: press Run for new passes"
    )


#: The precisions the explorer offers (``"auto"`` resolves per machine).
PRECISION_OPTIONS = ("auto", "fp32")
#: The largest attention gate the slider offers (a shared link may set at most this).
MAX_GATE = query.MAX_GATE


def _speed_section(choices: Choices) -> None:
    """Precision, attention gating and flip testing: how the passes run, not what the model is."""
    st.subheader("Speed")
    choices.precision = st.radio(
        "Precision",
        PRECISION_OPTIONS,
        horizontal=True,
        key="precision",
        help="auto: bfloat16 + channels-last on CPUs with native bf16 and on GPUs, else fp32; "
        "fp32: exact",
    )
    choices.gate = float(
        st.slider(
            "Attention gate",
            0.0,
            MAX_GATE,
            0.0,
            query.GATE_STEP,
            key="gate",
            help="skip the tiles of a scale where the lower scales leave it a weight of at most "
            "this (hierarchical merge only); 0: every pass runs whole",
        )
    )
    choices.gate_by = st.radio(
        "Gate criterion",
        GATE_CRITERIA,
        horizontal=True,
        key="gate_by",
        disabled=choices.gate <= 0,
        help="bound: exact up to a proven bound (skips only where attention saturates); "
        "attention: skip where the lower scales leave at most the gate on all but 5% of a "
        "tile; confidence: skip where the lower scales' merge is at least 1 - gate sure on "
        "all but 5% of a tile (both approximate)",
    )
    choices.flip = st.toggle(
        "Flip",
        value=False,
        key="flip",
        help="also run every scale on the mirrored image and average the two merges, as "
        "NVIDIA's and PaddleSeg's flip testing do: twice the passes",
    )


def render() -> Choices:
    """Draws the sidebar and returns the user's :class:`Choices` (errors collected, not raised)."""
    choices = Choices()
    with st.sidebar:
        _model_section(choices)
        mask_source, original = _image_section(choices)
        _mask(choices, mask_source, original)
        _cascade_section(choices)
        _methods_section(choices)
        _speed_section(choices)
    return choices
