"""The public entry points: :func:`load_model` and :func:`infer`."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch

from hmsa_core.cache import ByteLRUCache
from hmsa_core.fastpath import FastPathOptions
from hmsa_core.images import ImageLike
from hmsa_core.labels import LabelSet, label_set_from_file, sidecar_label_file
from hmsa_core.limits import InputLimits, cache_bytes_from_env, limits_from_env
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.options import InferOptions
from hmsa_core.passes import (
    DEFAULT_CACHE_BYTES,
    CacheEntry,
    ProgressFn,
    extend_result,
    infer_prepared,
    resolve_options,
)
from hmsa_core.prepare import prepare_input
from hmsa_core.results import InferenceResult

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

#: Bundled models, by name: the file under ``assets/`` that holds each.
BUNDLED_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "hmsa-lite": "models/hmsa_lite_synthscapes.safetensors",
        "explicit-lite": "models/explicit_lite_synthscapes.safetensors",
    }
)
DEFAULT_MODEL = "hmsa-lite"
#: Environment variable naming the default model instead (e.g. ``cityscapes`` on a Space).
DEFAULT_MODEL_ENV = "HMSA_DEFAULT_MODEL"

#: The per-scale cache :func:`infer` uses unless given another (bounded in bytes).
DEFAULT_SCALE_CACHE: ByteLRUCache[CacheEntry] = ByteLRUCache(
    cache_bytes_from_env(DEFAULT_CACHE_BYTES)
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Returns ``device`` as a torch.device; ``None`` picks CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    return resolved


def bundled_model_path(name: str) -> Path:
    """Returns the path of a bundled model's weights under ``assets/``."""
    if name not in BUNDLED_MODELS:
        raise ValueError(f"unknown bundled model {name!r}; bundled: {', '.join(BUNDLED_MODELS)}")
    return ASSETS_DIR / BUNDLED_MODELS[name]


def default_model_name() -> str:
    """Returns the default model's name: ``HMSA_DEFAULT_MODEL`` when set, else ``hmsa-lite``."""
    return os.environ.get(DEFAULT_MODEL_ENV, "").strip() or DEFAULT_MODEL


def load_model(
    name_or_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    labels: LabelSet | str | os.PathLike | None = None,
) -> MultiScaleSegmenter:
    """Returns an eval-mode model on ``device`` (``None``: CUDA when available, else CPU).

    Args:
        name_or_path: ``None`` for the default (``HMSA_DEFAULT_MODEL``, else ``hmsa-lite``);
            a bundled name (see :data:`BUNDLED_MODELS`); a pretrained name such as
            ``"cityscapes"`` (see :data:`hmsa_core.pretrained.PRETRAINED`: taken from
            ``HMSA_MODELS_DIR``, the download cache, or downloaded once); a native
            ``.safetensors`` checkpoint; an official NVIDIA ``.pth`` checkpoint (recognised by
            its layout); or a PaddleSeg ``.pdparams`` file (converted on load).
        labels: for an official checkpoint, its class names and colours: a :class:`LabelSet`
            or a JSON label file (see :func:`~hmsa_core.labels.label_set_from_file`). When
            ``None``, a ``<checkpoint stem>.labels.json`` beside the file is used if present,
            else the set follows the class count (19: Cityscapes; otherwise generic names).
            Native checkpoints carry their own label set.

    Raises:
        ValueError: unknown name, missing file, or a file that is not a valid checkpoint
            (a failed download is a :class:`~hmsa_core.download.DownloadError`, a ValueError).
    """
    from hmsa_core.pretrained import PRETRAINED

    target = resolve_device(device)
    name = default_model_name() if name_or_path is None else name_or_path
    if isinstance(name, str) and name in PRETRAINED:
        from hmsa_core.download import fetch

        path = fetch(name)
    elif isinstance(name, str) and name in BUNDLED_MODELS:
        path = bundled_model_path(name)
        if not path.is_file():
            raise ValueError(
                f"bundled model {name!r} is missing ({path}); train it with the command in README.md"
            )
    else:
        path = Path(name)
        if not path.is_file():
            raise ValueError(
                f"no model named {str(name)!r}: not a bundled name ({', '.join(BUNDLED_MODELS)}), "
                f"not a pretrained name ({', '.join(PRETRAINED)}) and no such file"
            )
    return _load_file(path, target, labels)


