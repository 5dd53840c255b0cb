"""/v1/verify, /v1/compare, /v1/recognize, /v1/detect, /v1/models."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api import errors
from app.api.deps import (
    CohortDep,
    GalleryDep,
    InferenceDep,
    MetricsDep,
    SessionDep,
    SettingsDep,
    VerifierDep,
    VerifyKey,
)
from app.api.forms import openapi_body, parse_form
from app.core.access import Scope
from app.domains.recognition import service
from app.domains.recognition.schemas import (
    CompareForm,
    CompareOut,
    DetectForm,
    DetectOut,
    LayersOut,
    ModelsOut,
    RecognizeForm,
    RecognizeOut,
    VerifyForm,
    VerifyOut,
)

router = APIRouter(prefix="/v1", tags=["recognition"])

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
async def verify(
    request: Request,
    principal: VerifyKey,
    session: SessionDep,
    inference: InferenceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    verifier: VerifierDep,
) -> VerifyOut:
    form = await parse_form(request, VerifyForm, IMAGE, settings.max_image_bytes)
    return await service.verify(
        session,
        form,
        inference=inference,
        settings=settings,
        metrics=metrics,
        verifier=verifier,
        may_read=principal.allows(Scope.read),
    )


@router.post(
    "/compare",
    response_model=CompareOut,
    summary="Are two photos the same person? (no enrollment)",
    responses=errors.responses(errors.FACES),
    openapi_extra=openapi_body(CompareForm, PAIR),
)
async def compare(
    request: Request,
    _: VerifyKey,
    session: SessionDep,
    inference: InferenceDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    verifier: VerifierDep,
) -> CompareOut:
    form = await parse_form(request, CompareForm, PAIR, settings.max_image_bytes)
    return await service.compare(
        session, form, inference=inference, settings=settings, metrics=metrics, verifier=verifier
    )


@router.post(
    "/recognize",
    response_model=RecognizeOut,
    summary="1:N: who is this? (or unknown)",
    description="Candidates within the threshold only; `include_rejected` (a key with "
    "the `read` scope) also lists the nearest ones beyond it.",
    responses=errors.responses(errors.FACES, errors.CONFLICT),
    openapi_extra=openapi_body(RecognizeForm, IMAGE),
)
async def recognize(
    request: Request,
    principal: VerifyKey,
    session: SessionDep,
    inference: InferenceDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    cohort: CohortDep,
) -> RecognizeOut:
    form = await parse_form(request, RecognizeForm, IMAGE, settings.max_image_bytes)
    return await service.recognize(
        session,
        form,
        inference=inference,
        gallery=gallery,
        settings=settings,
        metrics=metrics,
        cohort=cohort,
        may_read=principal.allows(Scope.read),
    )


@router.post(
    "/detect",
    response_model=DetectOut,
    summary="Find faces: boxes, scores, landmarks",
    responses=errors.responses(errors.FACES),
    openapi_extra=openapi_body(DetectForm, IMAGE),
)
async def detect(
    request: Request, _: VerifyKey, inference: InferenceDep, settings: SettingsDep
) -> DetectOut:
    form = await parse_form(request, DetectForm, IMAGE, settings.max_image_bytes)
    return await service.detect(form, inference=inference)


@router.get("/models", response_model=ModelsOut, responses=errors.responses())
async def models(
    principal: VerifyKey,
    session: SessionDep,
    inference: InferenceDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    cohort: CohortDep,
) -> ModelsOut:
    return await service.models(
        session, inference, gallery, settings, cohort, may_read=principal.allows(Scope.read)
    )


@router.get(
    "/models/{name}/layers",
    response_model=LayersOut,
    summary="The embedding network's layers and their receptive fields",
    responses=errors.responses(errors.NOT_FOUND),
)
async def layers(name: str, _: VerifyKey) -> LayersOut:
    return service.layers(name)
