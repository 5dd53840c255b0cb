"""Request and response bodies of verify, compare, recognize and detect."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, computed_field, model_validator

from app.core.model.types import Detection
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.domains.shared import (
    FACE_EXAMPLE,
    IDENTITY_EXAMPLE,
    IMAGE_EXAMPLE,
    Box,
    CollectionField,
    ExternalId,
    IdentityOut,
)

Threshold = Annotated[
    FiniteFloat | None,
    Field(description="Squared-distance threshold; default: the model's calibrated one."),
]


class DetectedFace(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [FACE_EXAMPLE]})

    box: Box = Field(description="x1, y1, x2, y2 in pixels.")
    detection_score: float = Field(description="Detector confidence, 0 to 1.")
    landmarks: list[tuple[float, float]] | None = Field(
        None, description="Eyes, nose tip, mouth corners (x, y)."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Deprecated: the same as `detection_score`; kept for 0.1 clients, "
        "removed in 0.3.",
        json_schema_extra={"deprecated": True},
    )
    @property
    def score(self) -> float:
        return self.detection_score

    @classmethod
    def of(cls, detection: Detection | None) -> DetectedFace | None:
        if detection is None:
            return None
        landmarks = [(float(x), float(y)) for x, y in detection.landmarks.reshape(-1, 2)]
        box = tuple(float(v) for v in detection.box)
        return cls(box=box, detection_score=float(detection.score), landmarks=landmarks)


PROBABILITY = (
    "P(same person) from the learned verifier (FACESVC_VERIFIER, `facesvc train-verifier`) "
    "at even prior odds; for verify, of the face at `distance`. Null without a verifier."
)


LARGEST_FACE = "Use the largest face if there are several (else several faces are a 422)."


class VerifyForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"image": IMAGE_EXAMPLE, "external_id": "emp-1042", "largest_face": True}]
        },
    )

    image: bytes = Field(description="Probe photo.")
    identity_id: uuid.UUID | None = Field(None, description="Who the person claims to be.")
    external_id: ExternalId | None = Field(None, description="Alternatively, your own id.")
    threshold: Threshold = None
    largest_face: bool = Field(False, description=LARGEST_FACE)
    collection: CollectionField = DEFAULT_COLLECTION

    @model_validator(mode="after")
    def _one_target(self) -> VerifyForm:
        if (self.identity_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of identity_id and external_id")
        return self


class CompareForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"image_a": IMAGE_EXAMPLE, "image_b": IMAGE_EXAMPLE, "threshold": 0.1424}]
        },
    )

    image_a: bytes = Field(description="First photo.")
    image_b: bytes = Field(description="Second photo.")
    threshold: Threshold = None
    largest_face: bool = Field(False, description="Use the largest face of each photo.")


class RecognizeForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"image": IMAGE_EXAMPLE, "top_k": 3}]},
    )

    image: bytes = Field(description="Photo to search the gallery with.")
    top_k: int | None = Field(None, ge=1, description="Candidates per face (default 1).")
    threshold: Threshold = None
    largest_face: bool = Field(
        True,
        description="As for enroll and verify: use the largest face if there are several; "
        "true by default here (false: a photo with several faces is a 422 "
        "`multiple_faces`). `all_faces` takes precedence.",
    )
    all_faces: bool = Field(False, description="Every face in the photo, not only the largest.")
    include_rejected: bool = Field(
        False,
        description="Also list the nearest candidates beyond the threshold (people the "
        "answer rejected), with `distance` of an unknown face; needs a key with the "
        "`read` scope (403 otherwise).",
    )
    collection: CollectionField = DEFAULT_COLLECTION


class DetectForm(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"image": IMAGE_EXAMPLE}]}
    )

    image: bytes = Field(description="Photo.")


NEED_TO_KNOW = (
    "For a key without the `read` scope null unless `match` is true (an unknown id "
    "answers like a non-match)."
)


FACE_1 = FACE_EXAMPLE
FACE_2: dict[str, Any] = {
    **FACE_EXAMPLE,
    "box": [78.88, 65.43, 178.17, 189.54],
    "detection_score": 1.0,
    "score": 1.0,
    "landmarks": [
        [103.5, 112.96],
        [148.89, 111.99],
        [124.17, 138.26],
        [101.1, 153.69],
        [153.71, 153.46],
    ],
}


class VerifyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "match": True,
                    "distance": 0.0717,
                    "threshold": 0.1424,
                    "identity": IDENTITY_EXAMPLE,
                    "face": FACE_2,
                    "matched_face_id": 1,
                    "probability": None,
                }
            ]
        }
    )

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
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "match": True,
                    "distance": 0.0717,
                    "threshold": 0.1424,
                    "faces": [FACE_1, FACE_2],
                    "probability": None,
                }
            ]
        }
    )

    match: bool
    distance: float
    threshold: float
    faces: list[DetectedFace | None] = Field(description="The face used from image_a, image_b.")
    probability: float | None = Field(None, description=PROBABILITY)


CANDIDATE_EXAMPLE: dict[str, Any] = {"identity": IDENTITY_EXAMPLE, "distance": 0.0717, "face_id": 1}


class Candidate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CANDIDATE_EXAMPLE]})

    identity: IdentityOut
    distance: float
    face_id: int = Field(description="The enrolled face at `distance`.")


RECOGNIZED_EXAMPLE: dict[str, Any] = {
    "face": FACE_2,
    "candidates": [CANDIDATE_EXAMPLE],
    "identity": IDENTITY_EXAMPLE,
    "distance": 0.0717,
    "cohort_score": None,
    "margin": 0.2038,
    "confidence": 0.9994,
}


class RecognizedFace(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [RECOGNIZED_EXAMPLE]})

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
    cohort_score: float | None = Field(
        None,
        description="With FACESVC_IDENTIFY_SCORE=cohort: distance divided by the probe's mean "
        "distance to its nearest cohort faces, the score `threshold` decided on (null "
        "without cohort scoring, and where `distance` is null).",
    )
    margin: float | None = Field(
        None,
        description="How far the decision is from flipping to the runner-up person: the "
        "nearest *other* person's score minus this face's best score, on the scale "
        "`threshold` decided on (distance, or `cohort_score` with cohort scoring); never "
        "negative. "
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

    # A field, not a computed one, so that it may be left out of the (null-less) examples.
    score: float | None = Field(
        None,
        description="Deprecated: the same as `cohort_score`; kept for 0.1 clients, removed in 0.3.",
        json_schema_extra={"deprecated": True},
    )

    @model_validator(mode="after")
    def _old_name(self) -> RecognizedFace:
        self.score = self.cohort_score
        return self


class RecognizeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"threshold": 0.1598, "faces": [RECOGNIZED_EXAMPLE]}]}
    )

    threshold: float = Field(
        description="The threshold that decided each `identity`: the calibrated one "
        "follows the size of the collection searched."
    )
    faces: list[RecognizedFace]


class DetectOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"faces": [FACE_1]}]})

    faces: list[DetectedFace]
