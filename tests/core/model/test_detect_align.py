"""Detection on real photos and alignment geometry, checked against dlib's own chips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.model.align import similarity_transform, warp_chip
from app.core.model.decode import decode_image
from app.core.model.detect import DetectorConfig, FaceDetector
from app.core.model.templates import DLIB_CHIP_150

DATA = Path(__file__).parents[2] / "data" / "faces"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DetectorConfig(), torch.device("cpu"))


def _load(name: str) -> np.ndarray:
    return decode_image((DATA / name).read_bytes())


def test_one_face_in_a_portrait(detector: FaceDetector) -> None:
    image = _load("Aaron_Sorkin_0001.jpg")
    faces = detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.box
    assert 0 <= x1 < x2 <= 250 and 0 <= y1 < y2 <= 250
    assert face.score >= 0.9
    left_eye, right_eye, nose, left_mouth, right_mouth = face.landmarks
    assert left_eye[0] < nose[0] < right_eye[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    # every landmark lies inside its box
    assert ((face.landmarks >= [x1, y1]) & (face.landmarks <= [x2, y2])).all()


def test_tiny_greyscale_portrait_is_found_after_upsampling(detector: FaceDetector) -> None:
    image = _load("orl_s1_1.pgm")  # 92x112
    faces = detector.detect(image)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 0 <= x1 < x2 <= 92 and 0 <= y1 < y2 <= 112  # back on the original pixel grid
    assert (x2 - x1) > 40  # the face fills most of the portrait


def test_no_face_in_a_flat_image(detector: FaceDetector) -> None:
    assert detector.detect(np.full((240, 320, 3), 127, dtype=np.uint8)) == []


def test_detecting_many_images_at_once_finds_what_each_alone_finds(
    detector: FaceDetector,
) -> None:
    """Same-size photos share MTCNN passes; other sizes, tiny portraits (upsampled) and
    images without a face each get their own, with the same answers as one at a time."""
    names = [*sorted(p.name for p in DATA.glob("*.jpg"))[:6], "orl_s1_1.pgm"]
    images = [_load(name) for name in names] + [np.full((240, 320, 3), 127, np.uint8)]
    together = detector.detect_many(images)
    assert len(together) == len(images) and together[-1] == []
    for image, faces in zip(images, together, strict=True):
        alone = detector.detect(image)
        assert len(faces) == len(alone)
        for a, b in zip(faces, alone, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
            assert a.score == pytest.approx(b.score, abs=1e-5)
    assert sum(len(faces) for faces in together) >= 7  # a face in every photo


def test_a_face_cut_by_the_border_ranks_by_its_visible_part(detector: FaceDetector) -> None:
    """MTCNN extrapolates a cut face's box beyond the image; ranking must not use that."""
    image = _load("Aaron_Sorkin_0001.jpg")
    bigger = np.asarray(Image.fromarray(image).resize((300, 300)))
    canvas = np.zeros((300, 500, 3), dtype=np.uint8)
    canvas[25:275, 250:500] = image  # the subject, whole
    canvas[:, :180] = bigger[:, 120:]  # a larger face, more than half of it off the left edge
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert all(f.box[0] >= 0 and f.box[2] <= 500 for f in faces)
    assert faces[0].box[0] >= 250  # the whole face ranks first


def test_two_faces_largest_first(detector: FaceDetector) -> None:
    big = _load("Aaron_Sorkin_0001.jpg")
    small = _load("Abdullah_Gul_0001.jpg")[::2, ::2]  # 125x125
    canvas = np.zeros((250, 400, 3), dtype=np.uint8)
    canvas[:, :250] = big
    canvas[60:185, 270:395] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[2] <= 255 and faces[1].box[0] >= 260


def test_large_image_is_detected_on_a_downscaled_copy(detector: FaceDetector) -> None:
    image = _load("Aaron_Sorkin_0001.jpg")
    huge = np.repeat(np.repeat(image, 8, axis=0), 8, axis=1)  # 2000x2000
    small_faces = detector.detect(image)
    huge_faces = detector.detect(huge)
    assert len(huge_faces) == 1
    # same face, coordinates in the big image's pixels (within a few source pixels)
    np.testing.assert_allclose(huge_faces[0].landmarks / 8, small_faces[0].landmarks, atol=3.0)


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(1)
    source = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_weights_decide_which_points_the_fit_follows() -> None:
    rng = np.random.default_rng(3)
    source = rng.uniform(0, 100, size=(5, 2))
    target = source * 1.5 + 7.0
    target[3:] += rng.normal(0, 10, size=(2, 2))  # two points disagree with the rest
    exact_on_three = similarity_transform(source, target, [1, 1, 1, 1e-12, 1e-12])
    mapped = source @ exact_on_three[:, :2].T + exact_on_three[:, 2]
    np.testing.assert_allclose(mapped[:3], target[:3], atol=1e-6)
    equal = similarity_transform(source, target)
    assert np.abs(source[:3] @ equal[:, :2].T + equal[:, 2] - target[:3]).max() > 0.1


def test_identity_warp_returns_the_image() -> None:
    image = np.random.default_rng(2).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    chip = warp_chip(image, identity, 20)
    # the last row and column have no right/bottom neighbour and read as background
    np.testing.assert_array_equal(chip[:19, :19], image[:19, :19])


def test_aligned_chip_puts_landmarks_on_the_template(detector: FaceDetector) -> None:
    image = _load("Aaron_Sorkin_0002.jpg")
    face = detector.detect(image)[0]
    matrix = similarity_transform(face.landmarks, DLIB_CHIP_150.template)
    mapped = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    eyes_error = np.abs(mapped[:2] - DLIB_CHIP_150.template[:2]).max()
    assert eyes_error < 6.0  # a least-squares fit of 5 points: eyes land within a few px


def test_warp_reproduces_dlibs_face_chip_exactly() -> None:
    """Our sampler, given dlib's chip geometry, yields dlib's chip pixel for pixel."""
    dlib = pytest.importorskip("dlib")
    from app.core.model.dlib_landmarks import dlib_chip_transform, dlib_models_dir

    image = _load("Abdullah_Gul_0001.jpg")
    rect = dlib.get_frontal_face_detector()(image, 1)[0]
    model = dlib_models_dir() / "shape_predictor_5_face_landmarks.dat"
    predictor = dlib.shape_predictor(str(model))
    shape = predictor(image, rect)
    expected = dlib.get_face_chip(image, shape, size=150, padding=0.25)
    matrix = dlib_chip_transform(dlib.get_face_chip_details(shape, 150, 0.25))
    np.testing.assert_array_equal(warp_chip(image, matrix, 150), expected)
