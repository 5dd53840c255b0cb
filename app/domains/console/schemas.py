"""The answer of /v1/whoami."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.access import IMPLIED, Principal, Scope

WHOAMI_EXAMPLE: dict[str, Any] = {
    "name": "front-door",
    "prefix": "3b1f0c2d9e8a",
    "scopes": ["enroll"],
    "allows": ["enroll", "read"],
    "collections": ["front-door"],
}


class WhoAmI(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [WHOAMI_EXAMPLE]})

    name: str = Field(description="The key's name (`open-mode` when no key is checked).")
    prefix: str | None = Field(
        description="The key's public id (fsk_<prefix>_...); null in open mode."
    )
    scopes: list[str] = Field(description="The scopes the key was created with.")
    allows: list[str] = Field(
        description="Every scope those grant (admin grants all; enroll and delete grant read)."
    )
    collections: list[str] | None = Field(
        None, description="The collections the key is bound to; null: every collection."
    )

    @classmethod
    def of(cls, principal: Principal) -> WhoAmI:
        granted = {s for scope in principal.scopes for s in IMPLIED.get(scope, {scope})}
        bound = principal.collections
        return cls(
            name=principal.name,
            prefix=principal.prefix,
            scopes=sorted(principal.scopes),
            allows=[s.value for s in Scope if s in granted],
            collections=sorted(bound) if bound is not None else None,
        )
