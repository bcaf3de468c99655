"""App-side glue shared by the Streamlit explorer and the Gradio app (no UI imports here).

Choosing and loading models (discovery plus a process-wide cache), reading uploaded images
and masks with size limits, the bundled samples, and building a cascade from toggles plus
free text. Everything raises ``ValueError`` with a message a user can act on; computation is
left to :mod:`hmsa_core` and :mod:`analysis`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hmsa_core
from analysis.compare import validate_gt
from hmsa_core.api import default_model_name
from hmsa_core.cache import tensor_digest
from hmsa_core.cascade import parse_scales, validate_scales
from hmsa_core.discovery import ModelEntry, discover_models
from hmsa_core.download import ProgressCallback, fetch
from hmsa_core.images import ImageLike, fit_max_side, load_mask, load_rgb, rgb_to_uint8
from hmsa_core.labels import LabelSet
from hmsa_core.limits import InputLimits, limits_from_env
from hmsa_core.merge import ExplicitMerger
from hmsa_core.models import MultiScaleSegmenter
from hmsa_core.pretrained import PRETRAINED

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO_ROOT / "assets" / "samples"
SAMPLES_DIR_ENV = "HMSA_SAMPLES_DIR"

#: Scales the cascade editor offers as toggles.
SCALE_CHOICES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
#: The cascade selected when the app opens (the paper's Cityscapes cascade).
DEFAULT_CASCADE: tuple[float, ...] = (0.5, 1.0, 2.0)
#: Merge methods a user can compare; ``"single"`` stands for every single scale.
METHOD_CHOICES: tuple[str, ...] = ("hierarchical", "mean", "max", "single", "explicit")
#: Default maximum image side (pixels) the apps resize uploads to.
DEFAULT_MAX_SIDE = 1024
#: Image file types the uploaders accept.
IMAGE_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "tif", "tiff")
#: Mask file types the uploaders accept (lossless only: class ids must survive).
MASK_TYPES: tuple[str, ...] = ("png", "tif", "tiff")


@dataclass(frozen=True)
class Sample:
    """A bundled sample image.

    Attributes:
        name: the file stem, e.g. ``"synthscapes_val_000"``.
        image_path: the RGB image.
        mask_path: its class-id mask (``<stem>_mask.png``), or ``None`` when absent.
    """

    name: str
    image_path: Path
    mask_path: Path | None

    @property
    def label(self) -> str:
        """Returns the name to show: see :func:`sample_label`."""
        return sample_label(self.name, self.mask_path is not None)


@dataclass(frozen=True)
class LoadedImage:
    """An image ready for the model.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB after fitting the maximum side.
        original_size: ``(H0, W0)`` of the file before resizing.
    """

    rgb: np.ndarray
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """Returns ``(H, W)`` of :attr:`rgb`."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    @property
    def resized(self) -> bool:
        """Returns True when the image was shrunk to fit the maximum side."""
        return self.size != self.original_size


# --------------------------------------------------------------------------- models


def list_models(models_dir: str | os.PathLike | None = None) -> list[ModelEntry]:
    """Returns the models a user can pick: bundled ones, the pretrained downloads (listed
    whether downloaded or not), then checkpoints in ``models_dir``. The default model
    (``HMSA_DEFAULT_MODEL``, see :func:`hmsa_core.api.default_model_name`) comes first.

    Args:
        models_dir: folder of extra checkpoints; default ``HMSA_MODELS_DIR`` or ``./models``.
    """
    found = discover_models(models_dir)
    default = default_model_name()
    return sorted(found, key=lambda e: e.name != default)  # stable: keeps the order otherwise


def find_model(name: str, entries: Iterable[ModelEntry] | None = None) -> ModelEntry:
    """Returns the entry called ``name`` among ``entries`` (default :func:`list_models`).

    Raises:
        ValueError: no entry has that name.
    """
    entries = list(list_models() if entries is None else entries)
    for entry in entries:
        if entry.name == name:
            return entry
    raise ValueError(f"no model named {name!r}; available: {', '.join(e.name for e in entries)}")


def model_key(entry: ModelEntry) -> str:
    """Returns a string that changes whenever the entry's weights file changes (for a
    pretrained entry: its local or cached file, ``...:missing`` before the download)."""
    try:
        stat = entry.path.stat()
    except OSError:
        return f"{entry.path}:missing"
    return f"{entry.path}:{stat.st_mtime_ns}:{stat.st_size}"


_MODELS: dict[str, MultiScaleSegmenter] = {}
_MODELS_LOCK = threading.Lock()
_MODELS_LIMIT = 4


