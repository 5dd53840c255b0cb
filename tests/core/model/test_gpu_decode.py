"""Batched JPEG decoding with torchvision (nvjpeg on CUDA), run here on the CPU through
the same code: the same pixels, orientation, limits and errors as app/core/model/decode.py."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.errors import ImageTooLarge, InvalidImage
from app.core.model.decode import DecodeLimits, decode_image
from app.core.model.gpu_decode import DeviceDecoder

DATA = Path(__file__).parents[2] / "data" / "faces"
LIMITS = DecodeLimits(max_bytes=2_000_000, max_pixels=1_000_000)


@pytest.fixture(scope="module")
def decoder() -> DeviceDecoder:
    return DeviceDecoder(torch.device("cpu"), LIMITS)


def _encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _photo() -> Image.Image:
    return Image.open(DATA / "Aaron_Sorkin_0001.jpg").convert("RGB").crop((0, 0, 250, 180))


def test_real_photos_decode_to_pils_pixels(decoder: DeviceDecoder) -> None:
    blobs = [p.read_bytes() for p in sorted(DATA.glob("*.jpg"))[:6]]
    blobs.append(_encode(_photo(), progressive=True, quality=85))
    blobs.append(_encode(_photo().convert("L")))  # greyscale JPEG: three equal channels
    for blob, image in zip(blobs, decoder.decode_many(blobs), strict=True):
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8
        expected = decode_image(blob, LIMITS)
        assert image.shape == expected.shape
        # libjpeg-turbo on both sides here; nvjpeg on CUDA may differ by a few levels
        assert np.abs(image.astype(int) - expected).max() <= 2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pil_does(decoder: DeviceDecoder, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    blob = _encode(_photo(), quality=95, exif=exif.tobytes())
    (image,) = decoder.decode_many([blob])
    assert isinstance(image, np.ndarray)
    np.testing.assert_array_equal(image, decode_image(blob, LIMITS))


def test_other_formats_and_bad_input_get_decode_images_answer(decoder: DeviceDecoder) -> None:
    photo = _photo()
    png = _encode(photo, "PNG")
    cmyk = _encode(photo.convert("CMYK"))
    jpeg = _encode(photo)
    truncated = jpeg[: len(jpeg) // 2]
    huge = _encode(Image.new("RGB", (1200, 1000)))  # 1.2 MP > the 1 MP limit
    results = decoder.decode_many([png, b"", truncated, jpeg, huge, b"not an image", cmyk])
    np.testing.assert_array_equal(results[0], np.asarray(photo))
    assert isinstance(results[1], InvalidImage)
    assert isinstance(results[2], InvalidImage)
    assert isinstance(results[3], np.ndarray) and results[3].shape == (180, 250, 3)
    assert isinstance(results[4], ImageTooLarge)
    assert isinstance(results[5], InvalidImage)
    np.testing.assert_array_equal(results[6], decode_image(cmyk, LIMITS))


def test_pipeline_decodes_a_batch_either_way_with_the_same_answers() -> None:
    from dataclasses import replace

    from app.core.config import Settings
    from app.core.model.pipeline import FacePipeline

    on = FacePipeline.load(Settings(device="cpu", decode_on_device=True))
    off = FacePipeline(replace(on.options, decode_on_device=None), on.detector, on.backbone)
    blobs = [(DATA / "Abdullah_Gul_0001.jpg").read_bytes(), b"", _encode(_photo(), "PNG")]
    for a, b in zip(on.decode_many(blobs), off.decode_many(blobs), strict=True):
        if isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert type(a) is type(b) and str(a) == str(b)
    # the detector implementation changes evaluation caches, not stored embeddings
    detector = replace(on.options.detector, detect_impl="facenet")
    facenet = FacePipeline(replace(on.options, detector=detector), on.detector, on.backbone)
    assert facenet.model == on.model and facenet.fingerprint() != on.fingerprint()
