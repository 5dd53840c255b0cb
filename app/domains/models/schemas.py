"""Response bodies of /v1/models and /v1/models/{name}/layers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# What /v1/models answered with the default model and three faces enrolled.
CONFIGURED_EXAMPLE: dict[str, Any] = {
    "name": "dlib-resnet-v1",
    "licence": "public domain weights (dlib)",
    "embedding_size": 128,
    "verify": {"default": 0.1424, "far": 0.001, "tar": 0.938},
    "identify": {"default": 0.1598, "fpir": 0.01, "fnir": 0.0202, "gallery_size": 3},
    "calibration_source": "lfw_dev (LFW folds 1-3, deep-funneled), L2-normalised: facesvc "
    "eval --data ../shared/faces/lfw_dev",
}
MODEL_EXAMPLE: dict[str, Any] = {
    **CONFIGURED_EXAMPLE,
    "version": "1+55533b28a958+l2.9966306c",
    "normalized": True,
    "distance": "squared_l2",
    "threshold_range": [0.0, 4.0],
    "gallery_faces": 3,
    "calibration": None,
    "other_models": [],
}


class Threshold1to1(BaseModel):
    default: float = Field(
        description="Default squared-distance threshold of /v1/verify, /v1/compare."
    )
    far: float | None = Field(description="False-accept rate per impostor pair at the default.")
    tar: float | None


class Threshold1toN(BaseModel):
    default: float = Field(description="Default threshold of /v1/recognize (stricter).")
    fpir: float | None = Field(description="Share of strangers accepted at the default.")
    fnir: float | None = Field(description="Share of enrolled people missed at the default.")
    gallery_size: int = Field(description="Gallery size the FPIR / FNIR were measured with.")


class ConfiguredModelOut(BaseModel):
    name: str
    licence: str = Field(description="Licence note on the model's weights.")
    embedding_size: int
    verify: Threshold1to1
    identify: Threshold1toN
    calibration_source: str


class HeldOutOut(BaseModel):
    """The calibrated thresholds measured on identities the calibration did not see."""

    identities: int
    far: float
    tar: float
    fpir: float
    fnir: float


class StoredCalibrationOut(BaseModel):
    """A `facesvc calibrate` run stored in the database, in use for the active model."""

    id: int
    created_at: datetime
    source: str = Field(description="Data set and command that produced it.")
    far_target: float
    far_interval: tuple[float, float] = Field(description="95% interval of the FAR at tau.")
    tar_interval: tuple[float, float] = Field(description="95% interval of the TAR at tau.")
    fpir_target: float
    calibrated_gallery_size: int
    calibrated_tau_identify: float
    follow_gallery: bool = Field(
        description="Whether the 1:N default is re-derived from the live gallery size "
        "to hold fpir_target (identify.gallery_size is then that size)."
    )
    gallery_model: str = Field(description="How FPIR is modelled against gallery size.")
    held_out: HeldOutOut | None


class StoredModelOut(BaseModel):
    """Faces in the database embedded with a model or version other than the active one."""

    name: str
    version: str
    faces: int
    action: str = Field(
        description="What to do: `facesvc reembed` re-embeds them with the active model, "
        "or a setting serves their version until then."
    )


class ModelOut(ConfiguredModelOut):
    version: str
    normalized: bool
    distance: str = "squared_l2"
    threshold_range: tuple[float, float] = Field(description="Allowed per-request thresholds.")
    gallery_faces: int | None = Field(
        description="Faces of this model in the search index; null for a key without "
        "the `read` scope."
    )
    calibration: StoredCalibrationOut | None = Field(
        None, description="The stored calibration in use; null: the built-in one."
    )
    other_models: list[StoredModelOut] | None = Field(
        None,
        description="Stored faces of other models or versions: 1:N refuses a gallery that "
        "holds any (409 `model_mismatch`) until they are re-embedded; null for a key "
        "without the `read` scope.",
    )


class IdentifyScoreOut(BaseModel):
    mode: str = Field(
        description="What /v1/recognize decides on: `distance` (the nearest squared "
        "distance against identify.default), `cohort` (that distance over the probe's mean "
        "distance to its cohort_k nearest faces of an operator's cohort file, against "
        "cohort_tau) or `built_in_cohort` (the same score with the model version's own "
        "cohort, its cohort_tau following the gallery size; on the distance while the "
        "gallery has fewer than min_gallery people)."
    )
    cohort_k: int | None = None
    cohort_tau: float | None = Field(
        None, description="The default 1:N threshold on the cohort score, at today's gallery size."
    )
    cohort_size: int | None = Field(None, description="Faces in the cohort.")
    min_gallery: int | None = Field(
        None, description="built_in_cohort: the gallery size from which the score is used."
    )
    active: bool | None = Field(
        None, description="built_in_cohort: whether today's gallery is large enough for it."
    )


class ModelsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "active": MODEL_EXAMPLE,
                    "configured": [CONFIGURED_EXAMPLE],
                    "identify_score": {
                        "mode": "distance",
                        "cohort_k": None,
                        "cohort_tau": None,
                        "cohort_size": None,
                    },
                }
            ]
        }
    )

    active: ModelOut
    configured: list[ConfiguredModelOut] = Field(
        description="Every backbone whose weights are present or configured, active first."
    )
    identify_score: IdentifyScoreOut


class LayerOut(BaseModel):
    name: str = Field(description="As `facesvc explain-units --layer` takes it.")
    description: str
    units: int = Field(description="Channels: the units `explain-units` can draw.")
    side: int = Field(description="Output rows (= columns) for the model's input crop.")
    receptive_field: int = Field(description="Side in input pixels that one unit sees.")
    stride: int = Field(description="Input pixels between neighbouring units.")


class LayersOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "dlib-resnet-v1",
                    "input_size": 150,
                    "layers": [
                        {
                            "name": "stem",
                            "description": "7x7/2 convolution + ReLU",
                            "units": 32,
                            "side": 72,
                            "receptive_field": 7,
                            "stride": 2,
                        },
                        {
                            "name": "embedding",
                            "description": "global average pool + 128-d linear",
                            "units": 128,
                            "side": 1,
                            "receptive_field": 150,
                            "stride": 150,
                        },
                    ],
                }
            ]
        },
    )

    model: str
    input_size: int
    layers: list[LayerOut] = Field(description="Input side first.")


# --- GET /v1/models/{name}/calibration ---------------------------------------------------

CURVE_EXAMPLE: dict[str, Any] = {
    "model": "dlib-resnet-v1",
    "version": "1+55533b28a958+l2.9966306c",
    "stored": {
        "id": 3,
        "created_at": "2026-12-01T07:40:12.512000Z",
        "source": "facesvc calibrate --data lfw_dev --far 0.001 --fpir 0.01 --gallery-size "
        "247: 1680 identities, 4550 images",
    },
    "calibration_source": "database: calibration 3 of 2026-12-01 07:40 (facesvc calibrate ...)",
    "verify": {"tau": 0.1424, "far": 0.001, "tar": 0.938},
    "roc": {
        "points": [
            {"tau": 0.0, "far": 0.0, "tar": 0.0},
            {"tau": 0.1424, "far": 0.001, "tar": 0.938},
            {"tau": 0.5213, "far": 1.0, "tar": 1.0},
        ],
        "genuine_pairs": 6210,
        "impostor_pairs": 10341315,
    },
    "identify": {
        "tau": 0.1598,
        "fpir": 0.01,
        "fnir": 0.0202,
        "gallery_size": 3,
        "follow_gallery": True,
    },
    "fpir_curve": {
        "gallery_size": 3,
        "gallery_model": "independent",
        "points": [
            {"tau": 0.1, "fpir": 0.0004, "fnir": 0.31},
            {"tau": 0.1598, "fpir": 0.01, "fnir": 0.0202},
            {"tau": 0.3, "fpir": 0.79, "fnir": 0.002},
        ],
    },
}


class OperatingPointOut(BaseModel):
    tau: float = Field(description="The default 1:1 threshold (squared distance).")
    far: float | None = Field(description="False-accept rate per impostor pair at tau.")
    tar: float | None = Field(description="True-accept rate per genuine pair at tau.")


class RocPointOut(BaseModel):
    tau: float
    far: float
    tar: float


class RocOut(BaseModel):
    """FAR and TAR over tau on the calibration's pairs (those counted as d <= tau)."""

    points: list[RocPointOut] = Field(
        description="By increasing tau, a few hundred, spaced for a log FAR axis; the "
        "active 1:1 tau is one of them."
    )
    genuine_pairs: int
    impostor_pairs: int


