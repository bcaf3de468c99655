"""Hostile and broken inputs of issue 8, written as real files (and cascades) for the app tests.

:func:`write_hostile_files` writes every image and mask case into a folder and says what each
must produce: a clear error matching a pattern, or a successful run with a known input size.
:data:`HOSTILE_CASCADES` lists the bad scale cascades, as the numbers an API would send and as
the text a user would type.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

#: ``(H, W)`` of the well-formed image the mask cases belong to (small: runs take well under 1 s).
GOOD_SIZE: tuple[int, int] = (48, 80)
#: ``(H, W)`` of the well-formed images of the "ok" cases, before any EXIF rotation.
OK_SIZE: tuple[int, int] = (40, 64)
#: File name of the well-formed image written next to the hostile ones.
GOOD_IMAGE = "good.png"


@dataclass(frozen=True)
class HostileCase:
    """One input file and what an app must answer to it.

    Attributes:
        name: short identifier, e.g. ``"decompression_bomb"``.
        path: the file written.
        kind: ``"image"`` (sent as the image) or ``"mask"`` (sent as the ground truth of
            :attr:`image`).
        expect: ``"error"`` (a clear message, no traceback) or ``"ok"`` (a normal result).
        message_pattern: regular expression the error message must match (``""`` for "ok").
        size: for "ok" cases, the ``(H, W)`` the decoded image has (EXIF rotation applied),
            before an app fits its maximum side; ``None`` otherwise.
        image: for mask cases, the well-formed image the mask is sent with.
    """

    name: str
    path: Path
    kind: Literal["image", "mask"]
    expect: Literal["error", "ok"]
    message_pattern: str
    size: tuple[int, int] | None = None
    image: Path | None = None


@dataclass(frozen=True)
class HostileCascade:
    """A bad scale cascade and the error it must produce.

    Attributes:
        name: short identifier, e.g. ``"empty"``.
        scales: the cascade as numbers (what an API client sends).
        text: the same cascade as free text (what a user types).
        message_pattern: regular expression the error message must match.
    """

    name: str
    scales: tuple[float, ...]
    text: str
    message_pattern: str


def _fifty_scales() -> tuple[float, ...]:
    return tuple(round(0.05 * (i + 1), 2) for i in range(50))


#: Every bad cascade of the issue: ``[]``, ``[0]``, ``[-1]``, ``[nan]``, ``[100]``, 50 scales.
HOSTILE_CASCADES: tuple[HostileCascade, ...] = (
    HostileCascade("empty", (), "", r"cascade is empty"),
    HostileCascade("zero", (0.0,), "0", r"scale 0 must be greater than 0"),
    HostileCascade("negative", (-1.0,), "-1", r"scale -1 must be greater than 0"),
    HostileCascade("nan", (float("nan"),), "nan", r"scale nan is not a finite number"),
    HostileCascade("hundred", (100.0,), "100", r"scale 100 is above the maximum"),
    HostileCascade(
        "fifty_scales",
        _fifty_scales(),
        ", ".join(f"{s:g}" for s in _fifty_scales()),
        r"50 distinct scales given; at most \d+ are allowed",
    ),
)


def png_declaring(width: int, height: int) -> bytes:
    """Returns a tiny PNG whose header declares ``width`` x ``height`` RGB pixels (the header
    of a decompression bomb; the pixel data is a few bytes)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def sample_bomb_tiff() -> bytes:
    """Returns a ~160 KB zlib TIFF declaring 64 x 64 pixels of 20000 samples each (82 MB if
    decoded): small on disk, huge in memory."""
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        np.zeros((64, 64, 20000), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
        compression="zlib",
    )
    return buffer.getvalue()


