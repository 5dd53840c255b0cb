"""/healthz (process up), /readyz (model, database, index), /metrics (Prometheus).

/healthz and /readyz need no key (probes); /metrics shows the gallery size, so whether and
for whom it is served is a setting (FACESVC_METRICS, `metrics_router`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app.api import errors
from app.api.deps import from_state, require
from app.core.access import Scope
from app.domains.health.schemas import Health, Readiness
from app.domains.health.service import HealthService

router = APIRouter(tags=["health"])

METRICS_EXAMPLE = (
    "# HELP facesvc_index_size Faces in the search index.\n"
    "# TYPE facesvc_index_size gauge\n"
    "facesvc_index_size 3.0\n"
)

NOT_READY = {"status": "unavailable", "model": True, "database": False, "index": True}

HealthDep = Annotated[HealthService, Depends(from_state("health"))]


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness: the process answers (no key)",
    responses=errors.PUBLIC,
)
async def get_health() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: model, database and index up (no key)",
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready: the part that is not says false",
            "content": {"application/json": {"example": NOT_READY}},
        },
        **errors.PUBLIC,
    },
)
async def get_readiness(health: HealthDep) -> JSONResponse:
    ready = await health.readiness()
    return JSONResponse(ready.model_dump(), status_code=200 if ready.status == "ok" else 503)


async def get_metrics(health: HealthDep) -> Response:
    return Response(await health.exposition(), media_type=CONTENT_TYPE_LATEST)


def metrics_router(access: Literal["public", "key", "off"]) -> APIRouter:
    """/metrics for anyone, for a key with the `metrics` scope, or not at all (404)."""
    scraper = APIRouter(tags=["health"])
    if access == "off":
        return scraper
    keyed = access == "key"
    scraper.add_api_route(
        "/metrics",
        get_metrics,
        methods=["GET"],
        summary="Prometheus metrics: traffic, latency, gallery size",
        response_class=Response,
        dependencies=[Depends(require(Scope.metrics))] if keyed else [],
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"example": METRICS_EXAMPLE}}},
            **(errors.responses() if keyed else errors.PUBLIC),
        },
    )
    return scraper
