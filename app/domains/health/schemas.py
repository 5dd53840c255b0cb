"""Bodies of /healthz and /readyz."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model: bool
    database: bool
    index: bool
