"""Reading and normalising input images and label masks.

Everything the engine accepts as an image is turned into one form here: an ``(H, W, 3)``
float32 RGB array in [0, 1]. Bad input raises ``ValueError`` with a message a user can act on.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from hmsa_core.limits import DEFAULT_LIMITS, InputLimits

ImageLike = str | os.PathLike | bytes | Image.Image | np.ndarray | torch.Tensor


def _check_size(height: int, width: int, limits: InputLimits, what: str = "image") -> None:
    if height < 1 or width < 1:
        raise ValueError(f"{what} is empty ({height} x {width} pixels)")
    if height * width > limits.max_pixels:
        raise ValueError(
            f"{what} is too large: {width} x {height} = {height * width:,} pixels "
            f"(limit {limits.max_pixels:,}; set HMSA_MAX_PIXELS to change it)"
        )
    if max(height, width) > limits.max_side:
        raise ValueError(
            f"{what} side of {max(height, width)} pixels exceeds the limit of {limits.max_side} "
            "(set HMSA_MAX_SIDE to change it)"
        )


def open_image_file(
    source: str | os.PathLike | bytes, limits: InputLimits = DEFAULT_LIMITS
) -> Image.Image:
    """Returns the decoded PIL image of a file path or encoded bytes, EXIF orientation applied.

    The header is checked against ``limits`` before any pixel is decoded. Raises ``ValueError``
    for missing, empty, oversized, truncated, animated or non-image files.
    """
    if isinstance(source, bytes):
        data = source
        name = "uploaded file"
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            _check_size(height, width, limits, name)
            if getattr(img, "n_frames", 1) > 1:
                raise ValueError(
                    f"{name} is an animated image with {img.n_frames} frames; upload a single still image"
                )
            img.load()
    except ValueError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"{name} declares an absurd size and was refused: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"{name} is not a readable image (PNG, JPEG, WebP, TIFF, BMP or GIF expected)"
        ) from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise ValueError(f"{name} could not be decoded (truncated or corrupt?): {exc}") from exc
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img)
    return img


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


def _array_to_unit_float(arr: np.ndarray) -> np.ndarray:
    """Returns ``arr`` as float32 in [0, 1] according to its dtype."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("image holds NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 255.0:
            raise ValueError(
                f"float image values must lie in [0, 1] (or [0, 255]); got range [{lo:g}, {hi:g}]"
            )
        return out / 255.0 if hi > 1.0 else out
    raise ValueError(f"unsupported image dtype {arr.dtype}; use uint8, uint16, or float in [0, 1]")


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


def _tiff_pixels(
    source: str | os.PathLike | bytes, limits: InputLimits = DEFAULT_LIMITS
) -> np.ndarray | None:
    """Returns a TIFF's pixels at full precision (PIL reduces 16-bit RGB to 8 bits and cannot
    open float RGB), or ``None``.

    ``None`` when the data is not a single-page TIFF within ``limits`` (checked from the header
    before decoding) or tifffile cannot read it (PIL's decode and its error messages are used).
    """
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file() or path.stat().st_size > limits.max_file_bytes:
            return None
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) > limits.max_file_bytes:
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if len(tif.pages) != 1:
                return None
            height, width = int(tif.pages[0].imagelength), int(tif.pages[0].imagewidth)
            fits = height * width <= limits.max_pixels and max(height, width) <= limits.max_side
            arr = tif.pages[0].asarray() if fits else None
    except Exception:
        return None
    if arr is None:
        _check_size(height, width, limits)  # raises: refused from the header, never decoded
        return None
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
        arr = np.moveaxis(arr, 0, 2)  # planar (C, H, W) storage
    if arr.ndim not in (2, 3):
        return None
    return arr


def load_rgb(image: ImageLike, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Returns an ``(H, W, 3)`` float32 RGB array in [0, 1] from a path, bytes, PIL image or array.

    Grayscale, palette, RGBA, CMYK, 16-bit and float images are converted; EXIF rotation is
    honoured. Tensors are not accepted here (see :func:`prepare_input`).
    """
    if isinstance(image, (str, os.PathLike, bytes)):
        try:
            decoded = open_image_file(image, limits)  # checks size, format and integrity first
        except ValueError:
            tiff = _tiff_pixels(image, limits)  # tifffile reads TIFFs PIL cannot (float RGB)
            if tiff is None:
                raise
            decoded = None
        else:
            tiff = _tiff_pixels(image, limits)
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
