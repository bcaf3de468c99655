"""Which numeric precision and memory layout a forward pass runs in.

``precision`` is one of ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``. ``"auto"`` resolves to
``"bf16"`` on CUDA GPUs that support it and on CPUs with native bfloat16 arithmetic (the
``avx512_bf16`` or ``amx_bf16`` flags), else to ``"fp32"``. Reduced precision runs the model's
passes under autocast with channels-last tensors; everything after the pass (merging,
effective weights, metrics) stays float32. ``"fp32"`` is exact: contiguous layout, no autocast.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import torch

#: Every precision a caller may ask for; ``"auto"`` is resolved before a pass runs.
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")

#: The precisions a pass can actually run in, and their autocast dtype (``None``: no autocast).
RUN_DTYPES: Mapping[str, torch.dtype | None] = MappingProxyType(
    {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
)

#: CPU flags (``/proc/cpuinfo``) that mean the cores compute in bfloat16 natively.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """Returns the set of CPU feature flags listed on the ``flags`` lines of ``/proc/cpuinfo`` text."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Returns True when this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX-BF16).

    Read from ``/proc/cpuinfo`` (Linux); elsewhere from PyTorch's CPU capability when it names
    AMX. Unknown means False: ``"auto"`` then keeps float32 rather than guess.
    """
    info = Path("/proc/cpuinfo")
    try:
        text = info.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if text:
        return bool(cpu_flags(text) & NATIVE_BF16_FLAGS)
    capability = str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")())
    return "AMX" in capability.upper()


def cuda_has_bf16(device: torch.device) -> bool:
    """Returns True when ``device`` is a CUDA GPU that supports bfloat16."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def choose_precision(
    requested: str, device_type: str, *, cpu_bf16: bool, cuda_bf16: bool = True
) -> str:
    """Returns the precision a pass runs in (``"fp32"``, ``"bf16"`` or ``"fp16"``), a pure function.

    Args:
        requested: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device_type: ``"cpu"``, ``"cuda"`` or another torch device type.
        cpu_bf16: whether the CPU computes bfloat16 natively.
        cuda_bf16: whether the GPU supports bfloat16 (fp16 is used by ``"auto"`` otherwise).

    Raises:
        ValueError: an unknown precision, or one the device cannot run.
    """
    if requested not in PRECISION_CHOICES:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {requested!r}"
        )
    if requested == "fp32":
        return "fp32"
    if device_type == "cuda":
        if requested == "auto":
            return "bf16" if cuda_bf16 else "fp16"
        if requested == "bf16" and not cuda_bf16:
            raise ValueError("this GPU has no bfloat16 support; use 'fp16', 'auto' or 'fp32'")
        return requested
    if device_type == "cpu":
        if requested == "auto":
            return "bf16" if cpu_bf16 else "fp32"
        if requested == "bf16":
            if not cpu_bf16:
                raise ValueError(
                    "precision 'bf16' needs a CPU with native bfloat16 (AVX512-BF16 or AMX) or "
                    "CUDA; this CPU has neither: use 'auto' or 'fp32'"
                )
            return "bf16"
        raise ValueError(f"precision {requested!r} is only supported on CUDA; use 'auto' or 'fp32'")
    if requested == "auto":
        return "fp32"
    raise ValueError(
        f"precision {requested!r} is not supported on {device_type}; use 'auto' or 'fp32'"
    )


def resolve_precision(requested: str, device: torch.device) -> str:
    """Returns the precision a pass on ``device`` runs in when ``requested`` is asked for
    (``"auto"`` resolved by what this machine supports; see :func:`choose_precision`)."""
    return choose_precision(
        requested,
        device.type,
        cpu_bf16=device.type == "cpu" and cpu_has_native_bf16(),
        cuda_bf16=device.type != "cuda" or cuda_has_bf16(device),
    )


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Returns the autocast context of a resolved ``precision`` on ``device`` (a no-op for fp32)."""
    if precision not in RUN_DTYPES:
        raise ValueError(f"resolve 'auto' first: {precision!r} is not a run precision")
    dtype = RUN_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def uses_channels_last(precision: str) -> bool:
    """Returns True when passes in this resolved precision take channels-last inputs
    (reduced precision only: float32 keeps the contiguous layout and its exact results)."""
    return precision != "fp32"


def to_layout(x: torch.Tensor, precision: str) -> torch.Tensor:
    """Returns the ``(B, 3, h, w)`` pass input in the memory layout of ``precision``
    (channels-last for reduced precision, so the first convolution already runs channels-last)."""
    if uses_channels_last(precision):
        return x.contiguous(memory_format=torch.channels_last)
    return x
