"""What a batch of jobs asks of a pipeline, and the code that runs it: the same in a
worker thread (thread backend) and in a worker process (process backend).

A "detect" job is fused: decode, detect, choose, align and embed run together where the
pipeline lives, so decoded images and aligned chips never cross a process boundary on
the way in; the chips that come back (thumbnails) travel in shared memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from app.core.errors import FacesvcError
from app.core.model.types import Detection, Embedding, RGBImage
from app.core.serving.jobs import Kind, Timings
from app.core.serving.shm import ShmArray, materialize

if TYPE_CHECKING:
    from app.core.serving.inference import Pipeline

FaceMode = Literal["single", "largest", "all"]
Outcome = tuple[Any, BaseException | None, Timings]


@dataclass(frozen=True)
class DetectRequest:
    """Decode and detect; with `faces` set, also choose, align and embed the faces."""

    data: bytes
    faces: FaceMode | None


@dataclass(frozen=True)
class EmbedRequest:
    """Aligned chips, (n, size, size, 3) uint8; in shared memory across processes."""

    chips: np.ndarray | ShmArray

    def release(self) -> None:
        if isinstance(self.chips, ShmArray):
            self.chips.discard()


@dataclass(frozen=True)
class Faces:
    """A detect job's answer when it asked for faces: one row per face."""

    detections: list[Detection]
    embeddings: Embedding  # (n, d)
    chips: np.ndarray | ShmArray  # (n, size, size, 3)

    def exported(self) -> Faces:
        """This answer with its chips moved to shared memory (leaving a worker process)."""
        if isinstance(self.chips, ShmArray) or not len(self.chips):
            return self
        return replace(self, chips=ShmArray.put(self.chips))

    def imported(self) -> Faces:
        return replace(self, chips=materialize(self.chips))

    def release(self) -> None:
        if isinstance(self.chips, ShmArray):
            self.chips.discard()


def run_batch(pipeline: Pipeline, kind: Kind, payloads: Sequence[Any]) -> list[Outcome]:
    """One outcome per payload. A domain error (invalid_image, no_face, ...) is that
    job's answer; any other exception escapes: the batch, and its worker, failed."""
    if kind == "embed":
        return _embed(pipeline, payloads)
    return _detect(pipeline, payloads)


def _embed(pipeline: Pipeline, requests: Sequence[EmbedRequest]) -> list[Outcome]:
    """One forward pass for every chip of every job, split back per job."""
    chips = [materialize(request.chips) for request in requests]
    start = time.perf_counter()
    embeddings = pipeline.embed_chips(np.concatenate(chips))
    took = time.perf_counter() - start
    bounds = np.cumsum([len(c) for c in chips])[:-1]
    return [(part, None, {"embed": took}) for part in np.split(embeddings, bounds)]


def _detect(pipeline: Pipeline, requests: Sequence[DetectRequest]) -> list[Outcome]:
    """Decode each image, detect in all at once (same-size images share MTCNN's passes),
    choose and align each job's faces, then embed every chip of the batch in one pass."""
    outcomes: list[Outcome] = [(None, None, {}) for _ in requests]
    images: dict[int, RGBImage] = {}
    for i, request in enumerate(requests):
        start = time.perf_counter()
        try:
            images[i] = pipeline.decode(request.data)
        except FacesvcError as exc:  # invalid_image, too large, ...: the caller's answer
            outcomes[i] = (None, exc, {})
        outcomes[i][2]["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    found = dict(zip(images, pipeline.detect_many(list(images.values())), strict=True))
    took = time.perf_counter() - start
    chosen: dict[int, list[Any]] = {}
    for i, detections in found.items():
        timings = outcomes[i][2]
        timings["detect"] = took
        faces = requests[i].faces
        if faces is None:
            outcomes[i] = (detections, None, timings)
            continue
        start = time.perf_counter()
        try:
            chosen[i] = pipeline.select(images[i], detections, faces=faces)
        except FacesvcError as exc:  # no_face, multiple_faces
            outcomes[i] = (None, exc, timings)
        timings["align"] = time.perf_counter() - start
    if chosen:
        chips = np.stack([face.chip for faces in chosen.values() for face in faces])
        start = time.perf_counter()
        embeddings = pipeline.embed_chips(chips)
        took = time.perf_counter() - start
        offset = 0
        for i, aligned in chosen.items():
            n = len(aligned)
            detections = [face.detection for face in aligned]
            answer = Faces(detections, embeddings[offset : offset + n], chips[offset : offset + n])
            outcomes[i][2]["embed"] = took
            outcomes[i] = (answer, None, outcomes[i][2])
            offset += n
    return outcomes
