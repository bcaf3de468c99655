"""TIFF pixels at full precision (PIL reduces 16-bit RGB to 8 bits and cannot open float RGB),
with the page's header checked against the limits before any pixel is decoded."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from hmsa_core.image_checks import (
    _ARRAY_ORIENT,
    MAX_CHANNELS,
    ORIENTATION_TAG,
    _check_size,
    max_decoded_bytes,
)
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits


@dataclass(frozen=True)
class _TiffHeader:
    """What a TIFF's first page declares, read before any pixel is decoded."""

    height: int
    width: int
    depth: int
    samples: int
    planar: bool
    decoded_bytes: int
    chunk_pixels: int
    chunk_bytes: int
    orientation: int


def _tiff_bytes(source: str | os.PathLike | bytes, limits: InputLimits) -> bytes | None:
    """Returns the bytes of ``source`` when it is a TIFF within the file-size limit, else None."""
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file() or path.stat().st_size > limits.max_file_bytes:
            return None
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) > limits.max_file_bytes:
        return None
    return data


def _tiff_header(page: tifffile.TiffPage) -> _TiffHeader | None:
    """Returns the :class:`_TiffHeader` of a page, or None when tifffile cannot decode its
    sample format."""
    if page.dtype is None:
        return None
    itemsize = int(np.dtype(page.dtype).itemsize)
    if page.is_tiled:
        chunk_pixels = max(1, int(page.tiledepth)) * int(page.tilelength) * int(page.tilewidth)
    else:
        chunk_pixels = int(page.rowsperstrip) * int(page.imagewidth)
    tag = page.tags.get(ORIENTATION_TAG)
    try:
        orientation = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        orientation = 1
    return _TiffHeader(
        height=int(page.imagelength),
        width=int(page.imagewidth),
        depth=int(page.imagedepth),
        samples=int(page.samplesperpixel),
        planar=int(page.planarconfig) == 2 and int(page.samplesperpixel) > 1,
        decoded_bytes=int(page.nbytes),
        chunk_pixels=chunk_pixels,
        chunk_bytes=math.prod(int(n) for n in page.chunks) * itemsize,
        orientation=orientation if 1 <= orientation <= 8 else 1,
    )


def _check_tiff_header(header: _TiffHeader, limits: InputLimits, name: str) -> None:
    """Raises ``ValueError`` unless the TIFF decodes to one 2-D image of at most
    :data:`MAX_CHANNELS` samples within ``limits`` (pixels, side and decoded bytes)."""
    _check_size(header.height, header.width, limits, name)
    if header.depth != 1:
        raise ValueError(
            f"{name} is a volume of {header.depth} image planes; give a single 2-D image"
        )
    if not 1 <= header.samples <= MAX_CHANNELS:
        raise ValueError(
            f"{name} has {header.samples} samples per pixel; at most {MAX_CHANNELS} "
            "(RGB + alpha) are supported"
        )
    budget = max_decoded_bytes(limits)
    if max(header.decoded_bytes, header.chunk_bytes) > budget:
        raise ValueError(
            f"{name} would decode to {max(header.decoded_bytes, header.chunk_bytes):,} bytes, "
            f"over the {budget:,}-byte limit (set HMSA_MAX_PIXELS to change it)"
        )
    if header.chunk_pixels > limits.max_pixels:
        raise ValueError(
            f"{name} stores its pixels in tiles or strips of {header.chunk_pixels:,} pixels, "
            f"over the limit of {limits.max_pixels:,} (set HMSA_MAX_PIXELS to change it)"
        )


def _parse_tiff(data: bytes) -> _TiffHeader | None:
    """Returns the header of a single-page TIFF, or None (several pages, or unreadable by tifffile)."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return _tiff_header(tif.pages[0]) if len(tif.pages) == 1 else None
    except Exception:  # tifffile's many errors: let PIL's decode and message stand
        return None


def _decode_tiff(data: bytes, header: _TiffHeader) -> np.ndarray | None:
    """Returns the ``(H, W)`` or ``(H, W, C)`` pixels of a checked TIFF, oriented upright, or None."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            arr = tif.pages[0].asarray()
    except Exception:  # e.g. a codec tifffile lacks: PIL's decode is used instead
        return None
    if header.planar and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, 2)  # planar (C, H, W) storage
    if arr.ndim not in (2, 3) or arr.shape[:2] != (header.height, header.width):
        return None
    orient = _ARRAY_ORIENT.get(header.orientation)
    return np.ascontiguousarray(orient(arr)) if orient is not None else arr


def tiff_pixels(
    source: str | os.PathLike | bytes, limits: InputLimits = DEFAULT_LIMITS
) -> np.ndarray | None:
    """Returns a TIFF's ``(H, W)`` or ``(H, W, C)`` pixels at full precision, its orientation
    tag applied (PIL reduces 16-bit RGB to 8 bits and cannot open float RGB), or ``None``.

    ``None`` when the data is not a single-page TIFF or tifffile cannot read it (PIL's decode
    and its error messages are used). Raises ``ValueError``, from the header and before
    decoding, when the page is over ``limits``, has more than :data:`MAX_CHANNELS` samples per
    pixel, more than one image plane, or would decode to more than :func:`max_decoded_bytes`.
    """
    data = _tiff_bytes(source, limits)
    header = _parse_tiff(data) if data is not None else None
    if data is None or header is None:
        return None
    name = "uploaded file" if isinstance(source, bytes) else Path(source).name
    _check_tiff_header(header, limits, name)  # refused from the header, never decoded
    return _decode_tiff(data, header)
