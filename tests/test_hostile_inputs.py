"""Hostile and broken image files: each gets a clear ValueError, or is read correctly."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

import hmsa_core
from hmsa_core.images import (
    load_mask,
    load_rgb,
    max_decoded_bytes,
    open_image_file,
    rgb_to_uint8,
)
from hmsa_core.limits import InputLimits
from tests.hostile_files import random_rgb, write_hostile_files


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


OUR_SIZE_MESSAGE = r"is too large: {w} x {h} = [\d,]+ pixels \(limit [\d,]+; set HMSA_MAX_PIXELS"


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    """Our header check answers first, with our message, not Pillow's own bomb error."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(60000, 60000))
    with pytest.raises(ValueError, match=OUR_SIZE_MESSAGE.format(w=60000, h=60000)):
        load_rgb(path)


def test_header_over_our_default_limit_gets_our_message():
    with pytest.raises(ValueError, match=OUR_SIZE_MESSAGE.format(w=8000, h=8000)):
        load_rgb(png_declaring(8000, 8000))


@pytest.mark.parametrize("side", [10000, 14000])  # 100 MP: Pillow warns; 196 MP: Pillow errors
def test_a_raised_pixel_limit_is_not_overridden_by_pillows_bomb_limit(monkeypatch, side):
    """With HMSA_MAX_PIXELS above Pillow's ~89 MP, our limit decides (decode stubbed out)."""
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: None)  # no 100 MP decode
    before = Image.MAX_IMAGE_PIXELS
    raised = InputLimits(max_pixels=250_000_000, max_side=20000)
    img = open_image_file(png_declaring(side, side), raised)
    assert img.size == (side, side)
    assert before == Image.MAX_IMAGE_PIXELS  # Pillow's global is left alone
    with pytest.raises(ValueError, match=OUR_SIZE_MESSAGE.format(w=side, h=side)):
        open_image_file(png_declaring(side, side), InputLimits())


def test_pillows_global_limit_does_not_decide_for_us(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # far below the 40 x 64 image
    rgb = load_rgb(encode(RGB, "PNG"))
    np.testing.assert_allclose(rgb * 255, RGB, atol=1e-3)


def tiff_bytes(array: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kwargs)
    return buf.getvalue()


@pytest.fixture
def decodes(monkeypatch) -> list:
    """Records every tifffile page decode (still performing it)."""
    calls: list = []
    original = tifffile.TiffPage.asarray

    def spy(self, *args, **kwargs):
        calls.append(self.shape)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffPage, "asarray", spy)
    return calls


def test_tiff_with_thousands_of_samples_is_refused_before_decoding(decodes):
    """160 KB of zlib data declaring 64 x 64 x 20000 samples (82 MB decoded): never decoded."""
    data = tiff_bytes(
        np.zeros((64, 64, 20000), np.uint8),
        photometric="minisblack",
        planarconfig="contig",
        compression="zlib",
    )
    assert len(data) < 200_000
    with pytest.raises(ValueError, match=r"20000 samples per pixel; at most 4"):
        load_rgb(data)
    assert decodes == []


def test_tiff_volume_is_refused_before_decoding(decodes):
    data = tiff_bytes(np.zeros((5, 40, 64), np.uint8), volumetric=True, tile=(16, 16))
    with pytest.raises(ValueError, match=r"volume of 5 image planes"):
        load_rgb(data)
    assert decodes == []


def test_tiff_with_huge_tiles_is_refused_before_decoding(decodes):
    """A 40 x 64 image in one 8192 x 8192 tile would allocate the whole tile to decode it."""
    data = tiff_bytes(
        np.zeros((40, 64, 3), np.uint8), photometric="rgb", tile=(8192, 8192), compression="zlib"
    )
    with pytest.raises(ValueError, match=r"tiles or strips of 67,108,864 pixels"):
        load_rgb(data)
    assert decodes == []


def test_tiff_decoded_bytes_are_bounded_by_the_limits(decodes):
    """Bound: max_pixels x 4 channels x 8 bytes; a 64 x 64 float64 RGBA tile exceeds it here."""
    small = InputLimits(max_pixels=1000)
    assert max_decoded_bytes(small) == 1000 * 4 * 8
    data = tiff_bytes(
        np.zeros((30, 30, 4), np.float64), photometric="rgb", extrasamples=[2], tile=(64, 64)
    )
    with pytest.raises(ValueError, match=r"would decode to 131,072 bytes, over the 32,000-byte"):
        load_rgb(data, small)
    assert decodes == []
    assert load_rgb(data).shape == (30, 30, 3)  # within the default limits it is read
    assert len(decodes) == 1


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


SMOOTH = random_rgb((40, 64), seed=3)  # smooth blobs: JPEG keeps them within a few levels


