"""/api/v1/...: CompreFace's REST API, so that CompreFace clients (its SDKs, Double Take,
Home Assistant integrations) work against facesvc unchanged. Not in our OpenAPI:
CompreFace's own REST API description is its contract (docs/compat-compreface.md).

Keys: the `x-api-key` header is our X-API-Key. Listing needs `read`; adding and
renaming `enroll`; deleting subjects and examples `delete`; recognize, verify and detect
`verify`; verifying against a saved example (an image_id only a reader can know) `verify`
and `read`. Each call works in the key's collection (`collection_for`), changes are
audited as the key's, and recognize and verify answers go to the decision log
(FACESVC_RECORD_DECISIONS) as /v1's do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from app.api.deps import DeleteKey, EnrollKey, ReadKey, VerifyKey, from_state
from app.api.forms import parse_form, parse_json
from app.core import bounds
from app.core.access import Principal, Scope
from app.core.errors import Forbidden, ValidationFailed
from app.core.store.audit_trail import DecisionLog
from app.domains.compreface.mapping import CompreFaceError, collection_for, subject_name
from app.domains.compreface.schemas import (
    DeletedOut,
    FaceOptions,
    FacesOut,
    FacesPage,
    ImageForm,
    ImageOut,
    SubjectIn,
    SubjectOut,
    SubjectsOut,
    TwoImagesForm,
    UpdatedOut,
    VerificationsOut,
)
from app.domains.compreface.service import CompreFaceService

PREFIX = "/api/v1/"
router = APIRouter(prefix="/api/v1", tags=["compreface"], include_in_schema=False)

CompreFace = Annotated[CompreFaceService, Depends(from_state("compreface"))]
Decisions = Annotated[DecisionLog, Depends(from_state("decision_log"))]
FILE = ("file",)
PAIR = ("source_image", "target_image")

# ---------------------------------------------------------------- errors in CompreFace's shape

# Our error code -> CompreFace's numeric code (its CommonExceptionCode), where one fits.
CODES = {
    "no_face": 28,  # NO_FACES_FOUND
    "multiple_faces": 31,  # TOO_MANY_FACES
    "invalid_image": 21,  # UNAVAILABLE_FILE_EXTENSION: not an image it can read
    "validation_error": 26,  # VALIDATION_CONSTRAINT_VIOLATION
    "not_found": 11,  # IMAGE_NOT_FOUND (unknown routes too)
    "conflict": 43,
}


def compreface_error(
    status: int, code: str, detail: str, exc: Exception | None
) -> tuple[int, dict[str, Any]]:
    """`{"message", "code"}`; CompreFace answers client errors with 400 where we use 422."""
    if isinstance(exc, CompreFaceError):
        number = exc.compreface_code
    elif code == "unauthorized":  # no key: MISSING_REQUEST_HEADER; an unknown one: not found
        number = 20 if "missing" in detail else 10
    else:
        number = CODES.get(code, 0)  # 0: CompreFace's UNDEFINED
    return (400 if status == 422 else status), {"message": detail, "code": number}


# ---------------------------------------------------------------- options


def face_options(
    limit: Annotated[int, Query(ge=0)] = 0,
    det_prob_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    prediction_count: Annotated[int, Query(ge=1)] = 1,
    face_plugins: Annotated[str, Query(max_length=200)] = "",
    status: bool = False,
) -> FaceOptions:
    """CompreFace's options. Plugins we do not have (age, gender, mask, pose, calculator)
    are left out of the answer, as CompreFace leaves out plugins it has not enabled."""
    plugins = {p.strip() for p in face_plugins.split(",")}
    return FaceOptions(
        limit=limit,
        det_prob_threshold=det_prob_threshold,
        prediction_count=prediction_count,
        landmarks="landmarks" in plugins,
        status=status,
    )


Options = Annotated[FaceOptions, Depends(face_options)]
Subject = Annotated[str | None, Query(max_length=400)]


def may_read(principal: Principal) -> bool:
    return principal.allows(Scope.read)


# ---------------------------------------------------------------- subjects


@router.post("/recognition/subjects", status_code=201, response_model=SubjectOut)
async def add_subject(request: Request, key: EnrollKey, service: CompreFace) -> SubjectOut:
    body = await parse_json(request, SubjectIn)
    return await service.add_subject(body.subject, collection=collection_for(key), actor=key)


@router.put("/recognition/subjects/{subject}", response_model=UpdatedOut)
async def rename_subject(
    subject: str, request: Request, key: EnrollKey, service: CompreFace
) -> UpdatedOut:
    body = await parse_json(request, SubjectIn)
    return await service.rename_subject(
        subject_name(subject), body.subject, collection=collection_for(key), actor=key
    )


@router.delete("/recognition/subjects/{subject}", response_model=SubjectOut)
async def delete_subject(subject: str, key: DeleteKey, service: CompreFace) -> SubjectOut:
    name = subject_name(subject)
    return await service.delete_subject(name, collection=collection_for(key), actor=key)


@router.delete("/recognition/subjects", response_model=DeletedOut)
async def delete_all_subjects(key: DeleteKey, service: CompreFace) -> DeletedOut:
    return await service.delete_all_subjects(collection=collection_for(key), actor=key)


@router.get("/recognition/subjects", response_model=SubjectsOut)
@router.get("/recognition/subjects/", response_model=SubjectsOut)  # as CompreFace's docs write it
async def list_subjects(key: ReadKey, service: CompreFace) -> SubjectsOut:
    return await service.list_subjects(collection=collection_for(key))


# ---------------------------------------------------------------- faces (examples)


@router.post("/recognition/faces", status_code=201, response_model=ImageOut)
async def add_example(
    request: Request,
    key: EnrollKey,
    service: CompreFace,
    subject: Subject = None,
    det_prob_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> ImageOut:
    name = subject_name(subject)  # before the upload is read
    form = await parse_form(request, ImageForm, FILE, service.max_image_bytes)
    return await service.add_example(
        form.file, name, det_prob_threshold, collection=collection_for(key), actor=key
    )


@router.get("/recognition/faces", response_model=FacesPage)
async def list_examples(
    key: ReadKey,
    service: CompreFace,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    size: Annotated[int, Query(ge=1, le=1000)] = 20,
    subject: Subject = None,
) -> FacesPage:
    name = None if subject is None else subject_name(subject)
    return await service.list_examples(page, size, name, collection=collection_for(key))


@router.delete("/recognition/faces", response_model=DeletedOut)
async def delete_examples_of(
    key: DeleteKey, service: CompreFace, subject: Subject = None
) -> DeletedOut:
    """Without `subject`, every example of every subject (CompreFace's behaviour)."""
    name = None if subject is None else subject_name(subject)
    return await service.delete_examples_of(name, collection=collection_for(key), actor=key)


@router.post("/recognition/faces/delete", response_model=list[ImageOut])
async def delete_examples(request: Request, key: DeleteKey, service: CompreFace) -> list[ImageOut]:
    try:
        ids = bounds.load_json(await request.body(), "the body")
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValidationFailed("the body must be a JSON array of image_id strings")
    if len(ids) > 1000:
        raise ValidationFailed("at most 1000 image ids at once")
    return await service.delete_examples(ids, collection=collection_for(key), actor=key)


@router.delete("/recognition/faces/{image_id}", response_model=ImageOut)
async def delete_example(image_id: str, key: DeleteKey, service: CompreFace) -> ImageOut:
    return await service.delete_example(image_id, collection=collection_for(key), actor=key)


@router.post(
    "/recognition/faces/{image_id}/verify",
    response_model=FacesOut,
    response_model_exclude_none=True,
)
async def verify_example(
    image_id: str,
    request: Request,
    key: VerifyKey,
    options: Options,
    service: CompreFace,
    log: Decisions,
    background: BackgroundTasks,
) -> FacesOut:
    if not may_read(key):
        raise Forbidden("verifying against a saved example needs the 'read' scope too")
    form = await parse_form(request, ImageForm, FILE, service.max_image_bytes)
    out, decided = await service.verify_example(
        image_id, form.file, options, collection=collection_for(key)
    )
    if log.enabled:
        background.add_task(log.record, key, decided)
    return out


# ---------------------------------------------------------------- recognize, verify, detect


@router.post("/recognition/recognize", response_model=FacesOut, response_model_exclude_none=True)
async def recognize(
    request: Request,
    key: VerifyKey,
    options: Options,
    service: CompreFace,
    log: Decisions,
    background: BackgroundTasks,
) -> FacesOut:
    form = await parse_form(request, ImageForm, FILE, service.max_image_bytes)
    out, decided = await service.recognize(
        form.file, options, may_read=may_read(key), collection=collection_for(key)
    )
    if log.enabled:  # as /v1/recognize: after the answer is sent
        background.add_task(log.record, key, decided)
    return out


@router.post(
    "/verification/verify", response_model=VerificationsOut, response_model_exclude_none=True
)
async def verify(
    request: Request, _: VerifyKey, options: Options, service: CompreFace
) -> VerificationsOut:
    form = await parse_form(request, TwoImagesForm, PAIR, service.max_image_bytes)
    return await service.verify_images(form.source_image, form.target_image, options)


@router.post("/detection/detect", response_model=FacesOut, response_model_exclude_none=True)
async def detect(request: Request, _: VerifyKey, options: Options, service: CompreFace) -> FacesOut:
    form = await parse_form(request, ImageForm, FILE, service.max_image_bytes)
    return await service.detect(form.file, options)
