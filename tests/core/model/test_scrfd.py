"""The SCRFD detector (`FACESVC_DETECTOR=scrfd`): decoding, scaling and batching, on a
tiny ONNX model this test exports, whose outputs are known in closed form; and, when
real SCRFD weights are present (FACESVC_TEST_SCRFD_ONNX), on real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.decode import decode_image
from app.core.model.detect import DetectorConfig, FaceDetector
from app.core.model.pipeline import load_detector
from app.core.model.scrfd import ScrfdDetector

pytest.importorskip("onnxruntime")

FACES = Path(__file__).parents[2] / "data" / "faces"
# Landmark offsets, in strides, from the anchor point (SCRFD's order: eyes, nose, mouth).
OFFSETS = torch.tensor([[-0.4, -0.3], [0.4, -0.3], [0.0, 0.1], [-0.3, 0.5], [0.3, 0.5]])


class BrightSquares(nn.Module):
    """SCRFD's nine outputs, computed so that the answer is known: at stride 32 the score
    of a cell is the mean of channel 0 over it (a white 32x32 cell on black scores
    ~0.996), the box reaches one stride beyond the anchor point on each side, and the
    landmarks sit at OFFSETS strides from it. Strides 8 and 16 never fire."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores, boxes, points = [], [], []
        for stride in (8, 16, 32):
            cell = functional.avg_pool2d(x[:, :1], stride).flatten(1)  # (n, cells)
            cell = cell if stride == 32 else cell * 0 - 1
            per_anchor = cell.repeat_interleave(2, dim=1).unsqueeze(-1)  # two anchors
            scores.append(per_anchor)
            boxes.append(torch.ones_like(per_anchor).expand(-1, -1, 4))
            points.append(torch.ones_like(per_anchor) * OFFSETS.reshape(1, 1, 10))
        return (*scores, *boxes, *points)


@pytest.fixture(scope="module")
def tiny_scrfd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scrfd") / "bright_squares.onnx"
    names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    axes = {"input": {0: "n", 2: "h", 3: "w"}} | {name: {0: "n", 1: "a"} for name in names}
    torch.onnx.export(
        BrightSquares().eval(),
        (torch.zeros(1, 3, 64, 64),),
        str(path),
        input_names=["input"],
        output_names=names,
        dynamic_axes=axes,
        dynamo=False,
    )
    return path


def square_at(size: int, col: int, row: int, cell: int = 32) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    image[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = 255
    return image


def test_decodes_box_landmarks_and_score_from_the_anchor_point(tiny_scrfd: Path) -> None:
    detector = ScrfdDetector(tiny_scrfd, input_size=256)
    (face,) = detector.detect(square_at(256, col=3, row=2))  # two anchors, one after NMS
    anchor = np.array([3 * 32, 2 * 32], np.float32)  # SCRFD anchors sit at cell corners
    np.testing.assert_allclose(face.box, (64, 32, 128, 96), atol=1e-4)
    np.testing.assert_allclose(face.landmarks, anchor + OFFSETS.numpy() * 32, atol=1e-4)
    assert face.score == pytest.approx(127.5 / 128, abs=1e-4)


def test_large_images_are_scaled_to_the_input_and_mapped_back(tiny_scrfd: Path) -> None:
    detector = ScrfdDetector(tiny_scrfd, input_size=256)
    big = np.kron(square_at(256, col=3, row=2), np.ones((2, 2, 1), np.uint8))  # 512x512
    (face,) = detector.detect(big)
    np.testing.assert_allclose(face.box, (128, 64, 256, 192), atol=1e-3)


def test_small_images_run_at_their_own_size_not_upscaled(tiny_scrfd: Path) -> None:
    detector = ScrfdDetector(tiny_scrfd, input_size=640)
    assert detector._side(np.zeros((112, 92, 3), np.uint8)) == 128
    assert detector._side(np.zeros((250, 250, 3), np.uint8)) == 256
    assert detector._side(np.zeros((3000, 2000, 3), np.uint8)) == 640
    (face,) = detector.detect(square_at(96, col=1, row=1))
    np.testing.assert_allclose(face.box, (0, 0, 64, 64), atol=1e-4)


def test_a_batch_of_mixed_sizes_equals_one_at_a_time(tiny_scrfd: Path) -> None:
    detector = ScrfdDetector(tiny_scrfd, input_size=256)
    images = [
        square_at(256, 3, 2),
        square_at(256, 0, 5),
        np.zeros((256, 256, 3), np.uint8),  # nothing to find
        square_at(96, 1, 1),
        np.kron(square_at(256, 1, 1), np.ones((2, 2, 1), np.uint8)),
    ]
    together = detector.detect_many(images)
    assert [len(faces) for faces in together] == [1, 1, 0, 1, 1]
    for image, faces in zip(images, together, strict=True):
        for a, b in zip(faces, detector.detect(image), strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=1e-4)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-4)


def test_a_model_without_nine_outputs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one_output.onnx"
    torch.onnx.export(nn.Identity(), (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False)
    with pytest.raises(ModelUnavailable, match="9"):
        ScrfdDetector(path)


def test_the_setting_needs_a_file_and_changes_the_model_version(tiny_scrfd: Path) -> None:
    with pytest.raises(ModelUnavailable, match="FACESVC_SCRFD_ONNX"):
        load_detector(Settings(_env_file=None, detector="scrfd"))
    detector = load_detector(Settings(_env_file=None, detector="scrfd", scrfd_onnx=tiny_scrfd))
    assert isinstance(detector, ScrfdDetector)
    assert detector.version.startswith("scrfd:") and detector.sha256[:12] in detector.version


# ---------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def real_scrfd() -> ScrfdDetector:
    value = os.environ.get("FACESVC_TEST_SCRFD_ONNX")
    if not value or not Path(value).is_file():
        pytest.skip("FACESVC_TEST_SCRFD_ONNX does not point at an SCRFD ONNX file")
    return ScrfdDetector(Path(value), threads=1)


def test_real_scrfd_finds_the_faces_mtcnn_finds(real_scrfd: ScrfdDetector) -> None:
    mtcnn = FaceDetector(DetectorConfig(), torch.device("cpu"))
    images = [decode_image(p.read_bytes()) for p in sorted(FACES.iterdir())[:8]]
    for image, faces in zip(images, real_scrfd.detect_many(images), strict=True):
        reference = mtcnn.detect(image)[0]
        assert faces, "SCRFD found no face"
        # Two detectors, two conventions: the eyes, nose and mouth agree within a few px.
        assert np.abs(faces[0].landmarks - reference.landmarks).max() < 8