def get_model(
    entry_or_name: ModelEntry | str,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> MultiScaleSegmenter:
    """Returns the loaded, eval-mode model of an entry or entry name, loaded once per process.

    The same object is returned while its weights file is unchanged, so the per-scale cache
    (keyed by model identity) keeps serving its passes. A pretrained entry that is not
    downloaded yet is downloaded first: ``progress(done_bytes, total_bytes or None)`` is
    called as bytes arrive, and setting ``cancel`` (or raising
    :class:`~hmsa_core.download.DownloadCancelled` from ``progress``) stops it.

    Raises:
        ValueError: unknown name, an entry discovery flagged as unreadable, a bad file, or a
            failed download (:class:`~hmsa_core.download.DownloadError`, one sentence).
        DownloadCancelled: the download was cancelled.
    """
    entry = find_model(entry_or_name) if isinstance(entry_or_name, str) else entry_or_name
    if entry.error:
        raise ValueError(f"model {entry.name!r} cannot be loaded: {entry.error}")
    if entry.kind == "pretrained":
        with _MODELS_LOCK:
            model = _MODELS.get(model_key(entry))
        if model is not None:
            return model
        # Fetched outside the lock: a download must not block other sessions' models.
        path = fetch(entry.name, progress=progress, cancel=cancel)
        entry = replace(entry, path=path, downloaded=True)
    key = model_key(entry)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = hmsa_core.load_model(entry.path)
            if len(_MODELS) >= _MODELS_LIMIT:
                _MODELS.pop(next(iter(_MODELS)))
            _MODELS[key] = model
        return model


def format_count(count: int | None) -> str:
    """Returns a parameter count as ``"102.97 k"``/``"72.14 M"`` (``"unknown"`` for ``None``)."""
    if count is None:
        return "unknown"
    if count >= 1_000_000:
        return f"{count / 1e6:.2f} M"
    if count >= 1_000:
        return f"{count / 1e3:.2f} k"
    return str(count)


def describe_model(entry: ModelEntry) -> str:
    """Returns a one-line summary: kind, architecture, label set, classes and parameters."""
    if entry.error:
        return f"{entry.kind} checkpoint that cannot be read: {entry.error}"
    if entry.summary:
        return f"{entry.summary} · {format_count(entry.parameter_count)} parameters"
    labels = entry.label_set_name or "unknown label set"
    classes = f"{entry.num_classes} classes" if entry.num_classes else "? classes"
    return (
        f"{entry.kind} · {entry.arch} · {labels} ({classes}) · "
        f"{format_count(entry.parameter_count)} parameters"
    )


def training_note(entry: ModelEntry) -> str:
    """Returns what the model was trained on, in a sentence or two for an "About" panel."""
    if entry.kind == "bundled":
        return (
            "Trained in this project on SynthScapes, synthetic street-like scenes we generate "
            "(Cityscapes classes and colours). It has never seen a real photo: for real "
            "street images pick the pretrained 'cityscapes' model above (a one-time download)."
        )
    if entry.kind == "pretrained":
        pretrained = PRETRAINED[entry.name]
        fetched = "" if entry.downloaded else " Choosing it downloads the file once."
        return (
            f"{pretrained.origin}; {pretrained.accuracy} as {pretrained.accuracy_source} "
            f"reports. Licence: {pretrained.licence}.{fetched}"
        )
    if entry.kind == "paddle":
        return f"A PaddleSeg checkpoint ({entry.path.name}), converted to our architecture on load."
    if entry.kind == "official":
        data = "Mapillary Vistas" if entry.label_set_name == "mapillary" else "Cityscapes"
        return (
            f"NVIDIA's released HRNet-OCR + HMSA checkpoint, trained on {data} "
            "(real street photos)."
        )
    return f"A native checkpoint from {entry.path.name} ({entry.label_set_name} label set)."


def default_method(model: MultiScaleSegmenter) -> str:
    """Returns the model's own merge: ``"hierarchical"`` with an attention head, else
    ``"explicit"`` for an explicit-attention model, else ``"mean"``."""
    if model.has_attention:
        return "hierarchical"
    if isinstance(model, ExplicitMerger):
        return "explicit"
    return "mean"


def method_options(model: MultiScaleSegmenter, scales: Iterable[float]) -> list[str]:
    """Returns the merge methods ``model`` can show for a cascade: its own first, then
    mean, max and ``single:<s>`` for each scale."""
    candidates = ["hierarchical", "mean", "max", "explicit"]
    usable = {
        "hierarchical": model.has_attention,
        "mean": True,
        "max": True,
        "explicit": isinstance(model, ExplicitMerger),
    }
    own = default_method(model)
    options = [own] + [m for m in candidates if usable[m] and m != own]
    return options + [f"single:{s:g}" for s in sorted(scales)]


# --------------------------------------------------------------------------- images


def load_image(
    source: ImageLike, max_side: int | None, limits: InputLimits | None = None
) -> LoadedImage:
    """Returns the :class:`LoadedImage` of a path, bytes, PIL image or array, shrunk so its
    longer side is at most ``max_side`` (``None``: unchanged).

    Raises:
        ValueError: not an image, too large for ``limits`` (default: ``HMSA_*`` environment),
            corrupt, or a non-positive ``max_side``.
    """
    limits = limits or limits_from_env()
    rgb = load_rgb(source, limits)
    original = (int(rgb.shape[0]), int(rgb.shape[1]))
    fitted = fit_max_side(rgb, max_side)
    return LoadedImage(rgb=rgb_to_uint8(fitted), original_size=original)


def read_image(source: ImageLike, max_side: int | None) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 RGB of ``source`` with its longer side <= ``max_side``.

    Raises:
        ValueError: see :func:`load_image`.
    """
    return load_image(source, max_side).rgb


def fitted_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """Returns the ``(H, W)`` an image of ``size`` gets after fitting ``max_side``
    (the same rounding as :func:`hmsa_core.images.fit_max_side`)."""
    h, w = int(size[0]), int(size[1])
    if max_side is None or max(h, w) <= max_side:
        return h, w
    factor = max_side / max(h, w)
    return max(1, round(h * factor)), max(1, round(w * factor))


def read_mask(
    source: ImageLike | None,
    size: tuple[int, int],
    labels: LabelSet,
    original_size: tuple[int, int] | None = None,
) -> np.ndarray | None:
    """Returns the ``(H, W)`` int64 ground truth of a mask for an image of ``size``, or ``None``.

    A mask at the image's ``original_size`` (before fitting the maximum side) is resized to
    ``size`` with nearest-neighbour sampling, so class ids are kept.

    Raises:
        ValueError: unreadable mask, a size matching neither ``size`` nor ``original_size``,
            or class ids outside ``labels`` (255 is allowed as ignore).
    """
    if source is None:
        return None
    mask = load_mask(source, limits_from_env())
    h, w = int(size[0]), int(size[1])
    if original_size is not None and mask.shape == tuple(original_size) and mask.shape != (h, w):
        if mask.min() < 0 or mask.max() > 65535:
            raise ValueError("mask class ids must lie in 0..65535")
        pil = Image.fromarray(mask.astype(np.int32), mode="I")
        mask = np.asarray(pil.resize((w, h), Image.Resampling.NEAREST)).astype(np.int64)
    elif mask.shape != (h, w) and original_size is not None:
        oh, ow = original_size
        raise ValueError(
            f"mask is {mask.shape[1]} x {mask.shape[0]} but the image is {ow} x {oh}; "
            "give the class-id mask of this image at its size"
        )
    return validate_gt(mask, (h, w), labels)


def image_key(rgb: np.ndarray) -> str:
    """Returns a digest of an ``(H, W, 3)`` image's size and pixels (identifies an input)."""
    return tensor_digest(torch.from_numpy(np.ascontiguousarray(rgb)))


def samples_dir() -> Path:
    """Returns the samples folder: env ``HMSA_SAMPLES_DIR``, else ``assets/samples``."""
    return Path(os.environ.get(SAMPLES_DIR_ENV) or SAMPLES_DIR)


#: Image files :func:`list_samples` takes (masks are always ``<stem>_mask.png``).
SAMPLE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: Sample-name prefix of the bundled real photographs (no ground truth).
PHOTO_PREFIX = "photo_"
_SYNTH_PREFIX = "synthscapes_"


def sample_label(name: str, has_mask: bool) -> str:
    """Returns a readable label of a sample name: ``"synthscapes_val_003"`` ->
    ``"Street scene (SynthScapes val 3)"``, ``"photo_astronaut"`` ->
    ``"Photo: astronaut (no ground truth)"``; any other stem with ``_`` as spaces, marked
    ``(no ground truth)`` when it has no mask."""
    if name.startswith(_SYNTH_PREFIX):
        parts = name[len(_SYNTH_PREFIX) :].split("_")
        if len(parts) == 2 and parts[1].isdigit():
            label = f"Street scene (SynthScapes {parts[0]} {int(parts[1])})"
            return label if has_mask else label[:-1] + ", no ground truth)"
    if name.startswith(PHOTO_PREFIX):
        label = "Photo: " + name[len(PHOTO_PREFIX) :].replace("_", " ")
    else:
        label = name.replace("_", " ")
    return label if has_mask else f"{label} (no ground truth)"


def list_samples(folder: str | os.PathLike | None = None) -> list[Sample]:
    """Returns the samples in ``folder`` (default :func:`samples_dir`): every ``*.png``,
    ``*.jpg`` or ``*.jpeg`` that is not a ``*_mask.png``, with its ``<stem>_mask.png`` when
    present; samples with a mask first, each group sorted by name (one sample per stem)."""
    folder = Path(folder) if folder is not None else samples_dir()
    if not folder.is_dir():
        return []
    samples: dict[str, Sample] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SAMPLE_SUFFIXES or not path.is_file():
            continue
        if path.stem.endswith("_mask") or path.stem in samples:
            continue
        mask = path.with_name(f"{path.stem}_mask.png")
        samples[path.stem] = Sample(path.stem, path, mask if mask.is_file() else None)
    return sorted(samples.values(), key=lambda s: (s.mask_path is None, s.name))


# --------------------------------------------------------------------------- cascades


def build_cascade(
    toggled: Iterable[float],
    extra: str = "",
    image_size: tuple[int, int] | None = None,
    min_side: int = 1,
    limits: InputLimits | None = None,
) -> tuple[float, ...]:
    """Returns the ascending cascade of the toggled scales plus a free-text list such as
    ``"0.33, 3"``.

    Raises:
        ValueError: a token that is not a number, an empty cascade, a scale out of range, or
            (with ``image_size``) a scale giving an input under ``min_side`` or over the limit.
    """
    scales = [float(s) for s in toggled] + list(parse_scales(extra or ""))
    return validate_scales(scales, image_size, min_side, limits or limits_from_env())


def format_cascade(scales: Iterable[float]) -> str:
    """Returns ``"0.5, 1, 2"`` for a cascade."""
    return ", ".join(f"{s:g}" for s in scales)


#: Units of :func:`format_flops`, smallest first: (name, FLOPs per unit).
FLOP_UNITS: tuple[tuple[str, float], ...] = (
    ("FLOPs", 1.0),
    ("kFLOPs", 1e3),
    ("MFLOPs", 1e6),
    ("GFLOPs", 1e9),
    ("TFLOPs", 1e12),
    ("PFLOPs", 1e15),
)


def format_flops(gflops: float) -> str:
    """Returns a FLOP count given in GFLOPs as at most four digits and a unit that fits a
    metric box: ``2103.9`` -> ``"2.10 TFLOPs"``, ``45.31`` -> ``"45.3 GFLOPs"``, ``0.0123`` ->
    ``"12.3 MFLOPs"`` (three significant digits; ``"0 FLOPs"`` for zero, ``"unknown"`` for
    NaN or a negative count)."""
    flops = float(gflops) * 1e9
    if not flops >= 0 or flops == float("inf"):
        return "unknown"
    if flops == 0:
        return "0 FLOPs"
    name, size = FLOP_UNITS[0]
    for unit, per in FLOP_UNITS:
        if flops >= per * 0.9995:  # 999.96 GFLOPs reads "1.00 TFLOPs", not "1000 GFLOPs"
            name, size = unit, per
    value = flops / size
    digits = 2 if value < 9.995 else 1 if value < 99.95 else 0
    return f"{value:.{digits}f} {name}"


def flop_fraction(passes: Sequence[tuple[float, float]], done: Sequence[float]) -> float:
    """Returns the share of a run's estimated FLOPs that its passes reported so far did: what
    a progress bar shows.

    Args:
        passes: ``(scale, GFLOPs)`` of every planned pass (:func:`hmsa_core.plan_cascade`; with
            flip a scale's mirrored pass has the same FLOPs as its plain one).
        done: the scale of each pass reported so far, in order (with flip a scale twice).

    Without any FLOPs (all zero) it is the share of passes done.
    """
    per_pass: dict[float, float] = {}
    for scale, gflops in passes:
        per_pass.setdefault(scale, gflops)
    total = sum(gflops for _, gflops in passes)
    if total <= 0:
        return min(1.0, len(done) / len(passes)) if passes else 1.0
    return min(1.0, sum(per_pass.get(scale, 0.0) for scale in done) / total)


def planned_passes(
    model: MultiScaleSegmenter,
    size: tuple[int, int],
    scales: Iterable[float],
    options: hmsa_core.InferOptions,
) -> list[tuple[float, float]]:
    """Returns ``(scale, estimated GFLOPs)`` of every pass the cascade will run on an image of
    ``size`` = ``(H, W)`` with ``options``, in run order (:func:`hmsa_core.plan_cascade`)."""
    plan = hmsa_core.plan_cascade(model, size, tuple(scales), options)
    return [(p.scale, p.flops / 1e9) for p in plan.passes]


# --------------------------------------------------------------------------- inference