def _is_safetensors(path: Path) -> bool:
    """Returns True for a ``.safetensors`` name or a safetensors header (u64 size, then ``{``)."""
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 30


def _load_file(
    path: Path, device: torch.device, labels: LabelSet | str | os.PathLike | None
) -> MultiScaleSegmenter:
    if _is_safetensors(path):
        if labels is not None:
            raise ValueError(
                f"{path.name} carries its own label set; labels= is for .pth and .pdparams files"
            )
        from hmsa_core.checkpoints.native import load_native

        return load_native(path, device)
    from hmsa_core.checkpoints.official import load_official
    from hmsa_core.checkpoints.paddle import PDPARAMS_SUFFIX, load_paddle

    if labels is None and sidecar_label_file(path).is_file():
        labels = sidecar_label_file(path)
    if labels is not None and not isinstance(labels, LabelSet):
        labels = label_set_from_file(labels)
    if path.suffix.lower() == PDPARAMS_SUFFIX:
        return load_paddle(path, device, labels=labels)
    return load_official(path, device, labels=labels)


_DEFAULT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _default_model(name: str, device: str) -> MultiScaleSegmenter:
    return load_model(name, device)


def default_model(device: str | torch.device | None = None) -> MultiScaleSegmenter:
    """Returns the default model (:func:`default_model_name`) on ``device``, loaded once per
    name and device and shared."""
    with _DEFAULT_LOCK:
        return _default_model(default_model_name(), str(resolve_device(device)))


