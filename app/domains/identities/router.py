"""/v1/identities: enroll people, add and delete faces, list, read, update, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response, status

from app.api import errors
from app.api.deps import (
    ContextDep,
    EnrollKey,
    GalleryDep,
    InferenceDep,
    MetricsDep,
    ReadKey,
    SessionDep,
    SettingsDep,
)
from app.api.forms import JSON, media_type, openapi_body, openapi_json_body, parse_form, parse_json
from app.core.bounds import Label, PlainText
from app.core.errors import UnsupportedMediaType
from app.core.store import db
from app.domains.identities import service
from app.domains.identities.schemas import (
    AddFaceForm,
    EnrollForm,
    EnrollOut,
    IdentityDetail,
    IdentityOut,
    IdentityPage,
    IdentityPatch,
)

router = APIRouter(prefix="/v1/identities", tags=["identities"])

IMAGE = ("image",)


def require_json(request: Request) -> None:
    if media_type(request) != JSON:
        raise UnsupportedMediaType(f"send {JSON}")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollOut,
    summary="Enroll a person from one photo",
    responses=errors.responses(errors.FACES, errors.CONFLICT),
    openapi_extra=openapi_body(EnrollForm, IMAGE),
)
async def enroll(
    request: Request,
    _: EnrollKey,
    session: SessionDep,
    inference: InferenceDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> EnrollOut:
    form = await parse_form(request, EnrollForm, IMAGE, settings.max_image_bytes)
    return await service.enroll(
        session, form, inference=inference, gallery=gallery, settings=settings, metrics=metrics
    )


@router.post(
    "/{identity_id}/faces",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollOut,
    summary="Add another photo of an enrolled person",
    responses=errors.responses(errors.FACES, errors.NOT_FOUND),
    openapi_extra=openapi_body(AddFaceForm, IMAGE),
)
async def add_face(
    identity_id: uuid.UUID,
    request: Request,
    _: EnrollKey,
    session: SessionDep,
    inference: InferenceDep,
    gallery: GalleryDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> EnrollOut:
    form = await parse_form(request, AddFaceForm, IMAGE, settings.max_image_bytes)
    return await service.add_face(
        session,
        identity_id,
        form,
        inference=inference,
        gallery=gallery,
        settings=settings,
        metrics=metrics,
    )


@router.get("", response_model=IdentityPage, responses=errors.responses())
async def list_identities(
    _: ReadKey,
    session: SessionDep,
    cursor: Annotated[PlainText | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    external_id: Annotated[Label | None, Query(max_length=200)] = None,
) -> IdentityPage:
    return await service.list_page(session, cursor=cursor, limit=limit, external_id=external_id)


@router.get(
    "/{identity_id}",
    response_model=IdentityDetail,
    responses=errors.responses(errors.NOT_FOUND),
)
async def get_identity(identity_id: uuid.UUID, _: ReadKey, session: SessionDep) -> IdentityDetail:
    return await service.detail(session, identity_id)


@router.patch(
    "/{identity_id}",
    response_model=IdentityOut,
    responses=errors.responses(errors.NOT_FOUND),
    openapi_extra=openapi_json_body(IdentityPatch),
)
async def update_identity(
    identity_id: uuid.UUID,
    request: Request,
    _: EnrollKey,
    __: Annotated[None, Depends(require_json)],
    session: SessionDep,
    context: ContextDep,
    background: BackgroundTasks,
) -> IdentityOut:
    patch = await parse_json(request, IdentityPatch)
    updated = await service.update(session, identity_id, patch)
    background.add_task(db.checkpoint, context.db)  # the old name leaves the WAL too
    return updated


@router.delete(
    "/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors.responses(errors.NOT_FOUND),
)
async def delete_identity(
    identity_id: uuid.UUID,
    _: EnrollKey,
    session: SessionDep,
    gallery: GalleryDep,
    context: ContextDep,
    background: BackgroundTasks,
) -> None:
    await service.delete(session, identity_id, gallery=gallery)
    background.add_task(db.checkpoint, context.db)  # after the commit


@router.delete(
    "/{identity_id}/faces/{face_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors.responses(errors.NOT_FOUND),
)
async def delete_face(
    identity_id: uuid.UUID,
    face_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    _: EnrollKey,
    session: SessionDep,
    gallery: GalleryDep,
    context: ContextDep,
    background: BackgroundTasks,
) -> None:
    await service.delete_face(session, identity_id, face_id, gallery=gallery)
    background.add_task(db.checkpoint, context.db)  # after the commit