class IdentifyPointOut(BaseModel):
    tau: float = Field(description="The default 1:N threshold at gallery_size.")
    fpir: float | None = Field(description="Share of strangers accepted at tau.")
    fnir: float | None = Field(description="Share of enrolled people missed at tau.")
    gallery_size: int = Field(description="The gallery size tau and the rates are for.")
    follow_gallery: bool = Field(
        description="Whether tau is re-derived from the live gallery size to hold the target FPIR."
    )


class FpirPointOut(BaseModel):
    tau: float
    fpir: float
    fnir: float = Field(description="The FNIR the gallery model expects at tau.")


class FpirCurveOut(BaseModel):
    """FPIR (and expected FNIR) over tau for a gallery of gallery_size, from the gallery
    model the 1:N threshold is derived with."""

    gallery_size: int
    gallery_model: str = Field(description="How FPIR is modelled against gallery size.")
    points: list[FpirPointOut] = Field(description="By increasing tau; tau of identify too.")


class StoredRefOut(BaseModel):
    id: int
    created_at: datetime
    source: str = Field(description="Data set and command that produced it.")


class CalibrationCurveOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CURVE_EXAMPLE]})

    model: str
    version: str
    stored: StoredRefOut | None = Field(
        description="The `facesvc calibrate` run in use; null: the model's built-in calibration."
    )
    calibration_source: str
    verify: OperatingPointOut
    roc: RocOut | None = Field(
        description="Null where no curve is stored: the built-in calibration, or a "
        "calibration stored before `facesvc calibrate` kept its curve."
    )
    identify: IdentifyPointOut
    fpir_curve: FpirCurveOut | None = Field(
        description="Null where the calibration carries no gallery model."
    )