def random_rgb(size: tuple[int, int], seed: int) -> np.ndarray:
    """Returns an ``(H, W, 3)`` uint8 image of smooth random colour blobs."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))


def write_good_image(path: Path, size: tuple[int, int] = GOOD_SIZE, seed: int = 0) -> Path:
    """Writes a well-formed ``(H, W)`` RGB PNG to ``path`` and returns ``path``."""
    Image.fromarray(random_rgb(size, seed)).save(path)
    return path


def _jpeg(rgb: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, **kwargs)
    return buffer.getvalue()


def _float_tiff(path: Path, bad: float | None) -> None:
    h, w = OK_SIZE
    ramp = np.linspace(0.0, 1.0, h * w, dtype=np.float32).reshape(h, w)
    rgb = np.dstack([ramp, ramp[::-1], np.full_like(ramp, 0.5)])
    if bad is not None:
        rgb[h // 2, w // 3, 1] = bad
    tifffile.imwrite(path, rgb, photometric="rgb")


def write_hostile_files(folder: Path) -> dict[str, HostileCase]:
    """Writes every hostile and broken input of issue 8 into ``folder`` (created if needed).

    Returns:
        case name -> :class:`HostileCase`, images first, then masks (which go with the
        well-formed ``folder / GOOD_IMAGE`` of :data:`GOOD_SIZE`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = OK_SIZE
    rgb = random_rgb(OK_SIZE, seed=1)
    cases: list[HostileCase] = []

    def add(
        name: str,
        file: str,
        data: bytes | None,
        expect: Literal["error", "ok"],
        pattern: str,
        kind: Literal["image", "mask"] = "image",
        size: tuple[int, int] | None = None,
        image: Path | None = None,
    ) -> None:
        path = folder / file
        if data is not None:
            path.write_bytes(data)
        cases.append(HostileCase(name, path, kind, expect, pattern, size, image))

    # ---------------------------------------------------------------- refused images
    add(
        "decompression_bomb",
        "bomb.png",
        png_declaring(60000, 60000),
        "error",
        r"too large: 60000 x 60000",  # our header check's message, not Pillow's bomb error
    )
    add("tiff_sample_bomb", "samples.tif", sample_bomb_tiff(), "error", r"20000 samples per pixel")
    whole = _jpeg(rgb)
    add(
        "truncated_jpeg",
        "truncated.jpg",
        whole[: len(whole) // 2],
        "error",
        r"truncated or corrupt",
    )
    add("zero_bytes", "empty.png", b"", "error", r"empty")
    add(
        "text_as_png",
        "notes.png",
        b"this is a text file, not a picture\n",
        "error",
        r"not a readable image",
    )
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    frames[0].save(
        folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0
    )
    add("animated_gif", "animated.gif", None, "error", r"animated image with 2 frames")
    frames[0].save(
        folder / "animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0
    )
    add("animated_webp", "animated.webp", None, "error", r"animated image with 2 frames")
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(folder / "one_pixel.png")
    add("one_pixel", "one_pixel.png", None, "error", r"1 x 1 image .*minimum side")
    Image.new("RGB", (20000, 8), (90, 120, 60)).save(folder / "strip.png")
    add("extreme_aspect", "strip.png", None, "error", r"side of 20000 pixels exceeds the limit")
    _float_tiff(folder / "nan.tif", float("nan"))
    add("nan_float_tiff", "nan.tif", None, "error", r"NaN or infinite")
    _float_tiff(folder / "inf.tif", float("inf"))
    add("inf_float_tiff", "inf.tif", None, "error", r"NaN or infinite")

    # ---------------------------------------------------------------- accepted images
    ramp16 = np.linspace(0, 65535, h * w).reshape(h, w).astype(np.uint16)
    tifffile.imwrite(
        folder / "sixteen_bit.tif", np.dstack([ramp16, ramp16[::-1], ramp16]), photometric="rgb"
    )
    add("sixteen_bit_tiff", "sixteen_bit.tif", None, "ok", "", size=OK_SIZE)
    _float_tiff(folder / "float.tif", None)
    add("float_tiff", "float.tif", None, "ok", "", size=OK_SIZE)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    add("cmyk_jpeg", "cmyk.jpg", None, "ok", "", size=OK_SIZE)
    exif = Image.fromarray(rgb).getexif()
    exif[0x0112] = 6  # orientation 6: rotate 90 degrees clockwise to display
    add(
        "exif_rotated_jpeg",
        "exif_rotated.jpg",
        _jpeg(rgb, exif=exif.tobytes()),
        "ok",
        "",
        size=(w, h),
    )

    # ---------------------------------------------------------------- masks
    good = write_good_image(folder / GOOD_IMAGE)
    gh, gw = GOOD_SIZE
    Image.fromarray(np.zeros((gh + 7, gw - 9), np.uint8), mode="L").save(folder / "mask_size.png")
    add(
        "mask_wrong_size",
        "mask_size.png",
        None,
        "error",
        rf"mask is {gw - 9} x {gh + 7} but the image is {gw} x {gh}",
        kind="mask",
        image=good,
    )
    ids = np.zeros(GOOD_SIZE, np.uint8)
    ids[: gh // 2] = 10
    ids[5:9, 5:9] = 77
    ids[20, 20] = 200
    Image.fromarray(ids, mode="L").save(folder / "mask_ids.png")
    add(
        "mask_ids_outside_label_set",
        "mask_ids.png",
        None,
        "error",
        r"outside the cityscapes label set .*77, 200",
        kind="mask",
        image=good,
    )
    return {case.name: case for case in cases}


class WritesMarker:
    """Unpickling this runs ``exec`` and creates a marker file: the checkpoint attack every
    loader must refuse (a test first unpickles one freely to prove the payload is live)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        """Returns the call an unpickler would make: ``exec`` of code that writes the marker."""
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def record_model_builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patches the checkpoint loaders' ``build`` to record the default device of every model
    they build (``"meta"`` for a skeleton, ``"cpu"`` for a real one); returns that list."""
    from hmsa_core.checkpoints import native

    devices: list[str] = []
    real = native.build

    def spy(*args: object, **kwargs: object) -> torch.nn.Module:
        devices.append(torch.get_default_device().type)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(native, "build", spy)
    return devices
