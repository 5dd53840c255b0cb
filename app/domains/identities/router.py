"""/v1/identities: enroll people, add and delete faces, list, read, update, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response, status

from app.api import errors
from app.api.deps import DeleteKey, EnrollKey, ReadKey, from_state
from app.api.forms import openapi_body, openapi_json_body, parse_form, parse_json, require_json
from app.core.bounds import Label, PlainText
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.domains.identities.schemas import (
    AddFaceForm,
    EnrollForm,
    EnrollOut,
    IdentityDetail,
    IdentityOut,
    IdentityPage,
    IdentityPatch,
)
from app.domains.identities.service import IdentityService
from app.domains.shared import COLLECTION_HELP, CollectionName

router = APIRouter(prefix="/v1/identities", tags=["identities"])

IdentitiesDep = Annotated[IdentityService, Depends(from_state("identities"))]

IMAGE = ("image",)
# The collection of a route without a form (GET, PATCH, DELETE): a query parameter.
InCollection = Annotated[CollectionName, Query(description=COLLECTION_HELP)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollOut,
    summary="Enroll a person from one photo",
    responses=errors.responses(errors.FACES, errors.NOT_FOUND, errors.CONFLICT),
    openapi_extra=openapi_body(EnrollForm, IMAGE),
)
async def enroll_identity(
    request: Request,
    principal: EnrollKey,
    identities: IdentitiesDep,
) -> EnrollOut:
    form = await parse_form(request, EnrollForm, IMAGE, identities.max_image_bytes)
    principal.check_collection(form.collection)
    return await identities.enroll(form, actor=principal)


@router.post(
    "/{identity_id}/faces",
    status_code=status.HTTP_201_CREATED,
    response_model=EnrollOut,
    summary="Add another photo of an enrolled person",
    responses=errors.responses(errors.PARAMS, errors.FACES, errors.NOT_FOUND),
    openapi_extra=openapi_body(AddFaceForm, IMAGE),
)
async def add_face(
    identity_id: uuid.UUID,
    request: Request,
    principal: EnrollKey,
    identities: IdentitiesDep,
) -> EnrollOut:
    form = await parse_form(request, AddFaceForm, IMAGE, identities.max_image_bytes)
    principal.check_collection(form.collection)
    return await identities.add_face(identity_id, form, actor=principal)


@router.get(
    "",
    response_model=IdentityPage,
    summary="List enrolled people, a page at a time",
    description="Oldest first; `next_cursor` of one page is `cursor` of the next. "
    "`external_id` finds one person by your own id; `name` finds the people whose name "
    "contains it, in any case (`%` and `_` match themselves), paged the same way.",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def list_identities(
    principal: ReadKey,
    identities: IdentitiesDep,
    cursor: Annotated[PlainText | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    external_id: Annotated[Label | None, Query(max_length=200)] = None,
    name: Annotated[
        Label | None,
        Query(max_length=200, description="Part of the name, in any case.", examples=["ada"]),
    ] = None,
    collection: InCollection = DEFAULT_COLLECTION,
) -> IdentityPage:
    principal.check_collection(collection)
    return await identities.list_page(
        cursor=cursor, limit=limit, external_id=external_id, name=name, collection=collection
    )


@router.get(
    "/{identity_id}",
    response_model=IdentityDetail,
    summary="One person and their enrolled faces",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def get_identity(
    identity_id: uuid.UUID,
    principal: ReadKey,
    identities: IdentitiesDep,
    collection: InCollection = DEFAULT_COLLECTION,
) -> IdentityDetail:
    principal.check_collection(collection)
    return await identities.detail(identity_id, collection=collection)


@router.patch(
    "/{identity_id}",
    response_model=IdentityOut,
    summary="Rename a person or replace their metadata",
    responses=errors.responses(errors.PARAMS, errors.BODY, errors.NOT_FOUND),
    openapi_extra=openapi_json_body(IdentityPatch),
)
async def update_identity(
    identity_id: uuid.UUID,
    request: Request,
    principal: EnrollKey,
    __: Annotated[None, Depends(require_json)],
    identities: IdentitiesDep,
    background: BackgroundTasks,
    collection: InCollection = DEFAULT_COLLECTION,
) -> IdentityOut:
    principal.check_collection(collection)
    patch = await parse_json(request, IdentityPatch)
    updated = await identities.update(identity_id, patch, collection=collection, actor=principal)
    background.add_task(identities.checkpoint)  # the old name leaves the WAL too
    return updated


@router.delete(
    "/{identity_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a person: every face leaves the database and the index",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def delete_identity(
    identity_id: uuid.UUID,
    principal: DeleteKey,
    identities: IdentitiesDep,
    background: BackgroundTasks,
    collection: InCollection = DEFAULT_COLLECTION,
) -> None:
    principal.check_collection(collection)
    await identities.delete(identity_id, collection=collection, actor=principal)
    background.add_task(identities.checkpoint)  # after the response


@router.delete(
    "/{identity_id}/faces/{face_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete one enrolled face of a person",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def delete_face(
    identity_id: uuid.UUID,
    face_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: DeleteKey,
    identities: IdentitiesDep,
    background: BackgroundTasks,
    collection: InCollection = DEFAULT_COLLECTION,
) -> None:
    principal.check_collection(collection)
    await identities.delete_face(identity_id, face_id, collection=collection, actor=principal)
    background.add_task(identities.checkpoint)  # after the response
