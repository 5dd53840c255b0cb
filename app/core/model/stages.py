"""The stages of a face analysis, written once: decode -> detect -> choose -> align ->
embed -> results. `FacePipeline.analyze` (the CLI, the lab) runs them on one image; the
service's workers (`app.core.serving.tasks`) on a batch of jobs, so that same-size
images share MTCNN's passes and every chip of the batch shares one forward pass.
Both call `analyze_batch`: a face is embedded in the same company either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.core.errors import FacesvcError, MultipleFaces, NoFaceFound
from app.core.model.backbones.base import Backbone
from app.core.model.types import (
    AlignedFace,
    Detection,
    Embedding,
    FaceResult,
    FaceSelection,
    RGBImage,
)

Timings = dict[str, float]  # stage -> seconds


class Pipeline(Protocol):
    """What the stages, and the service's pools, need of a loaded pipeline
    (`app.core.model.pipeline.FacePipeline`)."""

    @property
    def backbone(self) -> Backbone: ...

    @property
    def model(self) -> tuple[str, str]: ...

    def decode(self, data: bytes) -> RGBImage: ...

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]: ...

    def align_all(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]: ...

    def embed_chips(self, chips: Sequence[RGBImage] | np.ndarray) -> Embedding: ...


@dataclass(frozen=True)
class FoundFaces:
    """One image's chosen faces, a row each."""

    detections: list[Detection]
    embeddings: Embedding  # (n, d)
    chips: np.ndarray  # (n, size, size, 3)


# One image's answer: its detections (no selection asked), its faces, or its error.
Outcome = tuple[list[Detection] | FoundFaces | None, FacesvcError | None, Timings]


def face_results(
    detections: Sequence[Detection | None],
    embeddings: Embedding,
    chips: Sequence[RGBImage] | np.ndarray,
) -> list[FaceResult]:
    """Rows of detections, embeddings and chips -> one `FaceResult` per face."""
    return [
        FaceResult(detection, embedding, AlignedFace(chip, detection))
        for detection, embedding, chip in zip(detections, embeddings, chips, strict=True)
    ]


def choose_faces(detections: list[Detection], faces: FaceSelection) -> list[Detection]:
    """The faces `faces` asks for among `detections` (largest first)."""
    if not detections:
        raise NoFaceFound("no face was found in the image")
    if faces == "single" and len(detections) > 1:
        raise MultipleFaces(
            f"{len(detections)} faces were found; send a photo with one face "
            "or ask for the largest one"
        )
    return detections if faces == "all" else detections[:1]


def analyze_batch(
    pipeline: Pipeline, blobs: Sequence[bytes], selections: Sequence[FaceSelection | None]
) -> list[Outcome]:
    """One outcome per encoded image. A domain error (invalid_image, no_face, ...) is
    that image's answer; any other exception escapes."""
    outcomes: list[Outcome] = [(None, None, {}) for _ in blobs]
    images: dict[int, RGBImage] = {}
    for i, data in enumerate(blobs):
        start = time.perf_counter()
        try:
            images[i] = pipeline.decode(data)
        except FacesvcError as exc:  # invalid_image, too large, ...: the caller's answer
            outcomes[i] = (None, exc, {})
        outcomes[i][2]["decode"] = time.perf_counter() - start
    analyze_decoded(pipeline, images, selections, outcomes)
    return outcomes


def analyze_decoded(
    pipeline: Pipeline,
    images: dict[int, RGBImage],
    selections: Sequence[FaceSelection | None],
    outcomes: list[Outcome],
) -> None:
    """Detect in all `images` at once, choose and align each one's faces (`selections`,
    by the same index; None: only detect), then embed every chip in one pass; the
    answers go to `outcomes`, by index."""
    start = time.perf_counter()
    found = dict(zip(images, pipeline.detect_many(list(images.values())), strict=True))
    took = time.perf_counter() - start
    chosen: dict[int, tuple[list[Detection], list[AlignedFace]]] = {}
    for i, detections in found.items():
        timings = outcomes[i][2]
        timings["detect"] = took
        faces = selections[i]
        if faces is None:
            outcomes[i] = (detections, None, timings)
            continue
        start = time.perf_counter()
        try:
            picked = choose_faces(detections, faces)
            chosen[i] = picked, pipeline.align_all(images[i], picked)
        except FacesvcError as exc:  # no_face, multiple_faces
            outcomes[i] = (None, exc, timings)
        timings["align"] = time.perf_counter() - start
    if not chosen:
        return
    chips = np.stack([face.chip for _, aligned in chosen.values() for face in aligned])
    start = time.perf_counter()
    embeddings = pipeline.embed_chips(chips)
    took = time.perf_counter() - start
    offset = 0
    for i, (picked, _) in chosen.items():
        n = len(picked)
        rows = slice(offset, offset + n)
        answer = FoundFaces(picked, embeddings[rows], chips[rows])
        outcomes[i][2]["embed"] = took
        outcomes[i] = (answer, None, outcomes[i][2])
        offset += n


def results_of(outcome: Outcome) -> list[FaceResult]:
    """The faces of an outcome that asked for them, or its error raised."""
    value, error, _ = outcome
    if error is not None:
        raise error
    assert isinstance(value, FoundFaces)
    return face_results(value.detections, value.embeddings, value.chips)
