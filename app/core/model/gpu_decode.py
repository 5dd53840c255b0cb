"""Decode a batch of JPEGs with torchvision's decoder on the inference device (nvjpeg on
CUDA), keeping app/core/model/decode.py's semantics: the same byte and pixel limits checked
from the header before any pixel is decoded, EXIF orientation applied, and every other
format, colour mode or damaged file left to `decode_image`, which gives the same error
it always did. On the CPU the same code runs libjpeg-turbo, pixel for pixel PIL's."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from app.core.errors import FacesvcError
from app.core.model.decode import DecodeLimits, decode_image
from app.core.model.types import RGBImage

_ORIENTATION = 0x0112


@dataclass(frozen=True)
class _Jpeg:
    data: torch.Tensor  # the file's bytes, uint8
    orientation: int  # EXIF orientation, 1 when absent


class DeviceDecoder:
    def __init__(self, device: torch.device, limits: DecodeLimits) -> None:
        self.device = device
        self.limits = limits

    def decode_many(self, blobs: Sequence[bytes]) -> list[RGBImage | FacesvcError]:
        """Each blob as an (h, w, 3) uint8 RGB array on the host, or the error that
        `decode_image` raises for it."""
        results: list[RGBImage | FacesvcError | None] = [None] * len(blobs)
        jpegs: dict[int, _Jpeg] = {}
        for i, blob in enumerate(blobs):
            jpeg = self._plain_jpeg(blob)
            if jpeg is None:
                results[i] = _on_host(blob, self.limits)
            else:
                jpegs[i] = jpeg
        for i, image in zip(jpegs, self._decode([j.data for j in jpegs.values()]), strict=True):
            if image is None:  # damaged: PIL says how
                results[i] = _on_host(blobs[i], self.limits)
            else:
                results[i] = _to_host(_upright(image, jpegs[i].orientation))
        return [r for r in results if r is not None]

    def _plain_jpeg(self, blob: bytes) -> _Jpeg | None:
        """The blob when it is a JPEG this decoder handles and within the limits (read
        from its header); None sends it to `decode_image`."""
        if not blob.startswith(b"\xff\xd8") or len(blob) > self.limits.max_bytes:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                header = Image.open(io.BytesIO(blob), formats=["JPEG"])
            width, height = header.size
            plain = header.format == "JPEG" and header.mode in ("RGB", "L")
            orientation = int(header.getexif().get(_ORIENTATION, 1))
        except Exception:  # any doubt: PIL's full decode decides
            return None
        if not plain or not 0 < width * height <= self.limits.max_pixels:
            return None
        return _Jpeg(torch.frombuffer(bytearray(blob), dtype=torch.uint8), orientation)

    def _decode(self, files: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """(3, h, w) uint8 on the device per file; None for a file that fails."""
        if not files:
            return []
        try:
            return list(decode_jpeg(files, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad file fails the batch: find it
            decoded: list[torch.Tensor | None] = []
            for file in files:
                try:
                    decoded.append(decode_jpeg(file, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    decoded.append(None)
            return decoded


def _upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """PIL's ImageOps.exif_transpose on a (3, h, w) tensor."""
    rows, cols = 1, 2
    if orientation == 2:
        return image.flip(cols)
    if orientation == 3:
        return image.flip(rows, cols)
    if orientation == 4:
        return image.flip(rows)
    if orientation == 5:
        return image.transpose(rows, cols)
    if orientation == 6:
        return image.rot90(-1, (rows, cols))
    if orientation == 7:
        return image.transpose(rows, cols).flip(rows, cols)
    if orientation == 8:
        return image.rot90(1, (rows, cols))
    return image


def _to_host(image: torch.Tensor) -> RGBImage:
    return image.permute(1, 2, 0).contiguous().cpu().numpy()


def _on_host(blob: bytes, limits: DecodeLimits) -> RGBImage | FacesvcError:
    try:
        return decode_image(blob, limits)
    except FacesvcError as exc:
        return exc
