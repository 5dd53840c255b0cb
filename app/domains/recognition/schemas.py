"""Request and response bodies of verify, compare, recognize and detect."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from app.core.model.types import Detection
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.domains.shared import Box, CollectionField, ExternalId, IdentityOut

Threshold = Annotated[
    FiniteFloat | None,
    Field(description="Squared-distance threshold; default: the model's calibrated one."),
]


class DetectedFace(BaseModel):
    box: Box = Field(description="x1, y1, x2, y2 in pixels.")
    score: float = Field(description="Detector confidence.")
    landmarks: list[tuple[float, float]] | None = Field(
        None, description="Eyes, nose tip, mouth corners (x, y)."
    )

    @classmethod
    def of(cls, detection: Detection | None) -> DetectedFace | None:
        if detection is None:
            return None
        landmarks = [(float(x), float(y)) for x, y in detection.landmarks.reshape(-1, 2)]
        box = tuple(float(v) for v in detection.box)
        return cls(box=box, score=float(detection.score), landmarks=landmarks)


PROBABILITY = (
    "P(same person) from the learned verifier (FACESVC_VERIFIER, `facesvc train-verifier`) "
    "at even prior odds; for verify, of the face at `distance`. Null without a verifier."
)


class VerifyForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: bytes = Field(description="Probe photo.")
    identity_id: uuid.UUID | None = Field(None, description="Who the person claims to be.")
    external_id: ExternalId | None = Field(None, description="Alternatively, your own id.")
    threshold: Threshold = None
    largest_face: bool = Field(False, description="Use the largest face if there are several.")
    collection: CollectionField = DEFAULT_COLLECTION

    @model_validator(mode="after")
    def _one_target(self) -> VerifyForm:
        if (self.identity_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of identity_id and external_id")
        return self


class CompareForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_a: bytes = Field(description="First photo.")
    image_b: bytes = Field(description="Second photo.")
    threshold: Threshold = None
    largest_face: bool = Field(False, description="Use the largest face of each photo.")


class RecognizeForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: bytes = Field(description="Photo to search the gallery with.")
    top_k: int | None = Field(None, ge=1, description="Candidates per face (default 1).")
    threshold: Threshold = None
    all_faces: bool = Field(False, description="Every face in the photo, not only the largest.")
    include_rejected: bool = Field(
        False,
        description="Also list the nearest candidates beyond the threshold (people the "
        "answer rejected), with `distance` of an unknown face; needs a key with the "
        "`read` scope (403 otherwise).",
    )
    collection: CollectionField = DEFAULT_COLLECTION


class DetectForm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: bytes = Field(description="Photo.")


NEED_TO_KNOW = (
    "For a key without the `read` scope null unless `match` is true (an unknown id "
    "answers like a non-match)."
)


class VerifyOut(BaseModel):
    match: bool
    distance: float | None = Field(
        description="Smallest squared L2 distance to the identity's faces. " + NEED_TO_KNOW
    )
    threshold: float = Field(description="The threshold that decided `match`.")
    identity: IdentityOut | None = Field(description="The claimed identity. " + NEED_TO_KNOW)
    face: DetectedFace | None = Field(description="The face found in the probe photo.")
    matched_face_id: int | None = Field(
        description="The enrolled face at `distance`. " + NEED_TO_KNOW
    )
    probability: float | None = Field(None, description=PROBABILITY + " " + NEED_TO_KNOW)


class CompareOut(BaseModel):
    match: bool
    distance: float
    threshold: float
    faces: list[DetectedFace | None] = Field(description="The face used from image_a, image_b.")
    probability: float | None = Field(None, description=PROBABILITY)


class Candidate(BaseModel):
    identity: IdentityOut
    distance: float
    face_id: int = Field(description="The enrolled face at `distance`.")


class RecognizedFace(BaseModel):
    face: DetectedFace | None
    candidates: list[Candidate] = Field(
        description="Nearest identities first, at most top_k: those within the threshold, "
        "or with include_rejected also those beyond it."
    )
    identity: IdentityOut | None = Field(
        description="The nearest candidate if within the threshold, else null (unknown)."
    )
    distance: float | None = Field(
        description="Distance of the nearest candidate; null for an unknown face unless "
        "include_rejected."
    )
    score: float | None = Field(
        None,
        description="With FACESVC_IDENTIFY_SCORE=cohort: distance divided by the probe's mean "
        "distance to its nearest cohort faces, the score `threshold` decided on (null "
        "where `distance` is).",
    )
    margin: float | None = Field(
        None,
        description="How far the decision is from flipping to the runner-up person: the "
        "nearest *other* person's score minus this face's best score, on the scale "
        "`threshold` decided on (distance, or `score` with cohort scoring); never negative. "
        "Null with no other person enrolled, and where `distance` is null. A thin margin "
        "means two people are almost equally near: ask for a second look.",
        examples=[0.0931],
    )
    confidence: float | None = Field(
        None,
        description="1 - FPIR(distance, N) from the calibration's gallery model: the share "
        "of strangers (people not enrolled) searching this gallery of N faces whose nearest "
        "distance would be larger than this one. Not the probability that `identity` is "
        "right. Null where `distance` is, and when the calibration in use has no gallery "
        "model (the built-in one; `facesvc calibrate` stores one).",
        examples=[0.9987],
    )


class RecognizeOut(BaseModel):
    threshold: float = Field(
        description="The threshold that decided each `identity`: the calibrated one "
        "follows the size of the collection searched."
    )
    faces: list[RecognizedFace]


class DetectOut(BaseModel):
    faces: list[DetectedFace]
