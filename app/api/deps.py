"""FastAPI dependencies. Everything long-lived is built in the lifespan (`app.main`) and
stored on `app.state`; a route reaches it through an `Annotated` type made with
`from_state`. This module knows no domain type: each domain router declares its own
service dependency, e.g.

    IdentitiesDep = Annotated[IdentityService, Depends(from_state("identities"))]
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.access import Principal, Scope
from app.core.config import Settings
from app.core.decision.cohort import Cohort
from app.core.errors import Forbidden, Unauthorized
from app.core.model.verifier import Verifier
from app.core.serving.inference import FaceInference
from app.core.store.repos.keys import authenticate
from app.core.store.unit_of_work import unit_of_work
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency returning `request.app.state.<name>`, set by the lifespan."""

    def read(request: Request) -> Any:
        return getattr(request.app.state, name)

    read.__name__ = read.__qualname__ = f"state_{name}"
    return read


# The shared objects themselves, for routes that do not have a service of their own yet.
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
InferenceDep = Annotated[FaceInference, Depends(from_state("inference"))]
GalleryDep = Annotated[GalleryIndex, Depends(from_state("gallery"))]
MetricsDep = Annotated[Metrics, Depends(from_state("metrics"))]
VerifierDep = Annotated[Verifier | None, Depends(from_state("verifier"))]  # FACESVC_VERIFIER
CohortDep = Annotated[Cohort | None, Depends(from_state("cohort"))]  # IDENTIFY_SCORE=cohort
Sessions = async_sessionmaker[AsyncSession]
SessionsDep = Annotated[Sessions, Depends(from_state("sessions"))]


async def get_session(sessions: SessionsDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work (`app.core.store.unit_of_work`): committed when the
    route returns, before the response is sent; rolled back on any error."""
    async with unit_of_work(sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


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
VerifyKey = Annotated[Principal, Depends(require(Scope.verify))]
ReadKey = Annotated[Principal, Depends(require(Scope.read))]
AnyKey = Annotated[Principal, Depends(require(None))]
