"""Decoding: every supported format, orientation, colour modes, limits and bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.errors import ImageTooLarge, InvalidImage
from app.face.decode import DecodeLimits, decode_image


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _gradient(width: int = 40, height: int = 30) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    red = np.broadcast_to(x, (height, width))
    green = np.broadcast_to(y[:, None], (height, width))
    blue = np.full((height, width), 80, dtype=np.uint8)
    return Image.fromarray(np.dstack([red, green, blue]), mode="RGB")


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("GIF", {}),
        ("TIFF", {}),
    ],
)
def test_formats_decode_to_rgb_of_the_right_size(fmt: str, params: dict[str, object]) -> None:
    source = _gradient()
    image = decode_image(_encode(source, fmt, **params))
    assert image.shape == (30, 40, 3)
    assert image.dtype == np.uint8
    if fmt in ("PNG", "WEBP", "BMP", "TIFF"):  # lossless: exact pixels back
        np.testing.assert_array_equal(image, np.asarray(source))


def test_pgm_greyscale_becomes_three_equal_channels() -> None:
    grey = Image.fromarray(np.arange(92 * 112, dtype=np.uint32).reshape(112, 92).astype(np.uint8))
    image = decode_image(_encode(grey, "PPM"))  # Pillow writes mode L as binary PGM (P5)
    assert image.shape == (112, 92, 3)
    np.testing.assert_array_equal(image[..., 0], np.asarray(grey))
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"),
    [  # where the stored image's top-left corner must be shown (EXIF 2.3, tag 0x0112)
        (1, (30, 40), "top-left"),
        (2, (30, 40), "top-right"),  # mirrored
        (3, (30, 40), "bottom-right"),  # rotated 180
        (6, (40, 30), "top-right"),  # rotate 90 CW to display
        (8, (40, 30), "bottom-left"),  # rotate 90 CCW to display
    ],
)
def test_exif_orientation_puts_the_pixels_where_it_says(
    orientation: int, shape: tuple[int, int], corner: str
) -> None:
    stored = np.full((30, 40, 3), 255, dtype=np.uint8)
    stored[:10, :10] = (255, 0, 0)  # a red mark on the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data)
    assert image.shape == (*shape, 3)
    h, w = shape
    corners = {
        "top-left": image[2, 2],
        "top-right": image[2, w - 3],
        "bottom-left": image[h - 3, 2],
        "bottom-right": image[h - 3, w - 3],
    }
    for name, pixel in corners.items():
        red = pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60
        assert red == (name == corner), (name, pixel)


def test_gif_first_frame_is_used() -> None:
    first = Image.new("RGB", (20, 20), (255, 0, 0))
    second = Image.new("RGB", (20, 20), (0, 0, 255))
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])
    image = decode_image(buffer.getvalue())
    assert image[10, 10, 0] > 200 and image[10, 10, 2] < 50


def test_alpha_is_flattened_on_white() -> None:
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image = decode_image(_encode(rgba, "PNG"))
    assert (image == 255).all()


def test_palette_with_transparency_is_flattened() -> None:
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0
    image = decode_image(_encode(palette, "PNG", transparency=0))
    assert (image == 255).all()


def test_cmyk_is_converted() -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    image = decode_image(_encode(cmyk, "JPEG", quality=100))
    assert image[4, 4, 0] > 200 and image[4, 4, 1] < 60 and image[4, 4, 2] < 60


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = decode_image(_encode(Image.fromarray(values), "PNG"))
    np.testing.assert_array_equal(image[0, :, 0], [0, 128, 255])


def test_empty_input_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode_image(b"")


def test_garbage_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode_image(b"this is not an image at all" * 10)


def test_unsupported_format_is_invalid() -> None:
    with pytest.raises(InvalidImage):
        decode_image(_encode(_gradient(), "ICO"))


def test_truncated_jpeg_is_invalid() -> None:
    data = _encode(_gradient(200, 200), "JPEG", quality=90)
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_truncated_png_is_invalid() -> None:
    data = _encode(_gradient(200, 200), "PNG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2])


def test_too_many_bytes_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(b"\xff" * 101, DecodeLimits(max_bytes=100))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge canvas: what a decompression bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLarge):
        decode_image(_png_header_only(50_000, 50_000))  # 2.5 gigapixels, a few bytes


def test_pixel_limit_is_configurable() -> None:
    data = _encode(_gradient(100, 100), "PNG")
    with pytest.raises(ImageTooLarge):
        decode_image(data, DecodeLimits(max_pixels=9_999))
    assert decode_image(data, DecodeLimits(max_pixels=10_000)).shape == (100, 100, 3)
