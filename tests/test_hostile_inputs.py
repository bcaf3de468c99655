"""Hostile and broken image files: each gets a clear ValueError, or is read correctly."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

import hmsa_core
from hmsa_core.images import load_mask, load_rgb
from hmsa_core.limits import InputLimits
from hmsa_core.models import build


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("lite", 19).eval()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (40, 64, 3), dtype=np.uint8)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(60000, 60000))
    with pytest.raises(ValueError, match=r"too large|absurd"):
        load_rgb(path)


def test_truncated_jpeg_is_refused(tmp_path):
    data = encode(RGB, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_rgb(path)


def test_zero_byte_and_text_files_are_refused(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_rgb(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    with pytest.raises(ValueError, match="not a readable image"):
        load_rgb(text)


def test_animated_gif_is_refused(tmp_path):
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(ValueError, match="animated"):
        load_rgb(path)


def test_tiny_and_extreme_aspect_images_name_the_scale_and_size(model, tmp_path):
    with pytest.raises(ValueError, match=r"scale 1 .* 1 x 1 .*minimum side"):
        hmsa_core.infer(np.zeros((1, 1, 3), np.uint8), (1.0,), model=model, cache=None)
    strip = np.zeros((8, 20000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"side of 20000 pixels exceeds the limit"):
        hmsa_core.infer(strip, (0.5, 1.0), model=model, cache=None)
    strip = np.zeros((8, 12000, 3), np.uint8)
    with pytest.raises(ValueError, match=r"scale 0.5 turns the 12000 x 8 image into 6000 x 4"):
        hmsa_core.infer(strip, (0.5, 1.0), model=model, cache=None)


def test_sixteen_bit_and_float_tiffs_are_read_with_their_precision(tmp_path):
    ramp16 = (np.linspace(0, 65535, 40 * 64).reshape(40, 64)).astype(np.uint16)
    p16 = tmp_path / "ramp16.tif"
    tifffile.imwrite(p16, np.dstack([ramp16] * 3))
    rgb16 = load_rgb(p16)
    np.testing.assert_allclose(rgb16[:, :, 0], ramp16 / 65535.0, atol=1e-6)
    ramp_f = np.linspace(0, 1, 40 * 64, dtype=np.float32).reshape(40, 64)
    pf = tmp_path / "rampf.tif"
    Image.fromarray(ramp_f, mode="F").save(pf)
    rgbf = load_rgb(pf)
    np.testing.assert_allclose(rgbf[:, :, 1], ramp_f, atol=1e-6)


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(RGB).convert("CMYK").save(path, quality=95)
    rgb = load_rgb(path)
    assert rgb.shape == (40, 64, 3)
    assert np.abs(rgb * 255 - RGB.astype(np.float32)).mean() < 20


def test_exif_rotation_is_honoured(tmp_path):
    img = Image.fromarray(RGB)  # 64 wide x 40 high
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    rgb = load_rgb(path)
    assert rgb.shape == (64, 40, 3)


def test_nan_and_inf_arrays_are_refused(model):
    for bad in (np.nan, np.inf, -np.inf):
        arr = np.full((16, 16, 3), 0.5, np.float32)
        arr[3, 4, 1] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            hmsa_core.infer(arr, (1.0,), model=model, cache=None)


def test_pixel_limits_are_settings(tmp_path, monkeypatch):
    small = InputLimits(max_pixels=1000)
    with pytest.raises(ValueError, match="limit 1,000"):
        load_rgb(RGB, small)
    from hmsa_core.limits import limits_from_env

    monkeypatch.setenv("HMSA_MAX_PIXELS", "1234")
    assert limits_from_env().max_pixels == 1234
    monkeypatch.setenv("HMSA_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="HMSA_MAX_PIXELS"):
        limits_from_env()


def test_masks_read_palette_indices_and_refuse_colour_masks(tmp_path):
    ids = RNG.integers(0, 19, (40, 64)).astype(np.uint8)
    ids[0, 0] = 255
    pal = Image.fromarray(ids, mode="P")
    pal.putpalette(hmsa_core.CITYSCAPES.flat_palette())
    path = tmp_path / "mask.png"
    pal.save(path)
    np.testing.assert_array_equal(load_mask(path), ids)
    colour = tmp_path / "colour.png"
    Image.fromarray(hmsa_core.CITYSCAPES.colorize(ids)).save(colour)
    with pytest.raises(ValueError, match="colour image"):
        load_mask(colour)
    with pytest.raises(ValueError, match="outside the cityscapes label set"):
        hmsa_core.CITYSCAPES.validate_mask(np.full((4, 4), 40))
