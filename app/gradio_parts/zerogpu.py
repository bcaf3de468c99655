"""Running the model under Hugging Face ZeroGPU when the ``spaces`` package is there.

On a ZeroGPU Space a GPU is attached only inside functions decorated with
``spaces.GPU(duration=...)``, and what such a function returns must not hold GPU tensors.
:func:`infer` is the one call the Gradio handlers make to run the model: when ``spaces`` is
importable it runs :func:`_infer_arrays` under ``spaces.GPU`` with a duration estimated from
the cascade's counted FLOPs (:func:`gpu_seconds`), which returns NumPy arrays only
(:func:`result_to_arrays`), and the result is rebuilt on the CPU (:func:`result_from_arrays`).
Without ``spaces`` it calls :func:`hmsa_core.infer` directly.

The GPU path itself (ZeroGPU attaching a device) cannot run on a machine without one: on such
a machine only the duration estimate, the choice of path and the NumPy round trip are tested.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import numpy as np
import torch

import hmsa_core
from hmsa_core.inference import InferenceResult, ProgressFn, ScaleResult
from hmsa_core.limits import InputLimits
from hmsa_core.models import MultiScaleSegmenter
from hmsa_core.models.base import ScaleOutput

#: Seconds every ZeroGPU call is granted on top of the compute: attaching the GPU, moving the
#: weights, CUDA start-up and the first-call kernel selection.
GPU_OVERHEAD_S = 20.0
#: Sustained TFLOP/s assumed for the estimate: well under what an H200 reaches in bf16 on this
#: model (about 76 TFLOP/s measured for (0.5, 1, 2) at 1024 x 2048), so the duration is safe.
GPU_TFLOPS = 10.0
#: Bounds of the requested duration (seconds); ZeroGPU's own default is 60.
GPU_MIN_S, GPU_MAX_S = 20, 120


def gpu_seconds(gflops: float) -> int:
    """Returns the ZeroGPU duration (whole seconds) to request for a cascade of ``gflops``:
    ``GPU_OVERHEAD_S + gflops / (GPU_TFLOPS * 1000)``, rounded up, within
    ``[GPU_MIN_S, GPU_MAX_S]``."""
    if not math.isfinite(gflops) or gflops < 0:
        raise ValueError(f"gflops must be a finite, non-negative number, got {gflops!r}")
    seconds = math.ceil(GPU_OVERHEAD_S + gflops / (GPU_TFLOPS * 1000.0))
    return int(min(GPU_MAX_S, max(GPU_MIN_S, seconds)))


def spaces_module() -> ModuleType | None:
    """Returns the ``spaces`` module when it can be imported, else ``None``."""
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().numpy()


def _torch(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.asarray(a))


def result_to_arrays(result: InferenceResult) -> dict[str, Any]:
    """Returns ``result`` with every tensor as a NumPy array on the CPU (plain values and the
    frozen cost and label dataclasses as they are): what may leave a ZeroGPU function."""
    per_scale = {
        s: {
            "logits": _np(r.output.logits),
            "attention": _np(r.output.attention),
            "aux_logits": _np(r.output.aux_logits),
            "features": _np(r.output.features),
            "cost": r.cost,
            "computed": _np(r.computed),
        }
        for s, r in result.per_scale.items()
    }
    return {
        "scales": tuple(result.scales),
        "method": result.method,
        "logits": _np(result.logits),
        "pred": _np(result.pred),
        "per_scale": per_scale,
        "weights": {s: _np(w) for s, w in result.weights.items()},
        "cost": result.cost,
        "labels": result.labels,
        "image": np.asarray(result.image),
        "aux_logits": _np(result.aux_logits),
        "model_name": result.model_name,
    }


def result_from_arrays(data: dict[str, Any]) -> InferenceResult:
    """Returns the :class:`InferenceResult` that :func:`result_to_arrays` flattened (on the CPU)."""
    per_scale = {
        s: ScaleResult(
            s,
            ScaleOutput(
                logits=_torch(p["logits"]),  # type: ignore[arg-type]
                attention=_torch(p["attention"]),
                aux_logits=_torch(p["aux_logits"]),
                features=_torch(p["features"]),
            ),
            p["cost"],
            _torch(p["computed"]),
        )
        for s, p in data["per_scale"].items()
    }
    return InferenceResult(
        scales=data["scales"],
        method=data["method"],
        logits=_torch(data["logits"]),  # type: ignore[arg-type]
        pred=_torch(data["pred"]),  # type: ignore[arg-type]
        per_scale=per_scale,
        weights={s: _torch(w) for s, w in data["weights"].items()},  # type: ignore[misc]
        cost=data["cost"],
        labels=data["labels"],
        image=data["image"],
        aux_logits=_torch(data["aux_logits"]),
        model_name=data["model_name"],
    )


def _infer_arrays(
    image: np.ndarray,
    scales: tuple[float, ...],
    model: MultiScaleSegmenter,
    method: str,
    precision: str,
    gate: float,
    limits: InputLimits,
) -> dict[str, Any]:
    """Runs the cascade (on the GPU ZeroGPU attached) and returns it as NumPy arrays only."""
    if torch.cuda.is_available():
        model = model.to("cuda")
    result = hmsa_core.infer(
        image,
        scales,
        model=model,
        method=method,
        precision=precision,
        gate=gate,
        limits=limits,
    )
    return result_to_arrays(result)


def _duration(
    image: np.ndarray,
    scales: tuple[float, ...],
    model: MultiScaleSegmenter,
    method: str,
    precision: str,
    gate: float,
    limits: InputLimits,
) -> int:
    """Returns the ZeroGPU duration of one :func:`_infer_arrays` call (same arguments)."""
    size = (int(image.shape[0]), int(image.shape[1]))
    return gpu_seconds(hmsa_core.estimate_cascade(model, size, scales).gflops)


def gpu_runner(
    spaces: ModuleType | None,
) -> Callable[..., dict[str, Any]] | None:
    """Returns :func:`_infer_arrays` decorated with ``spaces.GPU(duration=...)`` (the duration
    computed per call from the cascade's FLOPs), or ``None`` without ``spaces``."""
    if spaces is None:
        return None
    return spaces.GPU(duration=_duration)(_infer_arrays)


#: The ZeroGPU-decorated runner, made once at import (ZeroGPU registers decorated functions
#: when the app starts); ``None`` when ``spaces`` is not installed.
RUNNER = gpu_runner(spaces_module())


def infer(
    image: np.ndarray,
    scales: Iterable[float],
    *,
    model: MultiScaleSegmenter,
    method: str,
    precision: str,
    gate: float,
    limits: InputLimits,
    progress: ProgressFn | None = None,
    spaces: ModuleType | bool | None = True,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of the cascade: through ZeroGPU when the ``spaces``
    package is importable (``spaces=True``, the default; or a given module), else directly.

    ``spaces`` is for tests: ``True`` uses :data:`RUNNER`; a module decorates with its ``GPU``;
    ``False``/``None`` runs directly. Per-scale ``progress`` is reported only on the direct
    path (a ZeroGPU call runs in another process).
    """
    runner = RUNNER if spaces is True else gpu_runner(spaces or None)  # type: ignore[arg-type]
    cascade = tuple(float(s) for s in scales)
    if runner is None:
        return hmsa_core.infer(
            image,
            cascade,
            model=model,
            method=method,
            precision=precision,
            gate=gate,
            limits=limits,
            progress=progress,
        )
    return result_from_arrays(runner(image, cascade, model, method, precision, gate, limits))
