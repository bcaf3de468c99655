"""Pretrained models a user can ask for by name (``hmsa_core.load_model("cityscapes")``).

:data:`PRETRAINED` is the one table of them. A name resolves, in this order, to a file of that
name in ``HMSA_MODELS_DIR`` (``cityscapes.pdparams`` or ``cityscapes.safetensors``), then the
converted copy in the download cache (``HMSA_CACHE_DIR``, default the platform's user cache
folder for ``hmsa-explorer``), then a download (:func:`hmsa_core.download.fetch`).
``HMSA_URL_<NAME>`` overrides an entry's URL (mirrors, tests); ``HMSA_OFFLINE=1`` forbids any
network access.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from hmsa_core.labels import CITYSCAPES, LabelSet

CACHE_DIR_ENV = "HMSA_CACHE_DIR"
OFFLINE_ENV = "HMSA_OFFLINE"
URL_ENV_PREFIX = "HMSA_URL_"
MODELS_DIR_ENV = "HMSA_MODELS_DIR"
DEFAULT_MODELS_DIR = "models"
APP_NAME = "hmsa-explorer"
#: Suffix of the converted copy kept in the cache.
CACHED_SUFFIX = ".safetensors"
#: Suffixes a hand-placed file in the models folder may have, in the order they are tried.
LOCAL_SUFFIXES = (".safetensors", ".pdparams")


@dataclass(frozen=True)
class PretrainedEntry:
    """One downloadable pretrained model.

    Attributes:
        name: what to pass to ``load_model`` and what the model menus show.
        description: architecture and training data in a few words.
        url: where the weights come from (overridable by ``HMSA_URL_<NAME>``).
        file_format: ``"pdparams"`` (PaddleSeg's pickle, converted on download).
        num_classes: the class count the file must have.
        labels: the label set of its classes.
        accuracy: the reported accuracy, e.g. ``"86.89 mIoU, Cityscapes val, scales (0.5, 1, 2)"``.
        accuracy_short: the same in menu form, e.g. ``"86.9 mIoU Cityscapes val"``.
        accuracy_source: who reports that number, and where.
        approx_bytes: about how large the download is.
        licence: the licence the weights' publisher states.
        origin: where the weights come from, in a sentence.
    """

    name: str
    description: str
    url: str
    file_format: str
    num_classes: int
    labels: LabelSet
    accuracy: str
    accuracy_short: str
    accuracy_source: str
    approx_bytes: int
    licence: str
    origin: str


PRETRAINED = MappingProxyType(
    {
        "cityscapes": PretrainedEntry(
            name="cityscapes",
            description="HRNet-W48 + OCR + HMSA",
            url=(
                "https://bj.bcebos.com/paddleseg/dygraph/cityscapes/"
                "mscale_ocr_hrnetw48_cityscapes_autolabel_mapillary/model.pdparams"
            ),
            file_format="pdparams",
            num_classes=19,
            labels=CITYSCAPES,
            accuracy="86.89 mIoU on Cityscapes val at scales (0.5, 1.0, 2.0)",
            accuracy_short="86.9 mIoU Cityscapes val",
            accuracy_source="PaddleSeg, contrib/CityscapesSOTA/README.md",
            approx_bytes=289_000_000,
            licence="Apache-2.0 (PaddleSeg)",
            origin=(
                "PaddleSeg's port of NVIDIA's HRNet-OCR + HMSA (MscaleOCRNet on HRNet_W48_NV), "
                "trained on Cityscapes with auto-labelled coarse data and Mapillary pre-training"
            ),
        ),
    }
)


def pretrained_entry(name: str) -> PretrainedEntry:
    """Returns the :class:`PretrainedEntry` called ``name``; ``ValueError`` lists the known ones."""
    try:
        return PRETRAINED[name]
    except KeyError:
        raise ValueError(
            f"no pretrained model named {name!r}; known: {', '.join(PRETRAINED)}"
        ) from None


def url_env_var(name: str) -> str:
    """Returns the environment variable that overrides ``name``'s URL (``HMSA_URL_CITYSCAPES``)."""
    return URL_ENV_PREFIX + "".join(c if c.isalnum() else "_" for c in name.upper())


def source_url(entry: PretrainedEntry) -> str:
    """Returns the URL to download ``entry`` from: ``HMSA_URL_<NAME>`` when set, else its own."""
    return os.environ.get(url_env_var(entry.name)) or entry.url


def offline() -> bool:
    """Returns True when ``HMSA_OFFLINE`` is set to a true value (1, true, yes, on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    """Returns the download cache folder: ``HMSA_CACHE_DIR``, else the user cache folder."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def models_dir() -> Path:
    """Returns the models folder: ``HMSA_MODELS_DIR``, else ``./models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def local_file(entry: PretrainedEntry, folder: Path | None = None) -> Path | None:
    """Returns a file for ``entry`` placed by hand in the models folder, or ``None``."""
    folder = models_dir() if folder is None else folder
    for suffix in LOCAL_SUFFIXES:
        candidate = folder / f"{entry.name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def cached_file(entry: PretrainedEntry, folder: Path | None = None) -> Path:
    """Returns where the converted copy of ``entry`` lives in the cache (may not exist)."""
    return (cache_dir() if folder is None else folder) / f"{entry.name}{CACHED_SUFFIX}"


def hand_placed_path(entry: PretrainedEntry) -> Path:
    """Returns where a user may put ``entry``'s downloaded file by hand."""
    return models_dir() / f"{entry.name}.{entry.file_format}"


def is_available(entry: PretrainedEntry) -> bool:
    """Returns True when ``entry`` loads without a download (models folder or cache)."""
    return local_file(entry) is not None or cached_file(entry).is_file()


def format_megabytes(count: int) -> str:
    """Returns ``"about 290 MB"`` for a byte count."""
    return (
        f"about {round(count / 1e6, -1):.0f} MB" if count >= 1e7 else f"about {count / 1e6:.1f} MB"
    )


def menu_text(entry: PretrainedEntry, downloaded: bool | None = None) -> str:
    """Returns the one-line menu description, with what loading it costs, e.g.
    ``"cityscapes: HRNet-W48 + OCR + HMSA, 86.9 mIoU Cityscapes val, about 290 MB, not
    downloaded yet"``; ``downloaded`` defaults to :func:`is_available`."""
    if downloaded is None:
        downloaded = is_available(entry)
    state = "downloaded" if downloaded else "not downloaded yet"
    return (
        f"{entry.name}: {entry.description}, {entry.accuracy_short}, "
        f"{format_megabytes(entry.approx_bytes)}, {state}"
    )
