"""Data types that flow between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

# An RGB image: uint8 array of shape (height, width, 3), C-contiguous.
RGBImage = npt.NDArray[np.uint8]
Embedding = npt.NDArray[np.float32]

# Which of an image's faces a caller wants: exactly one (more is an error), the
# largest, or every face. The CLI, the pipeline and the service all speak this.
FaceSelection = Literal["single", "largest", "all"]


@dataclass(frozen=True)
class Detection:
    """One detected face in image pixel coordinates."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    # Five points (x, y): left eye, right eye, nose tip, left mouth corner, right mouth
    # corner, "left" meaning the image's left (MTCNN's order).
    landmarks: npt.NDArray[np.float32]  # shape (5, 2)

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True)
class AlignedFace:
    """A face crop in the canonical geometry of one embedding model."""

    chip: RGBImage  # (size, size, 3)
    detection: Detection | None  # None when the input already was an aligned crop


@dataclass(frozen=True)
class FaceResult:
    """One chosen face: where it is, its embedding and the crop that was embedded."""

    detection: Detection | None
    embedding: Embedding  # (d,) float32
    aligned: AlignedFace
