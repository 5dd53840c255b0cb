"""Align a face to a model's canonical crop with a similarity transform of its landmarks.

Coordinates follow dlib's convention: pixel (col, row) has its centre at (x=col, y=row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from app.core.model.types import AlignedFace, Detection, RGBImage

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Alignment:
    """Where the five landmarks (MTCNN order) land in a square crop of `size` pixels."""

    size: int
    template: FloatArray  # (5, 2) x, y in crop pixels
    # Per-landmark weights of the least-squares fit; None weighs all five equally.
    weights: tuple[float, ...] | None = None


def similarity_transform(
    source: npt.ArrayLike, target: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> FloatArray:
    """Weighted least-squares rotation + uniform scale + translation taking source onto target.

    Returns the 2x3 matrix M with target ~= M @ [x, y, 1]. Umeyama's closed form, without
    reflection (a mirrored face is a different face to the network).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    src_mean, dst_mean = w @ src, w @ dst
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = (w[:, None] * dst_c).T @ src_c
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    variance = float(w @ (src_c**2).sum(axis=1))
    scale = float((singular * sign).sum() / variance) if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp_chip(image: RGBImage, matrix: FloatArray, size: int) -> RGBImage:
    """Sample a size x size crop whose pixel p comes from image point M^-1 p (bilinear).

    When the crop shrinks the face by more than 2x, the image is first reduced by an
    integer box filter so the bilinear sample does not alias.
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    reduction = max(1, int(0.5 / scale)) if scale < 0.5 else 1
    if reduction > 1:
        image = np.asarray(Image.fromarray(image).reduce(reduction))
        # reduce() averages blocks: source pixel k of the reduced image is centred
        # on original coordinate k * r + (r - 1) / 2.
        to_reduced = np.array(
            [[reduction, 0.0, (reduction - 1) / 2], [0.0, reduction, (reduction - 1) / 2]]
        )
        matrix = _compose(matrix, to_reduced)
    inverse = _invert(matrix)
    cols, rows = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    src_x = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
    src_y = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
    return _bilinear(image, src_x, src_y)


def align_face(image: RGBImage, detection: Detection, alignment: Alignment) -> AlignedFace:
    matrix = similarity_transform(detection.landmarks, alignment.template, alignment.weights)
    return AlignedFace(chip=warp_chip(image, matrix, alignment.size), detection=detection)


def _compose(chip_from_image: FloatArray, image_from_reduced: FloatArray) -> FloatArray:
    """chip <- reduced: apply image_from_reduced first, then chip_from_image."""
    a = np.vstack([chip_from_image, [0.0, 0.0, 1.0]])
    b = np.vstack([image_from_reduced, [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def _invert(matrix: FloatArray) -> FloatArray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _bilinear(image: RGBImage, x: FloatArray, y: FloatArray) -> RGBImage:
    """Sample at real coordinates as dlib's extract_image_chip does: points outside the
    image read as black and values are truncated, not rounded, so our chips match the
    ones dlib's network was trained on pixel for pixel."""
    height, width = image.shape[:2]
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0i, y0i = x0.astype(np.int64), y0.astype(np.int64)
    inside = (x0i >= 0) & (y0i >= 0) & (x0i + 1 < width) & (y0i + 1 < height)
    xa, ya = np.clip(x0i, 0, width - 2), np.clip(y0i, 0, height - 2)
    pixels = image.astype(np.float64)
    top = pixels[ya, xa] * (1 - fx) + pixels[ya, xa + 1] * fx
    bottom = pixels[ya + 1, xa] * (1 - fx) + pixels[ya + 1, xa + 1] * fx
    value = top * (1 - fy) + bottom * fy
    value[~inside] = 0.0
    return np.ascontiguousarray(np.clip(value, 0, 255).astype(np.uint8))
