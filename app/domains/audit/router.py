"""/v1/audit and /v1/decisions (admin keys): newest first, paged with `before`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from app.api import errors
from app.api.deps import AdminKey, from_state
from app.core.bounds import PlainText
from app.core.store.repos.audit import Filters
from app.domains.audit.schemas import AuditPage, DecisionPage
from app.domains.audit.service import AuditService

router = APIRouter(prefix="/v1", tags=["audit"])

AuditDep = Annotated[AuditService, Depends(from_state("audit"))]

Since = Annotated[datetime | None, Query(description="From this time on (ISO 8601).")]
Until = Annotated[datetime | None, Query(description="Before this time (ISO 8601).")]
Actor = Annotated[PlainText | None, Query(max_length=64, description="A key prefix, or `cli`.")]
Before = Annotated[
    int | None, Query(ge=1, le=2**63 - 1, description="`next_before` of the previous page.")
]
Limit = Annotated[int, Query(ge=1, le=500)]
# What the decisions table records (app.core.store.repos.audit.Decision).
DecisionResult = Literal["match", "no_match", "known", "unknown"]


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The audit trail: who enrolled, deleted, created or revoked what, and when",
    responses=errors.responses(errors.PARAMS),
)
async def list_audit(
    _: AdminKey,
    service: AuditDep,
    since: Since = None,
    until: Until = None,
    action: Annotated[
        PlainText | None,
        Query(max_length=64, description="e.g. `identity.delete`, `key.create`."),
    ] = None,
    outcome: Annotated[
        Literal["ok", "refused"] | None,
        Query(description="`ok`: changes made; `refused`: changes refused, whatever the error."),
    ] = None,
    actor: Actor = None,
    before: Before = None,
    limit: Limit = 50,
) -> AuditPage:
    filters = Filters(
        since=since, until=until, action=action, actor=actor, before=before, outcome=outcome
    )
    return await service.events(filters, limit)


@router.get(
    "/decisions",
    response_model=DecisionPage,
    summary="Recorded verify/recognize decisions (FACESVC_RECORD_DECISIONS)",
    responses=errors.responses(errors.PARAMS),
)
async def list_decisions(
    _: AdminKey,
    service: AuditDep,
    since: Since = None,
    until: Until = None,
    action: Annotated[
        PlainText | None, Query(max_length=32, description="`verify` or `recognize`.")
    ] = None,
    result: Annotated[
        list[DecisionResult] | None,
        Query(
            max_length=4,
            description="Any of these results; repeat it for several: `known` and "
            "`match` are the doors opened, `unknown` and `no_match` those refused.",
        ),
    ] = None,
    actor: Actor = None,
    before: Before = None,
    limit: Limit = 50,
) -> DecisionPage:
    filters = Filters(
        since=since,
        until=until,
        action=action,
        actor=actor,
        before=before,
        results=tuple(result or ()),
    )
    return await service.decisions(filters, limit)
