"""Reading and normalising input images and label masks.

Everything the engine accepts as an image is turned into one form here: an ``(H, W, 3)``
float32 RGB array in [0, 1]. Bad input raises ``ValueError`` with a message a user can act on.

Float pixels are read as [0, 1] when their maximum is at most ``1 + FLOAT_TOLERANCE`` (values
are clipped), as [0, 255] when it lies above that and at most 255; anything else (below
``-FLOAT_TOLERANCE``, above 255, NaN or infinite) is refused. File headers are checked against
the limits before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from hmsa_core.image_checks import FLOAT_TOLERANCE, ORIENTATION_TAG, _check_size
from hmsa_core.image_checks import MAX_CHANNELS as MAX_CHANNELS
from hmsa_core.image_checks import MAX_SAMPLE_BYTES as MAX_SAMPLE_BYTES
from hmsa_core.image_checks import max_decoded_bytes as max_decoded_bytes
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.tiff import tiff_pixels

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor

#: EXIF orientation -> the PIL transpose that displays the image upright (as ImageOps.exif_transpose).
_PIL_ORIENT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _read_source(source: str | os.PathLike | bytes, limits: InputLimits) -> tuple[bytes, str]:
    """Returns ``(encoded bytes, display name)`` of a path or bytes, checked against the file-size
    limit before reading. Raises ``ValueError`` for a missing, empty or oversized file."""
    if isinstance(source, bytes):
        data, name = source, "uploaded file"
    else:
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise ValueError(f"image file not found: {path}")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise ValueError(
                f"{name} is {size:,} bytes, over the {limits.max_file_bytes:,}-byte limit"
            )
        data = path.read_bytes()
    if len(data) == 0:
        raise ValueError(f"{name} is empty (0 bytes)")
    if len(data) > limits.max_file_bytes:
        raise ValueError(
            f"{name} is {len(data):,} bytes, over the {limits.max_file_bytes:,}-byte limit"
        )
    return data, name


def _try_formats(data: bytes, formats: list[str]) -> ImageFile.ImageFile | None:
    """Returns the first of Pillow's registered ``formats`` that parses ``data``'s header, or None.

    The same plugin search as ``Image.open`` (prefix check, then the plugin's header parser),
    without Image.open's global decompression-bomb limit: the caller checks the size itself.
    """
    prefix = data[:16]
    for fmt in formats:
        factory, accept = Image.OPEN[fmt]
        verdict = True if accept is None else accept(prefix)
        if isinstance(verdict, str) or not verdict:
            continue
        try:
            return factory(io.BytesIO(data), "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue
    return None


def _open_header(data: bytes) -> ImageFile.ImageFile:
    """Returns the image with only its header parsed (no pixel decoded, no size limit applied).

    Raises ``UnidentifiedImageError`` when no Pillow plugin recognises the data.
    """
    tried: list[str] = []
    for register_plugins in (Image.preinit, Image.init):
        register_plugins()
        fresh = [fmt for fmt in Image.ID if fmt not in tried]
        found = _try_formats(data, fresh)
        if found is not None:
            return found
        tried.extend(fresh)
    raise UnidentifiedImageError("no image format recognised")


def _exif_orientation(img: Image.Image, name: str) -> int:
    """Returns the image's EXIF orientation, 1..8.

    A missing tag or one that is not an orientation (not an integer in 1..8) gives 1 (as
    displayed by browsers); an EXIF block Pillow cannot parse raises ``ValueError``.
    """
    try:
        value = img.getexif().get(ORIENTATION_TAG)
    except (SyntaxError, ValueError, OSError, struct.error, TypeError, KeyError, IndexError) as exc:
        raise ValueError(
            f"{name} has an unreadable EXIF block, so its orientation is unknown ({exc}); "
            "re-save it without EXIF metadata"
        ) from exc
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        return 1
    return int(value)


def _decode(img: ImageFile.ImageFile, name: str) -> None:
    """Decodes ``img``'s pixels in place; ``ValueError`` for animated, truncated or corrupt data."""
    try:
        if getattr(img, "n_frames", 1) > 1:
            raise ValueError(
                f"{name} is an animated image with {img.n_frames} frames; upload a single still image"
            )
        img.load()
    except ValueError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own per-plugin checks at decode time (TIFF strips, GIF frames wider than the
        # canvas) still read its global Image.MAX_IMAGE_PIXELS.
        raise ValueError(
            f"{name} is too large for the image decoder and was refused: {exc}"
        ) from exc
    except (OSError, SyntaxError, EOFError, struct.error, IndexError, TypeError) as exc:
        raise ValueError(f"{name} could not be decoded (truncated or corrupt?): {exc}") from exc


def open_image_file(
    source: str | os.PathLike | bytes, limits: InputLimits = DEFAULT_LIMITS
) -> Image.Image:
    """Returns the decoded PIL image of a file path or encoded bytes, EXIF orientation applied.

    The header is checked against ``limits`` before any pixel is decoded, and before Pillow's own
    decompression-bomb limit could refuse it: our limits (``HMSA_MAX_PIXELS``) decide, with our
    message. Raises ``ValueError`` for missing, empty, oversized, truncated, animated or
    non-image files, and for an unreadable EXIF block.
    """
    data, name = _read_source(source, limits)
    try:
        img = _open_header(data)
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"{name} is not a readable image (PNG, JPEG, WebP, TIFF, BMP or GIF expected)"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(
            f"{name} is too large for the image decoder and was refused: {exc}"
        ) from exc
    except (OSError, SyntaxError, EOFError, struct.error) as exc:
        raise ValueError(f"{name} could not be decoded (truncated or corrupt?): {exc}") from exc
    width, height = img.size
    _check_size(height, width, limits, name)  # refused from the header, never decoded
    _decode(img, name)
    transpose = _PIL_ORIENT.get(_exif_orientation(img, name))
    return img.transpose(transpose) if transpose is not None else img


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Returns the image's pixels as a numpy array, keeping 16-bit and float precision."""
    mode = img.mode
    if mode in ("RGB", "L", "RGBA", "LA", "F", "I;16", "I;16B", "I;16L", "I;16N", "1"):
        if mode == "LA":
            img = img.convert("RGBA")
        arr = np.asarray(img)
        if mode == "1":
            arr = arr.astype(np.uint8) * 255
        if mode.startswith("I;16"):
            arr = arr.astype(np.uint16)
        return arr
    if mode == "I":  # 32-bit ints: PIL's container for 16-bit PNGs
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError("32-bit integer images are supported only with values in 0..65535")
        return arr.astype(np.uint16)
    if mode == "P" and "transparency" in img.info:
        return np.asarray(img.convert("RGBA"))
    return np.asarray(img.convert("RGB"))  # P, CMYK, YCbCr, LAB, HSV, ...


def _float_to_unit(arr: np.ndarray) -> np.ndarray:
    """Returns a float image as float32 in [0, 1].

    Values with a maximum up to ``1 + FLOAT_TOLERANCE`` are [0, 1] (clipped); a maximum in
    ``(1 + FLOAT_TOLERANCE, 255]`` means [0, 255] (divided by 255). Values below
    ``-FLOAT_TOLERANCE``, above 255, NaN or infinite raise ``ValueError``.
    """
    if not np.isfinite(arr).all():
        raise ValueError("image holds NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -FLOAT_TOLERANCE or hi > 255.0:
        raise ValueError(
            f"float image values must lie in [0, 1] (up to {1 + FLOAT_TOLERANCE:g}, clipped) or in "
            f"[0, 255]; got range [{lo:g}, {hi:g}]"
        )
    out = arr.astype(np.float32)
    if hi > 1.0 + FLOAT_TOLERANCE:
        out = out / np.float32(255.0)
    return np.clip(out, 0.0, 1.0)


def _array_to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Returns ``arr`` (same shape) as float32 in [0, 1] according to its dtype.

    bool, uint8 and uint16 are scaled by their range; floats follow :func:`_float_to_unit`.
    """
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        return _float_to_unit(arr)
    raise ValueError(
        f"unsupported image dtype {arr.dtype}; use uint8, uint16, or float in [0, 1] or [0, 255]"
    )


def array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Returns an ``(H, W, 3)`` float32 RGB array in [0, 1] from an ``(H, W)``, ``(H, W, 1)``,
    ``(H, W, 3)`` or ``(H, W, 4)`` array (alpha is composited over white).
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        unit = _array_to_unit_float(arr)
        rgb = np.repeat(unit[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        unit = _array_to_unit_float(arr)
        if arr.shape[2] == 4:
            alpha = unit[:, :, 3:4]
            rgb = unit[:, :, :3] * alpha + (1.0 - alpha)
        else:
            rgb = unit
    else:
        raise ValueError(
            f"image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}"
        )
    return np.ascontiguousarray(rgb, dtype=np.float32)


def load_rgb(image: ImageLike, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Returns an ``(H, W, 3)`` float32 RGB array in [0, 1] from a path, bytes, PIL image or array.

    Grayscale, palette, RGBA, CMYK, 16-bit and float images are converted (float ranges: see
    the module docstring); EXIF and TIFF orientation are honoured. Tensors are not accepted
    here (see :func:`prepare_input`).
    """
    if isinstance(image, (str, os.PathLike, bytes)):
        try:
            decoded = open_image_file(image, limits)  # checks size, format and integrity first
        except ValueError:
            tiff = tiff_pixels(image, limits)  # tifffile reads TIFFs PIL cannot (float RGB)
            if tiff is None:
                raise
            decoded = None
        else:
            tiff = tiff_pixels(image, limits)
        image = tiff if tiff is not None else decoded
    if isinstance(image, Image.Image):
        width, height = image.size
        _check_size(height, width, limits)
        arr = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ValueError(
            f"unsupported image type {type(image).__name__}; give a path, bytes, PIL image, "
            "numpy array or tensor"
        )
    if arr.ndim < 2:
        raise ValueError(f"image array must be at least 2-D, got shape {arr.shape}")
    _check_size(arr.shape[0], arr.shape[1], limits)
    return array_to_rgb(arr)


def rgb_to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Returns an ``(H, W, 3)`` uint8 copy of an ``(H, W, 3)`` float RGB array in [0, 1]."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def fit_max_side(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Returns ``rgb`` ``(H, W, 3)`` downsized (area-preserving) so its longer side is ``<= max_side``.

    Returns the input unchanged when it already fits or ``max_side`` is ``None``.
    """
    if max_side is None:
        return rgb
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    factor = max_side / max(h, w)
    new_size = (max(1, round(w * factor)), max(1, round(h * factor)))
    img = Image.fromarray(rgb_to_uint8(rgb)) if rgb.dtype != np.uint8 else Image.fromarray(rgb)
    out = np.asarray(img.resize(new_size, Image.Resampling.BOX), dtype=np.float32) / 255.0
    return out


def load_mask(mask: ImageLike, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Returns an ``(H, W)`` int64 class-id map from a mask file or array.

    Palette PNGs are read as their indices; 8/16-bit single-channel images as values;
    an RGB mask whose three channels are equal is read as one channel. Colour-coded RGB masks
    are refused (give class ids).
    """
    if isinstance(mask, (str, os.PathLike, bytes)):
        mask = open_image_file(mask, limits)
    if isinstance(mask, Image.Image):
        if mask.mode in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
            arr = np.asarray(mask)
        elif mask.mode in ("RGB", "RGBA"):
            arr = np.asarray(mask.convert("RGB"))
        else:
            raise ValueError(
                f"unsupported mask image mode {mask.mode!r}; save class ids as a grayscale or palette PNG"
            )
    elif isinstance(mask, torch.Tensor):
        arr = mask.detach().cpu().numpy()
    elif isinstance(mask, np.ndarray):
        arr = mask
    else:
        raise ValueError(f"unsupported mask type {type(mask).__name__}")
    if arr.ndim == 3:
        if (
            arr.shape[2] >= 3
            and np.array_equal(arr[:, :, 0], arr[:, :, 1])
            and np.array_equal(arr[:, :, 0], arr[:, :, 2])
        ) or arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
            raise ValueError(
                "mask is a colour image; give class ids (a grayscale or palette PNG), not colours"
            )
    if arr.ndim != 2:
        raise ValueError(f"mask must be (H, W) class ids, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError("mask must hold whole-number class ids")
    elif not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"unsupported mask dtype {arr.dtype}")
    return arr.astype(np.int64)
