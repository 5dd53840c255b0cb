"""The batched MTCNN against facenet-pytorch's own, on real photos, on the CPU (the same
code runs on CUDA)."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import batched_nms_numpy
from PIL import Image

from app.core.model.decode import decode_image
from app.core.model.detect import FALLBACK_STAGE_THRESHOLDS, STANDARD_STAGE_THRESHOLDS
from app.core.model.mtcnn_batched import (
    BatchedMTCNN,
    Faces,
    bucket_by_size,
    grouped_nms,
    grouped_nms_min,
)

DATA = Path(__file__).parents[2] / "data" / "faces"
SHARED = Path("/work/shared/faces")


@pytest.fixture(scope="module")
def batched() -> Iterator[BatchedMTCNN]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; two threads only wait on each other
    yield BatchedMTCNN(torch.device("cpu"))
    torch.set_num_threads(threads)


def _photos() -> list[np.ndarray]:
    """Real photos of several sizes: LFW's 250x250, crops and rescales of them, and a
    few of the shared set when it is on this machine."""
    names = sorted(p.name for p in DATA.glob("*.jpg"))[::5]
    photos = [decode_image((DATA / name).read_bytes()) for name in names]
    if SHARED.is_dir():
        extra = sorted((SHARED / "lfw_dev").glob("*/*.jpg"))[:200:100]
        photos += [decode_image(p.read_bytes()) for p in extra]
    first = photos[0]
    photos += [
        np.ascontiguousarray(first[12:237, 20:210]),  # 190x225
        np.asarray(Image.fromarray(photos[1]).resize((420, 330))),
        np.asarray(Image.fromarray(photos[2]).resize((300, 360))),
        np.full((120, 160, 3), 127, np.uint8),  # no face
    ]
    return photos


@functools.cache
def _mtcnn(thresholds: tuple[float, float, float]) -> MTCNN:
    return MTCNN(min_face_size=20, thresholds=list(thresholds), keep_all=True)


def _facenet(thresholds: tuple[float, float, float], image: np.ndarray) -> Faces:
    """facenet-pytorch's own answer for one image (its object arrays made numeric)."""
    boxes, scores, points = _mtcnn(thresholds).detect(Image.fromarray(image), landmarks=True)
    if boxes is None:
        return Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2)))
    return Faces(boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32))


def _assert_same(ours: Faces, theirs: Faces, px: float = 1.0) -> None:
    assert len(ours.boxes) == len(theirs.boxes)
    np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=px)
    np.testing.assert_allclose(ours.points, theirs.points, atol=px)
    np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-3)


@pytest.mark.parametrize(
    ("thresholds", "count"), [(STANDARD_STAGE_THRESHOLDS, 99), (FALLBACK_STAGE_THRESHOLDS, 4)]
)
def test_a_mixed_size_batch_matches_facenet_pytorch_image_by_image(
    batched: BatchedMTCNN, thresholds: tuple[float, float, float], count: int
) -> None:
    photos = _photos()[-count:]
    together = batched.detect(photos, thresholds)
    assert len(together) == len(photos)
    for image, ours in zip(photos, together, strict=True):
        _assert_same(ours, _facenet(thresholds, image))
    assert sum(len(faces.boxes) > 0 for faces in together) >= len(photos) - 1


@pytest.mark.parametrize("slack", [math.inf, 0.0])  # one padded canvas; same-size buckets
def test_a_batch_gives_what_each_image_alone_gives(batched: BatchedMTCNN, slack: float) -> None:
    photos = _photos()[-5:]
    assert len(bucket_by_size(photos, slack)) == (1 if slack else 5)
    together = BatchedMTCNN(torch.device("cpu"), bucket_slack=slack).detect(
        photos, STANDARD_STAGE_THRESHOLDS
    )
    for image, faces in zip(photos, together, strict=True):
        _assert_same(faces, batched.detect([image], STANDARD_STAGE_THRESHOLDS)[0], px=1e-3)


def test_an_upsampled_tiny_portrait_and_a_large_photo(batched: BatchedMTCNN) -> None:
    """ORL's 92x112 as detect.py feeds it (bicubic x2.25) next to a 1000 px photo."""
    orl = Image.fromarray(decode_image((DATA / "orl_s1_1.pgm").read_bytes()))
    tiny = np.asarray(orl.resize((207, 252), Image.Resampling.BICUBIC))
    large = np.asarray(Image.fromarray(_photos()[0]).resize((1000, 1000)))
    together = batched.detect([tiny, large], STANDARD_STAGE_THRESHOLDS)
    for image, ours in zip([tiny, large], together, strict=True):
        assert len(ours.boxes) == 1
        _assert_same(ours, _facenet(STANDARD_STAGE_THRESHOLDS, image))


def test_min_nms_matches_facenet_pytorchs_numpy_nms() -> None:
    rng = np.random.default_rng(4)
    corner = rng.uniform(-30, 200, size=(60, 2))
    side = rng.uniform(10, 80, size=(60, 1))
    boxes = torch.tensor(np.hstack([corner, corner + side]), dtype=torch.float32)
    scores = torch.tensor(rng.uniform(0, 1, 60), dtype=torch.float32)
    groups = torch.tensor(rng.integers(0, 3, 60))
    ours = grouped_nms_min(boxes, scores, groups, 0.7)
    theirs = batched_nms_numpy(boxes, scores, groups, 0.7, "Min")
    assert sorted(ours.tolist()) == sorted(theirs.tolist())
    assert 5 < len(ours) < 60


def test_grouped_nms_never_suppresses_across_images() -> None:
    """Two identical boxes with negative corners in different images both survive
    (torchvision's batched_nms offset, max + 1, would let them meet)."""
    boxes = torch.tensor([[-50.0, -50.0, 10.0, 10.0], [-50.0, -50.0, 10.0, 10.0]])
    kept = grouped_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5)
    assert sorted(kept.tolist()) == [0, 1]
    same_image = grouped_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([1, 1]), 0.5)
    assert same_image.tolist() == [0]


def test_images_too_small_for_the_pyramid_give_no_faces(batched: BatchedMTCNN) -> None:
    photo = _photos()[0]
    tiny, flat = np.zeros((8, 9, 3), np.uint8), np.full((40, 30, 3), 200, np.uint8)
    alone = batched.detect([tiny], STANDARD_STAGE_THRESHOLDS)
    assert len(alone) == 1 and len(alone[0].boxes) == 0 and alone[0].points.shape == (0, 5, 2)
    faces = batched.detect([tiny, photo, flat], STANDARD_STAGE_THRESHOLDS)
    assert [len(f.boxes) for f in faces] == [0, 1, 0]


def test_the_detection_benchmark_runs_as_the_gpu_check_calls_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench/gpu_check.sh runs `python -m bench.detect --device cuda --impl batched`; the
    same code on the CPU, tiny."""
    from bench import detect as bench_detect

    argv = ["bench.detect", "--device", "cpu", "--impl", "batched", "facenet", "--images", "2"]
    argv += ["--batch-sizes", "2", "--repeats", "1", "--sets", "mixed", "--decode"]
    monkeypatch.setattr("sys.argv", argv)
    threads = torch.get_num_threads()
    try:
        bench_detect.main()
    finally:
        torch.set_num_threads(threads)  # main() sets one thread for this process
    out = capsys.readouterr().out
    assert "| batch | batched img/s | facenet img/s | batched / facenet |" in out
    assert "torchvision on cpu img/s" in out
