"""Running the model under Hugging Face ZeroGPU when the app runs on a ZeroGPU Space.

On a ZeroGPU Space a GPU is attached only inside functions decorated with
``spaces.GPU(duration=...)``, and what such a function returns must not hold GPU tensors.
:func:`infer` is the one call the Gradio handlers make to run the model: when the ``spaces``
package (the optional extra ``zerogpu``) decorates :func:`_infer_arrays` into a ZeroGPU
function, it runs there with a duration estimated from the cascade's counted FLOPs
(:func:`gpu_seconds`), returns NumPy arrays only (:func:`result_to_arrays`), and the result is
rebuilt on the CPU (:func:`result_from_arrays`). Outside a ZeroGPU Space ``spaces.GPU`` leaves
the function as it is, and without ``spaces`` there is nothing to decorate: both call
:func:`hmsa_core.infer` directly (with per-pass progress).

The GPU path itself (ZeroGPU attaching a device) cannot run off a Space: the tests run the
real ``spaces`` package's decorator, the duration estimate, the choice of path and the NumPy
round trip.
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
from hmsa_core.models import MultiScaleSegmenter
from hmsa_core.models.base import ScaleOutput
from hmsa_core.options import InferOptions
from hmsa_core.results import PassOutcome

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


def _output_arrays(output: ScaleOutput) -> dict[str, np.ndarray | None]:
    return {
        "logits": _np(output.logits),
        "attention": _np(output.attention),
        "aux_logits": _np(output.aux_logits),
        "features": _np(output.features),
    }


def _output(data: dict[str, Any]) -> ScaleOutput:
    return ScaleOutput(
        logits=_torch(data["logits"]),  # type: ignore[arg-type]
        attention=_torch(data["attention"]),
        aux_logits=_torch(data["aux_logits"]),
        features=_torch(data["features"]),
    )


def _pass_arrays(outcome: PassOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    return {
        **_output_arrays(outcome.output),
        "cost": outcome.cost,
        "computed": _np(outcome.computed),
        "windows": outcome.windows,
    }


def _pass(data: dict[str, Any] | None) -> PassOutcome | None:
    if data is None:
        return None
    return PassOutcome(_output(data), data["cost"], _torch(data["computed"]), data["windows"])


def result_to_arrays(result: InferenceResult) -> dict[str, Any]:
    """Returns ``result`` with every tensor as a NumPy array on the CPU (plain values, windows
    and the frozen cost and label dataclasses as they are): what may leave a ZeroGPU function.
    Each scale keeps its pass and, with flip, its mirrored pass."""
    per_scale = {
        s: {"plain": _pass_arrays(r.plain_pass), "flipped": _pass_arrays(r.flipped_pass)}
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
        "flip": result.flip,
    }


def result_from_arrays(data: dict[str, Any]) -> InferenceResult:
    """Returns the :class:`InferenceResult` that :func:`result_to_arrays` flattened (on the CPU)."""
    per_scale = {
        s: ScaleResult.of(s, _pass(p["plain"]), _pass(p["flipped"]))  # type: ignore[arg-type]
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
        flip=data["flip"],
    )


def _infer_arrays(
    image: np.ndarray,
    scales: tuple[float, ...],
    model: MultiScaleSegmenter,
    method: str,
    options: InferOptions,
) -> dict[str, Any]:
    """Runs the cascade (on the GPU ZeroGPU attached) and returns it as NumPy arrays only."""
    if torch.cuda.is_available():
        model = model.to("cuda")
    result = hmsa_core.infer(image, scales, model=model, method=method, options=options)
    return result_to_arrays(result)


def _duration(
    image: np.ndarray,
    scales: tuple[float, ...],
    model: MultiScaleSegmenter,
    method: str,
    options: InferOptions,
) -> int:
    """Returns the ZeroGPU duration of one :func:`_infer_arrays` call (same arguments): the
    planned FLOPs of every pass, flipped ones included."""
    size = (int(image.shape[0]), int(image.shape[1]))
    return gpu_seconds(hmsa_core.plan_cascade(model, size, scales, options).flops / 1e9)


def gpu_runner(spaces: ModuleType | None) -> Callable[..., dict[str, Any]] | None:
    """Returns :func:`_infer_arrays` decorated with ``spaces.GPU(duration=...)`` (the duration
    computed per call from the cascade's FLOPs); ``None`` without ``spaces`` or when the
    decorator leaves the function as it is (``spaces`` outside a ZeroGPU Space)."""
    if spaces is None:
        return None
    decorated = spaces.GPU(duration=_duration)(_infer_arrays)
    return None if decorated is _infer_arrays else decorated


#: The ZeroGPU-decorated runner, made once at import (ZeroGPU registers decorated functions
#: when the app starts); ``None`` off a ZeroGPU Space or without ``spaces``.
RUNNER = gpu_runner(spaces_module())


def infer(
    image: np.ndarray,
    scales: Iterable[float],
    *,
    model: MultiScaleSegmenter,
    method: str,
    options: InferOptions,
    progress: ProgressFn | None = None,
    spaces: ModuleType | bool | None = True,
) -> InferenceResult:
    """Returns the :class:`InferenceResult` of the cascade run with ``options``: through ZeroGPU
    on a ZeroGPU Space, else directly.

    ``spaces`` is for tests: ``True`` uses :data:`RUNNER`; a module decorates with its ``GPU``;
    ``False``/``None`` runs directly. Per-pass ``progress`` is reported only on the direct
    path (a ZeroGPU call runs in another process).
    """
    runner = RUNNER if spaces is True else gpu_runner(spaces or None)  # type: ignore[arg-type]
    cascade = tuple(float(s) for s in scales)
    if runner is None:
        return hmsa_core.infer(
            image, cascade, model=model, method=method, options=options, progress=progress
        )
    return result_from_arrays(runner(image, cascade, model, method, options))
