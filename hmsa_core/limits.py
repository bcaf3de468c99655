"""Input limits: the one place where pixel and cascade bounds are set.

Each limit can be overridden by an environment variable (read when :func:`limits_from_env`
is called), so a deployment can raise or lower them without code changes.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what the engine accepts.

    Attributes:
        max_pixels: largest decoded image area (H * W) accepted; larger files are refused
            before decoding (guards against decompression bombs). Env ``HMSA_MAX_PIXELS``.
        max_side: largest image height or width accepted. Env ``HMSA_MAX_SIDE``.
        max_file_bytes: largest uploaded file accepted. Env ``HMSA_MAX_FILE_BYTES``.
        max_scale: largest scale in a cascade. Env ``HMSA_MAX_SCALE``.
        max_scales: most scales in one cascade. Env ``HMSA_MAX_SCALES``.
        max_scaled_pixels: largest area of any one scale's resized input (bounds memory of a
            2.0 pass on a big image). Env ``HMSA_MAX_SCALED_PIXELS``.
        max_tile_pixels: largest input area one forward pass runs on; a scale whose input is
            larger runs in overlapping tiles blended together (see :mod:`hmsa_core.tiling`),
            so peak memory stops growing with the image. Applies to CPU passes (and any
            device but CUDA). Env ``HMSA_MAX_TILE_PIXELS``.
        cuda_max_tile_pixels: the same budget for passes on a CUDA GPU. Its default is
            ``max_scaled_pixels``, so GPU passes run whole (a 2048 x 4096 pass of the official
            model peaks near 5 GB in bf16, and tiling it made the cascade 1.8x slower on an
            H200); lower it for a small GPU. Env ``HMSA_CUDA_MAX_TILE_PIXELS``.
        tile_overlap: pixels each tile reaches beyond the part it owns (a multiple of 32);
            tiles are exact for models whose receptive-field radius is at most half of it.
            Env ``HMSA_TILE_OVERLAP``.
        gate_tile: side in pixels of the tiles attention gating decides on (at each scale's
            own resolution). Env ``HMSA_GATE_TILE``.
    """

    max_pixels: int = 40_000_000
    max_side: int = 16_384
    max_file_bytes: int = 50 * 1024 * 1024
    max_scale: float = 4.0
    max_scales: int = 8
    max_scaled_pixels: int = 16_777_216  # 4096 x 4096
    max_tile_pixels: int = 2_097_152  # 1024 x 2048
    cuda_max_tile_pixels: int = 16_777_216  # = max_scaled_pixels: whole passes
    tile_overlap: int = 96
    gate_tile: int = 128

    def tile_pixels(self, device_type: str) -> int:
        """Returns the tile budget of passes on a ``device_type`` device (``"cuda"``:
        ``cuda_max_tile_pixels``; anything else: ``max_tile_pixels``)."""
        return self.cuda_max_tile_pixels if device_type == "cuda" else self.max_tile_pixels


_ENV = {
    "max_pixels": ("HMSA_MAX_PIXELS", int),
    "max_side": ("HMSA_MAX_SIDE", int),
    "max_file_bytes": ("HMSA_MAX_FILE_BYTES", int),
    "max_scale": ("HMSA_MAX_SCALE", float),
    "max_scales": ("HMSA_MAX_SCALES", int),
    "max_scaled_pixels": ("HMSA_MAX_SCALED_PIXELS", int),
    "max_tile_pixels": ("HMSA_MAX_TILE_PIXELS", int),
    "cuda_max_tile_pixels": ("HMSA_CUDA_MAX_TILE_PIXELS", int),
    "tile_overlap": ("HMSA_TILE_OVERLAP", int),
    "gate_tile": ("HMSA_GATE_TILE", int),
}


def env_number(var: str, default: float, cast: type[int] | type[float] = int) -> float:
    """Returns the positive number in environment variable ``var`` read with ``cast`` (``int``
    or ``float``), or ``default`` when it is unset or empty: the one reader of numeric
    ``HMSA_*`` settings.

    Raises:
        ValueError: the value is not a positive ``cast`` (e.g. ``"HMSA_GRADIO_QUEUE_SIZE must
            be a positive integer, got 'x'"``).
    """
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    kind = "integer" if cast is int else "number"
    try:
        value = cast(raw)
    except ValueError:
        value = None
    if value is None or not value > 0 or value == float("inf"):
        raise ValueError(f"{var} must be a positive {kind}, got {raw!r}")
    return value


def limits_from_env(base: InputLimits | None = None) -> InputLimits:
    """Returns ``base`` (default :class:`InputLimits`) with any ``HMSA_*`` environment overrides.

    Raises:
        ValueError: a variable that is not a positive number (:func:`env_number`).
    """
    base = base or InputLimits()
    changes = {
        name: env_number(var, getattr(base, name), cast) for name, (var, cast) in _ENV.items()
    }
    return replace(base, **changes)


DEFAULT_LIMITS = InputLimits()


def cache_bytes_from_env(default: int) -> int:
    """Returns the per-scale cache budget in bytes: ``HMSA_CACHE_BYTES`` when it is a positive
    integer, else ``default`` (a bad value is reported with a warning, never a crash at import)."""
    try:
        return int(env_number("HMSA_CACHE_BYTES", default))
    except ValueError as exc:
        warnings.warn(f"{exc}; using {default} bytes", stacklevel=2)
        return default
