"""/v1/keys: create (the key shown once), list and revoke API keys. Admin keys bound to
no collection only: a bound admin could otherwise mint a key beyond its collections."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from app.api import errors
from app.api.deps import AdminKey, from_state
from app.api.forms import openapi_json_body, parse_json, require_json
from app.domains.keys.schemas import KeyCreate, KeyCreated, KeyList
from app.domains.keys.service import KeyService

router = APIRouter(prefix="/v1/keys", tags=["keys"])

KeysDep = Annotated[KeyService, Depends(from_state("keys"))]
Prefix = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's prefix (fsk_<prefix>_...).")
]
ADMIN = "Needs an admin key bound to no collection in particular."


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key (its secret is shown this once)",
    description=ADMIN,
    responses=errors.responses(errors.BODY, errors.NOT_FOUND),
    openapi_extra=openapi_json_body(KeyCreate),
)
async def create_key(
    request: Request,
    principal: AdminKey,
    __: Annotated[None, Depends(require_json)],
    keys: KeysDep,
) -> KeyCreated:
    principal.check_all_collections()
    form = await parse_json(request, KeyCreate)
    return await keys.create(form, actor=principal)


@router.get(
    "",
    response_model=KeyList,
    summary="List API keys (never their secrets)",
    description=ADMIN,
    responses=errors.responses(),
)
async def list_keys(principal: AdminKey, keys: KeysDep) -> KeyList:
    principal.check_all_collections()
    return await keys.list()


@router.delete(
    "/{prefix}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke an API key",
    description=ADMIN + " Revoking a revoked key changes nothing.",
    responses=errors.responses(errors.PARAMS, errors.NOT_FOUND),
)
async def revoke_key(prefix: Prefix, principal: AdminKey, keys: KeysDep) -> Response:
    principal.check_all_collections()
    await keys.revoke(prefix, actor=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
