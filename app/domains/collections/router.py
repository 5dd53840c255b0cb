"""/v1/collections: create, list, read and delete collections (separate galleries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response, status

from app.api import errors
from app.api.deps import AdminKey, ReadKey, from_state
from app.api.forms import openapi_json_body, parse_json, require_json
from app.domains.collections.schemas import CollectionCreate, CollectionList, CollectionOut
from app.domains.collections.service import CollectionService
from app.domains.shared import CollectionName

router = APIRouter(prefix="/v1/collections", tags=["collections"])

CollectionsDep = Annotated[CollectionService, Depends(from_state("collections"))]
NamePath = Annotated[CollectionName, Path(description="The collection's name.")]

BOUND = " A key bound to collections gets 403 for any other one, whether it exists or not."


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CollectionOut,
    summary="Create a collection",
    description="Needs an admin key bound to no collection in particular.",
    responses=errors.responses(errors.BODY, errors.CONFLICT),
    openapi_extra=openapi_json_body(CollectionCreate),
)
async def create_collection(
    request: Request,
    principal: AdminKey,
    __: Annotated[None, Depends(require_json)],
    collections: CollectionsDep,
) -> CollectionOut:
    principal.check_all_collections()
    form = await parse_json(request, CollectionCreate)
    return await collections.create(form, actor=principal)


@router.get(
    "",
    response_model=CollectionList,
    summary="List collections",
    description="With their identity and face counts; a bound key sees only its own.",
    responses=errors.responses(),
)
async def list_collections(principal: ReadKey, collections: CollectionsDep) -> CollectionList:
    return await collections.list(principal.collections)


@router.get(
    "/{name}",
    response_model=CollectionOut,
    summary="Read a collection",
    description="Its description, metadata and counts." + BOUND,
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def get_collection(
    name: NamePath, principal: ReadKey, collections: CollectionsDep
) -> CollectionOut:
    principal.check_collection(name)
    return await collections.get(name)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a collection and everything in it",
    description="Its identities and their faces are deleted from the database and the "
    "search index. The `default` collection cannot be deleted (409). Needs an admin key "
    "bound to no collection in particular.",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND, errors.CONFLICT),
)
async def delete_collection(
    name: NamePath,
    principal: AdminKey,
    collections: CollectionsDep,
    background: BackgroundTasks,
) -> None:
    principal.check_all_collections()
    await collections.delete(name, actor=principal)
    background.add_task(collections.checkpoint)  # after the response
