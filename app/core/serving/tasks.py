"""What a batch of jobs asks of a pipeline, and the code that runs it: the same in a
worker thread (thread backend) and in a worker process (process backend).

A "detect" job is fused: decode, detect, choose, align and embed run together where the
pipeline lives (the stages of `app.core.model.stages`, which `FacePipeline.analyze`
runs too), so decoded images and aligned chips never cross a process boundary on the
way in; the chips that come back (thumbnails) travel in shared memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.core.model.stages import FoundFaces, Pipeline, analyze_batch, face_results
from app.core.model.types import Detection, Embedding, FaceResult, FaceSelection
from app.core.serving.jobs import Kind, Timings
from app.core.serving.shm import ShmArray, materialize

Outcome = tuple[Any, BaseException | None, Timings]


@dataclass(frozen=True)
class DetectRequest:
    """Decode and detect; with `faces` set, also choose, align and embed the faces."""

    data: bytes
    faces: FaceSelection | None


@dataclass(frozen=True)
class EmbedRequest:
    """Aligned chips, (n, size, size, 3) uint8; in shared memory across processes."""

    chips: np.ndarray | ShmArray

    def release(self) -> None:
        if isinstance(self.chips, ShmArray):
            self.chips.discard()


@dataclass(frozen=True)
class Faces:
    """A detect job's answer when it asked for faces (`FoundFaces` on its way between
    processes): one row per face."""

    detections: list[Detection]
    embeddings: Embedding  # (n, d)
    chips: np.ndarray | ShmArray  # (n, size, size, 3)

    @classmethod
    def of(cls, found: FoundFaces) -> Faces:
        return cls(found.detections, found.embeddings, found.chips)

    def results(self) -> list[FaceResult]:
        """The faces, once imported (`imported`)."""
        assert isinstance(self.chips, np.ndarray)
        return face_results(self.detections, self.embeddings, self.chips)

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
    """The pipeline's stages over the whole batch (`app.core.model.stages`): same-size
    images share MTCNN's passes, every chip of the batch one forward pass."""
    outcomes = analyze_batch(
        pipeline, [request.data for request in requests], [request.faces for request in requests]
    )
    return [(Faces.of(v) if isinstance(v, FoundFaces) else v, e, t) for v, e, t in outcomes]
