"""/v1/verify, /v1/compare, /v1/recognize, /v1/detect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Request

from app.api import errors
from app.api.deps import VerifyKey, from_state
from app.api.forms import openapi_body, parse_form
from app.core.access import Scope
from app.core.store.audit_trail import DecisionLog
from app.domains.recognition import decisions
from app.domains.recognition.schemas import (
    CompareForm,
    CompareOut,
    DetectForm,
    DetectOut,
    RecognizeForm,
    RecognizeOut,
    VerifyForm,
    VerifyOut,
)
from app.domains.recognition.service import RecognitionService

router = APIRouter(prefix="/v1", tags=["recognition"])

Recognition = Annotated[RecognitionService, Depends(from_state("recognition"))]
# Records the answers when FACESVC_RECORD_DECISIONS is on: in a short session of its own
# once the answer is sent (no connection held through inference, no wait for the commit).
Decisions = Annotated[DecisionLog, Depends(from_state("decision_log"))]

IMAGE = ("image",)
PAIR = ("image_a", "image_b")


@router.post(
    "/verify",
    response_model=VerifyOut,
    summary="1:1: is this the claimed person?",
    description="A key without the `read` scope gets `identity`, `distance`, "
    "`matched_face_id` and `probability` only on a match; an unknown id answers as a "
    "non-match (no 404) and an identity without faces of the active model likewise "
    "(no 409).",
    responses=errors.responses(errors.FACES, errors.NOT_FOUND, errors.CONFLICT),
    openapi_extra=openapi_body(VerifyForm, IMAGE),
)
async def verify_identity(
    request: Request,
    principal: VerifyKey,
    service: Recognition,
    log: Decisions,
    background: BackgroundTasks,
) -> VerifyOut:
    form = await parse_form(request, VerifyForm, IMAGE, service.max_image_bytes)
    principal.check_collection(form.collection)
    out = await service.verify(form, may_read=principal.allows(Scope.read))
    if log.enabled:
        background.add_task(log.record, principal, decisions.of_verify(form, out))
    return out


@router.post(
    "/compare",
    response_model=CompareOut,
    summary="Are two photos the same person? (no enrollment)",
    responses=errors.responses(errors.FACES),
    openapi_extra=openapi_body(CompareForm, PAIR),
)
async def compare_faces(request: Request, _: VerifyKey, service: Recognition) -> CompareOut:
    form = await parse_form(request, CompareForm, PAIR, service.max_image_bytes)
    return await service.compare(form)


@router.post(
    "/recognize",
    response_model=RecognizeOut,
    summary="1:N: who is this? (or unknown)",
    description="Candidates within the threshold only; `include_rejected` (a key with "
    "the `read` scope) also lists the nearest ones beyond it.",
    responses=errors.responses(errors.FACES, errors.NOT_FOUND, errors.CONFLICT),
    openapi_extra=openapi_body(RecognizeForm, IMAGE),
)
async def recognize_faces(
    request: Request,
    principal: VerifyKey,
    service: Recognition,
    log: Decisions,
    background: BackgroundTasks,
) -> RecognizeOut:
    form = await parse_form(request, RecognizeForm, IMAGE, service.max_image_bytes)
    principal.check_collection(form.collection)
    out = await service.recognize(form, may_read=principal.allows(Scope.read))
    if log.enabled:
        background.add_task(log.record, principal, decisions.of_recognize(form, out))
    return out


@router.post(
    "/detect",
    response_model=DetectOut,
    summary="Find faces: boxes, scores, landmarks",
    responses=errors.responses(errors.FACES),
    openapi_extra=openapi_body(DetectForm, IMAGE),
)
async def detect_faces(request: Request, _: VerifyKey, service: Recognition) -> DetectOut:
    form = await parse_form(request, DetectForm, IMAGE, service.max_image_bytes)
    return await service.detect(form)
