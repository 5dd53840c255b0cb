"""Request and response bodies of /v1/stylize and /v1/jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.bounds import load_json
from app.core.store.rows.jobs import StyleJob
from app.core.style.options import StyleOptions
from app.domains.shared import IMAGE_EXAMPLE

PLAN_EXAMPLE: dict[str, Any] = {
    "network": "vgg19",
    "alpha": 1.0,
    "beta": 0.0001,
    "content_layer": "block4_relu2",
    "style_layers": {f"block{i}_relu1": 0.2 for i in range(1, 6)},
    "steps": 150,
    "max_side": 256,
    "init": "noise",
    "seed": 7,
    "optimiser": "lbfgs",
    "learning_rate": 1.0,
    "tv_weight": 0.0,
    "pyramid_levels": 0,
    "shift_average": False,
    "normalisation": "nhwc",
}


class StylizeForm(StyleOptions):
    """multipart/form-data (or JSON with base64 images): two images and the options."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content": IMAGE_EXAMPLE, "style": IMAGE_EXAMPLE, "steps": 150, "seed": 7}
            ]
        }
    )

    content: bytes = Field(description="The photo to restyle.")
    style: bytes = Field(description="The painting whose style to take.")

    @field_validator("style_layers", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """In a multipart form, style_layers is a JSON object as a string."""
        if isinstance(value, str):
            return load_json(value, "style_layers")  # bounded depth, no recursion
        return value

    def options(self) -> StyleOptions:
        return StyleOptions.model_validate(self.model_dump(exclude={"content", "style"}))


class Progress(BaseModel):
    step: int = Field(description="Steps done.")
    steps: int = Field(description="Steps planned.")


class JobOut(BaseModel):
    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "job_id": "01a22fb0-3c41-7e55-8d2b-6f0e9a1c2d34",
                    "status": "running",
                    "progress": {"step": 40, "steps": 150},
                    "J": 152000.0,
                    "J_content": 41.7,
                    "J_style": 1.1e9,
                    "params": PLAN_EXAMPLE,
                    "attempts": 1,
                    "error": None,
                    "identity_distance": None,
                    "identity_verified": None,
                    "result_url": None,
                    "created_at": "2026-12-01T03:30:02.114000Z",
                    "started_at": "2026-12-01T03:30:02.530000Z",
                    "finished_at": None,
                }
            ]
        },
    )

    job_id: uuid.UUID
    status: str = Field(description="queued, running, succeeded, failed or cancelled.")
    progress: Progress
    J: float | None = Field(None, description="Latest total cost J.")
    J_content: float | None = Field(None, description="Latest J_content (unweighted).")
    J_style: float | None = Field(None, description="Latest J_style (unweighted by beta).")
    params: dict[str, Any] = Field(description="Every setting of the run, defaults filled.")
    attempts: int = Field(description="Times the job was started (re-runs after a restart).")
    error: str | None = Field(None, description="Why it failed, or why it was re-run.")
    identity_distance: float | None = Field(
        None,
        description="Squared embedding distance between the content's face and the "
        "result's, with the default recognizer (null: no face in the content, or none "
        "found in the result).",
    )
    identity_verified: bool | None = Field(
        None, description="Whether the result would still verify as the content's person."
    )
    result_url: str | None = Field(None, description="Where the PNG is, once succeeded.")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, job: StyleJob) -> JobOut:
        succeeded = job.status == "succeeded"
        return cls(
            job_id=job.id,
            status=job.status,
            progress=Progress(step=job.step, steps=job.steps),
            J=job.cost,
            J_content=job.cost_content,
            J_style=job.cost_style,
            params=job.params,
            attempts=job.attempts,
            error=job.error,
            identity_distance=job.identity_distance,
            identity_verified=job.identity_verified,
            result_url=f"/v1/jobs/{job.id}/result" if succeeded else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )
