"""FastAPI dependencies. Everything long-lived is built in the lifespan (`app.main`) and
stored on `app.state`; a route reaches it through an `Annotated` type made with
`from_state`. This module knows no domain type: each domain router declares its own
service dependency, e.g.

    IdentitiesDep = Annotated[IdentityService, Depends(from_state("identities"))]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.access import Principal, Scope
from app.core.errors import Forbidden, Unauthorized
from app.core.store.repos.keys import authenticate


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency returning `request.app.state.<name>`, set by the lifespan."""

    def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = read.__qualname__ = f"state_{name}"
    return read


Sessions = async_sessionmaker[AsyncSession]


# ---------------------------------------------------------------- API keys


@dataclass(frozen=True)
class KeyCheck:
    """What `require` needs, built in the lifespan (`app.state.key_check`)."""

    sessions: Sessions
    open_mode: bool  # FACESVC_AUTH_MODE=open: no key is asked for

    async def principal(self, key: str | None, scope: Scope | None) -> Principal:
        if self.open_mode:
            return Principal(name="open-mode", scopes=frozenset({Scope.admin.value}))
        if not key:
            raise Unauthorized("missing X-API-Key header")
        # A session of its own, closed at once: on the request's session the key lookup
        # held a pooled connection through the whole inference, so a few slow requests
        # starved every other one of connections.
        async with self.sessions() as session:
            principal = await authenticate(session, key)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        if scope is not None and not principal.allows(scope):
            raise Forbidden(f"this API key lacks the {scope.value!r} scope")
        return principal


KeyCheckDep = Annotated[KeyCheck, Depends(from_state("key_check"))]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def require(scope: Scope | None) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller's key must carry `scope` (or a scope that implies it,
    `Scope` / `IMPLIED`); None: any valid key."""

    async def check(
        keys: KeyCheckDep,
        key: Annotated[str | None, Security(api_key_header)],
    ) -> Principal:
        return await keys.principal(key, scope)

    return check


AdminKey = Annotated[Principal, Depends(require(Scope.admin))]
EnrollKey = Annotated[Principal, Depends(require(Scope.enroll))]
DeleteKey = Annotated[Principal, Depends(require(Scope.delete))]
VerifyKey = Annotated[Principal, Depends(require(Scope.verify))]
ReadKey = Annotated[Principal, Depends(require(Scope.read))]
AnyKey = Annotated[Principal, Depends(require(None))]
