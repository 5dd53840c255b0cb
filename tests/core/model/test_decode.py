"""Decoding: every supported format, orientation, colour modes, limits and bad input."""

from __future__ import annotations

import io
import pickle
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.config import Settings
from app.core.errors import ImageTooLarge, InvalidImage
from app.core.model.decode import DecodeLimits, decode_image, image_scale, scale_detection
from app.core.model.decode_budget import PixelBudget
from app.core.model.pipeline import FacePipeline
from app.core.model.types import Detection

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"


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


# ---------------------------------------------------------------- reduced decoding


def _photo_strip(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """A real LFW face scaled to the strip's height, pasted at a third of its width."""
    canvas = Image.new("RGB", (width, height), (128, 128, 128))
    face = Image.open(next(FACES.glob("*.jpg"))).convert("RGB")
    canvas.paste(face.resize((height, height), Image.Resampling.BILINEAR), (width // 3, 0))
    return _encode(canvas, fmt, **({"quality": 92} if fmt == "JPEG" else {}))


@pytest.mark.parametrize(
    ("size", "fmt", "shape"),
    [
        ((5000, 5000), "JPEG", (2500, 2500)),  # the decoder's 1/2: long side >= 1600
        ((12000, 800), "JPEG", (200, 3000)),  # 1/4
        ((3199, 100), "JPEG", (100, 3199)),  # 1/2 would be under 1600: full size
        ((5000, 3000), "PNG", (1000, 1667)),  # box-reduced by 3
        ((1600, 1600), "PNG", (1600, 1600)),  # small enough already
    ],
)
def test_large_images_are_decoded_reduced_with_their_scale(
    size: tuple[int, int], fmt: str, shape: tuple[int, int]
) -> None:
    data = _encode(_gradient(*size), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    image = decode_image(data, DecodeLimits(work_side=1600))
    assert image.shape == (*shape, 3)
    sx, sy = image_scale(image)
    assert (sx * shape[1], sy * shape[0]) == pytest.approx(size)
    assert decode_image(data).shape == (size[1], size[0], 3)  # without work_side: full size


def test_reduced_decoding_keeps_the_pixels() -> None:
    """The reduced image is the full one, smaller: a box average of it, within JPEG's
    own rounding."""
    data = _encode(_gradient(4000, 3600), "JPEG", quality=95)
    reduced = decode_image(data, DecodeLimits(work_side=1600))
    full = Image.fromarray(decode_image(data)).resize(reduced.shape[1::-1], Image.Resampling.BOX)
    difference = np.abs(reduced.astype(int) - np.asarray(full, dtype=int))
    assert difference.mean() < 1.5 and difference.max() <= 12


def test_orientation_and_scale_of_a_reduced_image() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: width and height swap
    data = _encode(_gradient(4000, 2000), "JPEG", quality=90, exif=exif.tobytes())
    image = decode_image(data, DecodeLimits(work_side=1600))
    assert image.shape == (2000, 1000, 3)
    assert image_scale(image) == (2.0, 2.0)
    # a copy or a crop is a plain image in its own pixels
    assert image_scale(image[10:20].copy()) == (1.0, 1.0)
    assert image_scale(pickle.loads(pickle.dumps(image))) == (2.0, 2.0)


def test_scale_detection() -> None:
    face = Detection(
        box=(10.0, 20.0, 30.0, 60.0),
        score=0.99,
        landmarks=np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=np.float32),
    )
    scaled = scale_detection(face, 2.0, 3.0)
    assert scaled.box == (20.0, 60.0, 60.0, 180.0) and scaled.score == 0.99
    np.testing.assert_allclose(scaled.landmarks[0], [2.0, 6.0])
    assert scale_detection(face, 1.0, 1.0) is face


def test_the_pixel_budget_bounds_decodes_at_once() -> None:
    """Eight threads decoding 4 M-pixel PNGs under a budget of 9 M pixels: never more
    than two at once, and all of them done."""
    budget = PixelBudget(9_000_000)
    data = _encode(Image.new("RGB", (2000, 2000), (1, 2, 3)), "PNG")
    limits = DecodeLimits(budget=budget)
    with ThreadPoolExecutor(8) as pool:
        shapes = list(pool.map(lambda _: decode_image(data, limits).shape, range(8)))
    assert shapes == [(2000, 2000, 3)] * 8
    assert budget.peak == 8_000_000 and budget.used == 0


def test_an_image_over_the_budget_runs_alone() -> None:
    budget = PixelBudget(1_000)
    data = _encode(_gradient(100, 100), "PNG")
    assert decode_image(data, DecodeLimits(budget=budget)).shape == (100, 100, 3)
    assert budget.peak == 1_000 and budget.used == 0


def test_the_budget_is_released_when_decoding_fails() -> None:
    budget = PixelBudget(1_000_000)
    data = _encode(_gradient(200, 200), "PNG")
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 2], DecodeLimits(budget=budget))
    assert budget.used == 0


# ---------------------------------------------------------------- in the pipeline


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline.load(Settings(_env_file=None))


def test_face_boxes_are_in_the_sent_image_pixels(pipeline: FacePipeline) -> None:
    """A 3300x1100 JPEG is decoded at half size; its face box and landmarks come back
    in the sent image's pixels, where a full-size decode finds them (within 2 px of a
    530-px face), and its embedding is the full-size one's (0.0002 apart; tau 0.36)."""
    data = _photo_strip(3300, 1100)
    reduced = pipeline.decode(data)
    assert reduced.shape == (550, 1650, 3) and image_scale(reduced) == (2.0, 2.0)
    (face,) = pipeline.detect(reduced)
    (reference,) = pipeline.detect(decode_image(data))  # full size, scale 1
    np.testing.assert_allclose(face.box, reference.box, atol=2.0)
    np.testing.assert_allclose(face.landmarks, reference.landmarks, atol=2.0)
    assert 1100 <= face.box[0] < face.box[2] <= 2200
    (aligned,) = pipeline.select(reduced, [face])
    assert aligned.detection is face  # reported as found, aligned in the reduced pixels
    (full,) = pipeline.select(decode_image(data), [reference])
    difference = np.abs(aligned.chip.astype(int) - full.chip.astype(int)).mean()
    assert difference < 3, difference  # the same crop, resampled from fewer pixels
    embeddings = pipeline.embed_chips([aligned.chip, full.chip])
    assert float(((embeddings[0] - embeddings[1]) ** 2).sum()) < 0.01


def test_detection_batches_are_bounded_by_pixels(pipeline: FacePipeline) -> None:
    """Eight 1600-px images go one at a time (in one MTCNN batch they took 1 GB);
    eight LFW-size ones share one batch; same sizes stay side by side."""
    large = [np.zeros((1600, 1200, 3), np.uint8)] * 8
    assert pipeline._detection_batches(large) == [[i] for i in range(8)]
    small = [np.zeros((250, 250, 3), np.uint8)] * 8
    assert pipeline._detection_batches(small) == [list(range(8))]
    mixed = [small[0], large[0], small[0], large[0]]
    assert pipeline._detection_batches(mixed) == [[0, 2, 1], [3]]
    assert pipeline._detection_batches([]) == []
