"""dlib's 5-point shape predictor as an alternative landmark source (needs dlib-bin).

The default pipeline aligns from MTCNN's landmarks; this source exists so the two can
be measured against each other (docs/accuracy.md) and for operators who prefer it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.errors import ModelUnavailable
from app.core.model.align import similarity_transform, warp_chip
from app.core.model.types import AlignedFace, Detection, RGBImage


def dlib_models_dir() -> Path:
    # face_recognition_models imports pkg_resources on import; locate it without importing.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("the pip package face_recognition_models is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def dlib_chip_transform(details: Any) -> npt.NDArray[np.float64]:
    """The image -> chip map of dlib's extract_image_chip: rect corners to chip corners."""
    rect, angle = details.rect, details.angle
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array(
        [
            [rect.left(), rect.top()],
            [rect.right(), rect.top()],
            [rect.right(), rect.bottom()],
            [rect.left(), rect.bottom()],
        ]
    )
    image_points = (corners - centre) @ rotation.T + centre
    last = details.cols - 1
    chip_points = np.array([[0, 0], [last, 0], [last, last], [0, last]], dtype=np.float64)
    return similarity_transform(image_points, chip_points)


class DlibFivePointAligner:
    """MTCNN box -> dlib 5-point shape -> dlib's own 150 px / 0.25 chip geometry."""

    def __init__(self, size: int = 150, padding: float = 0.25) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelUnavailable("landmarks=dlib5 needs the pip package dlib-bin") from exc
        self._dlib = dlib
        path = dlib_models_dir() / "shape_predictor_5_face_landmarks.dat"
        self._predictor = dlib.shape_predictor(str(path))
        self.size, self.padding = size, padding

    def align(self, image: RGBImage, detection: Detection) -> AlignedFace:
        x1, y1, x2, y2 = (round(v) for v in detection.box)
        shape = self._predictor(image, self._dlib.rectangle(x1, y1, x2, y2))
        details = self._dlib.get_face_chip_details(shape, self.size, self.padding)
        chip = warp_chip(image, dlib_chip_transform(details), self.size)
        return AlignedFace(chip=chip, detection=detection)
