"""Face detection with MTCNN (facenet-pytorch's networks; weights ship inside its wheel).

Two implementations of the same algorithm: "batched" (app/core/model/mtcnn_batched.py, every
stage once over the whole batch, any image sizes) and "facenet" (facenet-pytorch's own
`detect`, which batches only same-size images and crops candidates one by one). Their
boxes agree within 1e-4 px (tests/core/model/test_mtcnn_batched.py), except rarely where saturated
scores tie and rounding orders them differently (docs/performance.md)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from app.core.model.mtcnn_batched import BatchedMTCNN
from app.core.model.types import Detection, RGBImage

DetectImpl = Literal["batched", "facenet"]

# MTCNN's per-stage thresholds: the standard ones, and a looser pass used only when the
# standard pass finds nothing (profile and low-contrast faces).
STANDARD_STAGE_THRESHOLDS = (0.6, 0.7, 0.7)
FALLBACK_STAGE_THRESHOLDS = (0.5, 0.5, 0.6)


@dataclass(frozen=True)
class DetectorConfig:
    min_face_size: int = 20
    score_threshold: float = 0.9
    fallback_score_threshold: float = 0.7
    upsample_below: int = 200  # short side in pixels under which the image is upscaled
    max_side: int = 1600  # long side above which detection runs on a downscaled copy
    impl: DetectImpl = "batched"


def _clip_to_image(face: Detection, width: int, height: int) -> Detection:
    x1, y1, x2, y2 = face.box
    box = (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )
    return Detection(box=box, score=face.score, landmarks=face.landmarks)


class FaceDetector:
    """All faces in an image, largest first, with boxes, scores and five landmarks."""

    name = "mtcnn"
    version = "mtcnn"  # facenet-pytorch's weights, inside its wheel

    def __init__(self, config: DetectorConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self._batched: BatchedMTCNN | None = None
        if config.impl == "batched":
            self._batched = BatchedMTCNN(device, config.min_face_size)
        else:
            self._standard = self._mtcnn(STANDARD_STAGE_THRESHOLDS)
            self._fallback = self._mtcnn(FALLBACK_STAGE_THRESHOLDS)

    def _mtcnn(self, stage_thresholds: tuple[float, float, float]) -> MTCNN:
        mtcnn = MTCNN(
            min_face_size=self.config.min_face_size,
            thresholds=list(stage_thresholds),
            keep_all=True,
            device=self.device,
        )
        # In channels-last layout torch's CPU max-pooling and convolutions are 1.65x
        # faster on these small networks (bench/detect.py); boxes move by < 1e-4 px.
        for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
            net.to(memory_format=torch.channels_last)
        return mtcnn

    def detect(self, image: RGBImage) -> list[Detection]:
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]:
        """Faces of each image, as `detect` finds them. The batched MTCNN runs the whole
        batch at once; facenet-pytorch's shares passes only between images that are the
        same size once scaled for detection. The fallback pass runs only for images
        without a face."""
        scales = [self._detection_scale(image) for image in images]
        pils = [_scaled(image, scale) for image, scale in zip(images, scales, strict=True)]
        found = self._run(STANDARD_STAGE_THRESHOLDS, pils, scales, self.config.score_threshold)
        missing = [i for i, faces in enumerate(found) if not faces]
        if missing:
            retried = self._run(
                FALLBACK_STAGE_THRESHOLDS,
                [pils[i] for i in missing],
                [scales[i] for i in missing],
                self.config.fallback_score_threshold,
            )
            for i, faces in zip(missing, retried, strict=True):
                found[i] = faces
        return [rank_visible(faces, image) for faces, image in zip(found, images, strict=True)]

    def _detection_scale(self, image: RGBImage) -> float:
        short, long = sorted(image.shape[:2])
        if long > self.config.max_side:
            # A 12 MP phone photo costs MTCNN seconds; landmarks found on a downscaled
            # copy are mapped back, and alignment samples the full-resolution image.
            return self.config.max_side / long
        if 0 < short < self.config.upsample_below:
            # MTCNN misses faces in tiny portraits (ORL's 92x112) unless upscaled.
            return math.ceil(self.config.upsample_below / short * 4) / 4
        return 1.0

    def _run(
        self,
        thresholds: tuple[float, float, float],
        pils: list[Image.Image],
        scales: list[float],
        min_score: float,
    ) -> list[list[Detection]]:
        if self._batched is None:
            mtcnn = self._standard if thresholds == STANDARD_STAGE_THRESHOLDS else self._fallback
            return self._run_grouped(mtcnn, pils, scales, min_score)
        arrays = [np.asarray(pil) for pil in pils]
        return [
            _faces(faces.boxes, faces.scores, faces.points, scale, min_score)
            for faces, scale in zip(self._batched.detect(arrays, thresholds), scales, strict=True)
        ]

    @staticmethod
    def _run_grouped(
        mtcnn: MTCNN, pils: list[Image.Image], scales: list[float], min_score: float
    ) -> list[list[Detection]]:
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, pil in enumerate(pils):
            by_size[pil.size].append(i)
        found: list[list[Detection]] = [[] for _ in pils]
        for members in by_size.values():
            if len(members) == 1:  # a single image: MTCNN's own unbatched path
                (i,) = members
                boxes, scores, points = mtcnn.detect(pils[i], landmarks=True)
                found[i] = _faces(boxes, scores, points, scales[i], min_score)
                continue
            stack = np.stack([np.asarray(pils[i]) for i in members])
            boxes, scores, points = mtcnn.detect(stack, landmarks=True)
            for j, i in enumerate(members):
                found[i] = _faces(boxes[j], scores[j], points[j], scales[i], min_score)
        return found


def _scaled(image: RGBImage, scale: float) -> Image.Image:
    pil = Image.fromarray(image)
    if scale == 1:
        return pil
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return pil.resize(size, Image.Resampling.BICUBIC)


def rank_visible(faces: list[Detection], image: RGBImage) -> list[Detection]:
    height, width = image.shape[:2]
    # MTCNN extrapolates the box of a face cut by the image border; ranking by that
    # box made half-visible bystanders "the largest face" (measured on lfw_dev, see
    # docs/accuracy.md). Boxes are clipped to the image, so area is visible area.
    visible = [_clip_to_image(face, width, height) for face in faces]
    return sorted(visible, key=lambda face: face.area, reverse=True)


def _faces(
    boxes: np.ndarray | None,
    scores: np.ndarray | None,
    points: np.ndarray | None,
    scale: float,
    min_score: float,
) -> list[Detection]:
    """MTCNN's output for one image -> detections in the original image's pixels."""
    if boxes is None or scores is None or points is None:
        return []
    faces = []
    for box, score, landmarks in zip(boxes, scores, points, strict=True):
        if score is None or float(score) < min_score:
            continue
        x1, y1, x2, y2 = (float(v) / scale for v in box)
        faces.append(
            Detection(
                box=(x1, y1, x2, y2),
                score=float(score),
                landmarks=(np.asarray(landmarks, dtype=np.float32) / scale),
            )
        )
    return faces