def with_orientation(array: np.ndarray, orientation: int, fmt: str) -> bytes:
    img = Image.fromarray(array)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def test_exif_rotation_is_honoured():
    """Orientation 6 means: rotate 90 degrees clockwise to display (np.rot90 with k=-1)."""
    rgb = load_rgb(with_orientation(SMOOTH, 6, "JPEG"))
    clockwise = np.rot90(SMOOTH, k=-1).astype(np.float32) / 255
    counter_clockwise = np.rot90(SMOOTH, k=1).astype(np.float32) / 255
    assert rgb.shape == (64, 40, 3)
    assert np.abs(rgb - clockwise).mean() < 3 / 255
    assert np.abs(rgb - counter_clockwise).mean() > 20 / 255


#: EXIF orientation -> what displays it upright, written with numpy from the EXIF definitions.
UPRIGHT = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.rot90(np.fliplr(a), 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(np.fliplr(a), -1),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_of_a_lossless_png(orientation):
    rgb = load_rgb(with_orientation(RGB, orientation, "PNG"))
    np.testing.assert_array_equal(rgb_to_uint8(rgb), UPRIGHT[orientation](RGB))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_to_tifffiles_pixels(orientation):
    """16-bit RGB is read by tifffile (not Pillow), which must honour the orientation tag too."""
    ramp = np.linspace(0, 65535, 40 * 64 * 3).reshape(40, 64, 3).astype(np.uint16)
    data = tiff_bytes(ramp, photometric="rgb", extratags=[(0x0112, "H", 1, orientation, True)])
    rgb = load_rgb(data)
    np.testing.assert_allclose(rgb, UPRIGHT[orientation](ramp) / 65535.0, atol=1e-6)
    as_pillow = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))  # Pillow agrees
    assert as_pillow.size == (rgb.shape[1], rgb.shape[0])


@pytest.mark.parametrize("value", [0, 9, 300])
def test_an_invalid_orientation_tag_is_ignored(value):
    np.testing.assert_array_equal(rgb_to_uint8(load_rgb(with_orientation(RGB, value, "PNG"))), RGB)


def test_an_unreadable_exif_block_is_an_error_not_silently_ignored(monkeypatch):
    def broken(self):
        raise SyntaxError("not a TIFF file (header b'garbage' not valid)")

    data = with_orientation(RGB, 6, "JPEG")
    monkeypatch.setattr(Image.Image, "getexif", broken)
    with pytest.raises(ValueError, match=r"unreadable EXIF block.*orientation is unknown"):
        load_rgb(data)


@pytest.mark.parametrize(
    ("low", "high", "expected_high"),
    [
        (0.0, 1.0, 1.0),
        (0.0, 1.01, 1.0),  # [0, 1] overshoot: clipped, not divided by 255 (which made it black)
        (-0.01, 1.05, 1.0),  # small undershoot is clipped too
        (0.0, 1.2, 1.2 / 255),  # beyond 1.05: the [0, 255] scale
        (0.0, 255.0, 1.0),
    ],
)
def test_float_images_follow_the_documented_ranges(low, high, expected_high):
    arr = np.linspace(low, high, 16 * 16 * 3, dtype=np.float64).reshape(16, 16, 3)
    rgb = load_rgb(arr)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb.max() == pytest.approx(expected_high, abs=1e-6)


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (-0.5, 1.0, r"\[0, 1\] \(up to 1.05, clipped\) or in \[0, 255\]; got range \[-0.5, 1\]"),
        (0.0, 255.5, r"or in \[0, 255\]; got range \[0, 255.5\]"),
        (-3.0, 200.0, r"got range \[-3, 200\]"),
        (0.0, 1e300, r"got range \[0, 1e\+300\]"),  # float64 too big for float32: no inf
    ],
)
def test_floats_outside_the_accepted_ranges_are_refused(low, high, message):
    arr = np.linspace(low, high, 8 * 8 * 3, dtype=np.float64).reshape(8, 8, 3)
    with pytest.raises(ValueError, match=message):
        load_rgb(arr)


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


def test_every_hostile_image_file_gets_its_expected_answer_from_the_engine(model, tmp_path):
    """The cases the app tests send (tests/hostile_files.py), checked on the engine directly."""
    for case in write_hostile_files(tmp_path).values():
        if case.kind != "image":
            continue
        if case.expect == "ok":
            result = hmsa_core.infer(case.path, (0.5, 1.0), model=model, cache=None)
            assert result.size == case.size, case.name
            continue
        with pytest.raises(ValueError, match=case.message_pattern):
            hmsa_core.infer(case.path, (0.5, 1.0), model=model, cache=None, limits=InputLimits())