def infer(
    image: ImageLike,
    scales: Iterable[float] | str = (0.5, 1.0, 2.0),
    *,
    model: MultiScaleSegmenter | None = None,
    method: str = "hierarchical",
    return_attn: bool = True,
    options: InferOptions | None = None,
    cache: ByteLRUCache[CacheEntry] | None = DEFAULT_SCALE_CACHE,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
    precision: str | None = None,
    limits: InputLimits | None = None,
    gate: float | None = None,
    flip: bool | None = None,
    fast_path: FastPathOptions | None = None,
    aux: bool | None = None,
    gate_by: str | None = None,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of running ``model`` on ``image`` over a cascade.

    The keywords from ``device`` on are the notebook face of one
    :class:`~hmsa_core.options.InferOptions`: each one given replaces that field of
    ``options`` (default: ``InferOptions()`` with the ``HMSA_*`` environment limits).

    Args:
        image: path, encoded bytes, PIL image, numpy array ``(H, W)``, ``(H, W, 3)`` or
            ``(H, W, 4)`` (uint8, uint16, or float in [0, 1] (a maximum up to 1.05 is clipped)
            or in [0, 255]), or a normalised tensor ``(3, H, W)``/``(1, 3, H, W)``.
        scales: the cascade, e.g. ``(0.25, 0.5, 1.0, 2.0)`` or ``"0.5, 1, 2"``.
        model: a loaded model; ``None`` uses the bundled default (loaded once).
        method: ``"hierarchical"`` (HMSA), ``"mean"``, ``"max"``, ``"single:<s>"`` or ``"explicit"``.
        return_attn: keep per-scale attention maps and effective weights in the result.
        options: every run setting at once (see :class:`~hmsa_core.options.InferOptions`).
        cache: the per-scale cache (``None`` to disable).
        progress: called after each pass with ``(scale, index, total, cached)``; ``index``
            and ``total`` count passes (two per scale with flip). The plan
            (:func:`hmsa_core.plan.plan_cascade`) gives each pass's FLOPs beforehand.
        device: where to load the default model (``None``: CUDA when available); a given
            ``model`` runs where it is.
        precision: ``"auto"`` (default: bf16 autocast + channels-last on CUDA and on CPUs
            with native bfloat16, fp32 elsewhere), ``"fp32"`` (exact), ``"bf16"`` (CUDA or
            such a CPU) or ``"fp16"`` (CUDA); the cost rows say which one ran.
        limits: input size, cascade and tile limits; ``None`` reads them from the ``HMSA_*``
            environment variables (see :func:`~hmsa_core.limits.limits_from_env`).
        gate: attention gating threshold in ``[0, 1)`` for the hierarchical merge (see
            :mod:`hmsa_core.gating`): scales above the lowest run only on the tiles where the
            lower scales leave them a weight above ``gate``. 0 (default) is exact HMSA.
        gate_by: the gate criterion (DESIGN 1.8): ``"bound"`` (default, exact up to a proven
            bound), ``"attention"`` or ``"confidence"`` (approximate: ``result.gate_note``
            says so; see :mod:`hmsa_core.gating`).
        flip: also run every scale on the mirrored image; the result is the mean of the two
            merges (DESIGN 1.6) and keeps both, so ``result.remerge(flip=False)`` shows what
            the flip adds without a pass.
        fast_path: opt-in GPU fast path (CUDA graphs or ``torch.compile`` for small scales;
            see :mod:`hmsa_core.fastpath`); ``None`` (default): eager passes.
        aux: keep the auxiliary OCR logits (per scale and merged, ``result.aux_logits``) of
            models with an aux head; ``False`` (default) drops them as each pass ends, which
            saves as much memory as the per-scale logits take.

    Raises:
        ValueError: unreadable image, bad cascade or unknown method, with what was wrong.
    """
    where = None if device is None else str(device)
    given = dict(
        device=where, precision=precision, limits=limits, gate=gate, flip=flip, aux=aux
    ) | {"fast_path": fast_path, "gate_by": gate_by}
    options = resolve_options(options or InferOptions(limits=limits_from_env()), given)
    if model is None:
        model = default_model(options.device)
    prepared = prepare_input(image, model, options.limits)
    return infer_prepared(
        prepared, scales, model, method=method, return_attn=return_attn, options=options,
        cache=cache, progress=progress,
    )  # fmt: skip


def extend(
    base: InferenceResult | None,
    image: np.ndarray,
    scales: Iterable[float],
    model: MultiScaleSegmenter,
    *,
    method: str = "hierarchical",
    options: InferOptions | None = None,
    cache: ByteLRUCache[CacheEntry] | None = DEFAULT_SCALE_CACHE,
    progress: ProgressFn | None = None,
    **settings: object,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of ``scales`` on ``image`` merged with ``method``,
    running forward passes only for the passes ``base`` does not hold.

    The passes ``base`` holds are taken from it as they are (their costs marked ``cached``),
    whatever the per-scale ``cache`` still holds; the others are run (so ``cache`` can still
    serve them). This is how an app that keeps a session's result grows its cascade without
    recomputing, even after the shared cache evicted those scales.

    Args:
        base: an earlier result of the same ``image`` and ``model``, or ``None``.
        image: ``(H, W, 3)`` uint8 RGB (the image ``base`` was computed on).
        scales: the cascade of the result (validated for the image and model).
        model: the model (``base`` must come from it; also merges ``"explicit"``).
        method: the merge method of the result.
        options: the run settings (default: ``InferOptions()`` with the ``HMSA_*``
            environment limits). A held pass is reused only if it ran whole in the precision
            these resolve to (and, with ``flip``, only the mirrored passes ``base`` holds);
            with a gate above 0 nothing is taken from ``base`` (a gated pass depends on all
            its lower scales; the per-scale ``cache`` still serves).
        cache: per-scale cache for the passes ``base`` lacks (``None``: always compute).
        progress: ``(scale, index, total, cached)`` after each pass; held passes come first,
            reported as cached.
        settings: :class:`~hmsa_core.options.InferOptions` fields to change (``precision=``,
            ``gate=``, ``flip=``, ``limits=``, ...).

    Raises:
        ValueError: a bad cascade or image, a method the model cannot merge, or a ``base`` of
            another image.
    """
    options = resolve_options(options or InferOptions(limits=limits_from_env()), settings)
    prepared = prepare_input(image, model, options.limits)
    return extend_result(
        base,
        prepared,
        scales,
        model,
        method=method,
        options=options,
        cache=cache,
        progress=progress,
    )
