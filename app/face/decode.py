"""Decode image bytes into an upright RGB array, refusing oversized input cheaply."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from app.errors import ImageTooLarge, InvalidImage
from app.face.types import RGBImage

# Pillow's PPM plugin reads PGM; its JPEG plugin also opens MPO (multi-picture) files.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")
_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class DecodeLimits:
    max_bytes: int = 10_000_000
    max_pixels: int = 40_000_000


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> RGBImage:
    """Return an (h, w, 3) uint8 RGB array with EXIF orientation applied.

    Raises `ImageTooLarge` before any pixel is decoded when the byte or pixel count
    exceeds the limits, and `InvalidImage` for empty, undecodable or truncated input.
    """
    limits = limits or DecodeLimits()
    if not data:
        raise InvalidImage("the image is empty")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image has {len(data)} bytes; the limit is {limits.max_bytes}")
    with _open(data) as image:
        _check_header(image, limits)
        try:
            image.load()  # the full decode; a truncated file fails here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise InvalidImage(f"the image could not be decoded: {exc}") from exc
        upright = ImageOps.exif_transpose(image) or image
        return _to_rgb_array(upright)


def _open(data: bytes) -> Image.Image:
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
        raise ImageTooLarge(f"the image has too many pixels: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"the image header could not be read: {exc}") from exc


def _check_header(image: Image.Image, limits: DecodeLimits) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage("the image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {limits.max_pixels}"
        )


def _to_rgb_array(image: Image.Image) -> RGBImage:
    if image.mode in _HIGH_BIT_MODES:
        image = _high_bit_to_l(image)
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif image.mode == "CMYK":
        image = image.convert("RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        image = _flatten_alpha(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _high_bit_to_l(image: Image.Image) -> Image.Image:
    """Scale 16-bit (or 32-bit integer) greyscale to 8 bits by its true range."""
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
    scaled = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on white: transparent regions carry no face and must not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
