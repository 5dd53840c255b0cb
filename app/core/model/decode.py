"""Decode image bytes into an upright RGB array, refusing oversized input cheaply.

Large images are decoded at reduced size when the caller says how much it needs
(`DecodeLimits.work_side`): JPEG in the decoder itself (DCT scaling, Pillow's draft
mode, so the full-size pixels are never made), other formats by an integer box
reduction right after decoding. The result then carries its scale back to the
original pixels (`DecodedImage`), so that face boxes can be reported in the pixels of
the image the client sent.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageFile, JpegImagePlugin, UnidentifiedImageError

from app.core.errors import ImageTooLarge, InvalidImage
from app.core.model.decode_budget import PixelBudget
from app.core.model.types import Detection, RGBImage

# Pillow's PPM plugin reads PGM; its JPEG plugin also opens MPO (multi-picture) files.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")
_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
# Pillow allocates an image in blocks of this size (its default: 16 MiB). glibc maps a
# block of 32 MiB or more afresh and unmaps it on free, while smaller ones stay cached in
# each thread's malloc arena: four decoding threads kept 300 MB of freed 25 MP images.
# At 128 MiB an image at the default pixel cap (25 M x 4 bytes) is one block.
PILLOW_BLOCK_BYTES = 128 << 20


def return_freed_images_to_the_system() -> None:
    """Make Pillow allocate large images in blocks that glibc unmaps when freed
    (process-wide; the service's pipelines call it once)."""
    Image.core.set_block_size(PILLOW_BLOCK_BYTES)


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 10_000_000
    max_pixels: int = 25_000_000
    # Long side the caller needs: larger images are decoded at reduced size, never
    # below this. None: always full size.
    work_side: int | None = None
    # Pixels being decoded at once in this process; None: no cap.
    budget: PixelBudget | None = None


class DecodedImage(np.ndarray[Any, np.dtype[np.uint8]]):
    """An RGB image decoded at reduced size. `scale` is (sx, sy): pixels of the
    original (upright) image per pixel of this one. Arrays derived from it (views,
    copies) are plain images in their own pixels: they read the class default."""

    scale: tuple[float, float] = (1.0, 1.0)

    def __reduce__(self) -> tuple[Any, ...]:  # keep `scale` across process boundaries
        reduced = super().__reduce__()
        assert isinstance(reduced, tuple)
        rebuild, args, state = reduced[:3]
        return rebuild, args, (state, self.scale)

    def __setstate__(self, state: Any) -> None:
        base, self.scale = state
        super().__setstate__(base)


def image_scale(image: RGBImage) -> tuple[float, float]:
    """(sx, sy) from this image's pixels to the original's; (1, 1) unless reduced."""
    scale: tuple[float, float] = getattr(image, "scale", (1.0, 1.0))
    return scale


def scale_detection(detection: Detection, sx: float, sy: float) -> Detection:
    """The detection with x multiplied by sx and y by sy."""
    if sx == 1.0 and sy == 1.0:
        return detection
    x1, y1, x2, y2 = detection.box
    factors = np.array([sx, sy], dtype=np.float32)
    return replace(
        detection,
        box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
        landmarks=(np.asarray(detection.landmarks, dtype=np.float32) * factors),
    )


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> RGBImage:
    """Return an (h, w, 3) uint8 RGB array with EXIF orientation applied.

    Raises `ImageTooLarge` before any pixel is decoded when the byte or pixel count
    exceeds the limits, and `InvalidImage` for empty, undecodable or truncated input.
    With `limits.work_side`, a larger image comes back reduced, as a `DecodedImage`.
    """
    limits = limits or DecodeLimits()
    if not data:
        raise InvalidImage("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {limits.max_bytes}")
    with _open(data, limits) as image:
        _check_header(image, limits)
        full_size = image.size
        if limits.work_side and isinstance(image, JpegImagePlugin.JpegImageFile):
            _draft(image, limits.work_side)
        width, height = image.size
        if limits.budget is None:
            return _decode(image, full_size, limits.work_side)
        with limits.budget.hold(width * height):
            return _decode(image, full_size, limits.work_side)


def _decode(image: Image.Image, full_size: tuple[int, int], work_side: int | None) -> RGBImage:
    try:
        image.load()  # the full decode; a truncated file fails here
    except _DECODE_ERRORS as exc:
        raise InvalidImage("the image could not be decoded: it is truncated or corrupt") from exc
    transpose = _orientation(image)
    high_bit = image.mode.startswith("I;16")
    reduced = _reduce(image, work_side)
    upright = reduced.transpose(transpose) if transpose is not None else reduced
    array = _to_rgb_array(upright, high_bit)
    width, height = full_size
    if image.size == full_size and reduced is image:
        return array
    if transpose in (
        Image.Transpose.TRANSPOSE,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
    ):
        width, height = height, width
    out = array.view(DecodedImage)
    out.scale = (width / array.shape[1], height / array.shape[0])
    return out


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    # Pillow's own bomb check warns at half our limit and raises at twice its own;
    # we apply our limit ourselves right after reading the header.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
    except UnidentifiedImageError as exc:
        raise InvalidImage("the data is not an image in a supported format") from exc
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            f"the image has more pixels than the limit of {limits.max_pixels}"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage("the image header could not be read") from exc


def _check_header(image: Image.Image, limits: DecodeLimits) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage("the image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )


def _draft(image: JpegImagePlugin.JpegImageFile, work_side: int) -> None:
    """Ask the JPEG decoder for 1/2, 1/4 or 1/8 of the size, never below `work_side`
    on the long side (Pillow picks the largest factor that keeps the requested size)."""
    width, height = image.size
    ratio = work_side / max(width, height)
    if ratio < 0.5:
        image.draft(image.mode, (max(1, int(width * ratio + 1)), max(1, int(height * ratio + 1))))


def _orientation(image: Image.Image) -> Image.Transpose | None:
    try:
        return _UPRIGHT.get(image.getexif().get(ExifTags.Base.Orientation, 1))
    except (*_DECODE_ERRORS, TypeError, KeyError):  # unreadable EXIF: take it as stored
        return None


def _reduce(image: Image.Image, work_side: int | None) -> Image.Image:
    """Box-reduce by the largest integer factor that keeps the long side >= work_side."""
    factor = max(image.size) // work_side if work_side else 1
    if factor < 2:
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    return image.reduce(factor)


def _to_rgb_array(image: Image.Image, high_bit: bool = False) -> RGBImage:
    if image.mode in _HIGH_BIT_MODES:
        image = _high_bit_to_l(image, high_bit or image.mode.startswith("I;16"))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        image = _flatten_alpha(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _high_bit_to_l(image: Image.Image, sixteen_bit: bool) -> Image.Image:
    """Scale 16-bit (or 32-bit integer) greyscale to 8 bits by its true range."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if sixteen_bit else max(float(values.max()), 1.0)
    scaled = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on white: transparent regions carry no face and must not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
