"""SCRFD face detection from an operator-supplied ONNX file (`FACESVC_DETECTOR=scrfd`).

SCRFD ships with InsightFace's model packs (e.g. `scrfd_500m_bnkps.onnx`, whose licence,
like the packs', is non-commercial research only), so it is never bundled or fetched.
The network is anchor-free in effect: at strides 8, 16 and 32, two anchors per cell
predict a face score, the distances from the cell centre to the box's four sides and
the offsets of the five landmarks, all in units of the stride. Images are scaled to fit
a square input and padded at the right and bottom: 640 pixels (InsightFace's default) for
large images, the image's own size rounded up to a multiple of 32 for smaller ones
(upscaling a 92x112 portrait to 640 makes its face too large for the largest anchors:
ORL's faces were all missed). Images with the same input side share one forward pass.

Which detector to use is measured in docs/accuracy.md (MTCNN against SCRFD, both with
the same ArcFace recognizer).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torchvision.ops import nms

from app.core.errors import ModelUnavailable
from app.core.model.detect import rank_visible
from app.core.model.types import Detection, RGBImage

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


class ScrfdDetector:
    """All faces in an image, largest visible first, like `FaceDetector`."""

    name = "scrfd"

    def __init__(
        self,
        model_file: Path,
        *,
        input_size: int = 640,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        device: torch.device | None = None,
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelUnavailable(
                "scrfd needs onnxruntime: pip install 'facesvc[arcface]'"
            ) from None
        try:
            data = model_file.read_bytes()
        except OSError as exc:
            raise ModelUnavailable(f"SCRFD model {model_file}: {exc.strerror}") from None
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.model_file = model_file
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        providers: list[object] = ["CPUExecutionProvider"]
        if device is not None and device.type == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        try:
            self.session = ort.InferenceSession(data, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelUnavailable(f"{model_file}: not a loadable ONNX model: {exc}") from exc
        outputs = [o.name for o in self.session.get_outputs()]
        if len(outputs) != 3 * len(STRIDES):
            raise ModelUnavailable(
                f"{model_file}: {len(outputs)} outputs; an SCRFD model with landmarks has "
                "9 (score, box and landmarks at strides 8, 16, 32)"
            )
        self._input_name = self.session.get_inputs()[0].name

    @property
    def version(self) -> str:
        return f"scrfd:{self.sha256[:12]}@{self.input_size}"

    @staticmethod
    @functools.cache
    def _anchor_centres(side: int, stride: int) -> npt.NDArray[np.float32]:
        cells = side // stride
        ys, xs = np.mgrid[:cells, :cells]
        centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
        return np.repeat(centres, ANCHORS_PER_CELL, axis=0)

    def detect(self, image: RGBImage) -> list[Detection]:
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]:
        by_side: dict[int, list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_side[self._side(image)].append(i)
        found: list[list[Detection]] = [[] for _ in images]
        for side, members in by_side.items():
            canvases, scales = zip(*(self._fit(images[i], side) for i in members), strict=True)
            x = (np.stack(canvases).astype(np.float32) - 127.5) / 128.0
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            outputs = self.session.run(None, {self._input_name: x})
            for j, (i, scale) in enumerate(zip(members, scales, strict=True)):
                per_stride = [
                    (stride, outputs[k][j], outputs[k + 3][j], outputs[k + 6][j])
                    for k, stride in enumerate(STRIDES)
                ]
                found[i] = rank_visible(self._decode(side, per_stride, scale), images[i])
        return found

    def _side(self, image: RGBImage) -> int:
        longest = max(image.shape[:2])
        return min(self.input_size, max(STRIDES[-1], math.ceil(longest / 32) * 32))

    @staticmethod
    def _fit(image: RGBImage, side: int) -> tuple[npt.NDArray[np.uint8], float]:
        """Scale to fit the square input, keeping the aspect ratio; pad right and bottom."""
        height, width = image.shape[:2]
        scale = min(1.0, side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pil = Image.fromarray(image)
        resized = pil if scale == 1 else pil.resize(size, Image.Resampling.BILINEAR)
        canvas = np.zeros((side, side, 3), np.uint8)
        canvas[: size[1], : size[0]] = np.asarray(resized)
        return canvas, scale

    def _decode(
        self,
        side: int,
        per_stride: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
        scale: float,
    ) -> list[Detection]:
        boxes, scores, points = [], [], []
        for stride, score, distance, offset in per_stride:
            keep = score.reshape(-1) >= self.score_threshold
            if not keep.any():
                continue
            centres = self._anchor_centres(side, stride)[keep]
            d = distance[keep] * stride
            boxes.append(np.concatenate([centres - d[:, :2], centres + d[:, 2:]], axis=1))
            o = offset[keep].reshape(-1, 5, 2) * stride
            points.append(centres[:, None, :] + o)
            scores.append(score.reshape(-1)[keep])
        if not boxes:
            return []
        all_boxes = torch.from_numpy(np.concatenate(boxes).astype(np.float32))
        all_scores = torch.from_numpy(np.concatenate(scores).astype(np.float32))
        kept = nms(all_boxes, all_scores, self.nms_threshold).numpy()
        all_points = np.concatenate(points)
        return [
            Detection(
                box=tuple(float(v) / scale for v in all_boxes[k].tolist()),  # type: ignore[arg-type]
                score=float(all_scores[k]),
                landmarks=(all_points[k] / scale).astype(np.float32),
            )
            for k in kept
        ]
