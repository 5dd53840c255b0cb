"""Bodies of /healthz and /readyz."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str


class Readiness(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "ok", "model": True, "database": True, "index": True}]
        }
    )

    status: str
    model: bool
    database: bool
    index: bool
