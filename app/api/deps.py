"""FastAPI dependencies. Everything long-lived is built in the lifespan (`app.main`) and
reached from routes through these `Annotated` types."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.access import Principal, Scope
from app.core.config import Settings
from app.core.decision.cohort import Cohort
from app.core.errors import Conflict, Forbidden, Unauthorized
from app.core.model.verifier import Verifier
from app.core.serving.inference import FaceInference
from app.core.store.repos.keys import authenticate
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics
from app.domains.jobs.runner import StyleRunner


@dataclass
class Context:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    inference: FaceInference
    gallery: GalleryIndex
    metrics: Metrics
    stylize: StyleRunner
    verifier: Verifier | None = None  # FACESVC_VERIFIER
    cohort: Cohort | None = None  # FACESVC_IDENTIFY_SCORE=cohort


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


def get_inference(context: ContextDep) -> FaceInference:
    return context.inference


def get_gallery(context: ContextDep) -> GalleryIndex:
    return context.gallery


def get_metrics(context: ContextDep) -> Metrics:
    return context.metrics


def get_stylize(context: ContextDep) -> StyleRunner:
    return context.stylize


def get_verifier(context: ContextDep) -> Verifier | None:
    return context.verifier


def get_cohort(context: ContextDep) -> Cohort | None:
    return context.cohort


SettingsDep = Annotated[Settings, Depends(get_settings)]
InferenceDep = Annotated[FaceInference, Depends(get_inference)]
GalleryDep = Annotated[GalleryIndex, Depends(get_gallery)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
StylizeDep = Annotated[StyleRunner, Depends(get_stylize)]
VerifierDep = Annotated[Verifier | None, Depends(get_verifier)]
CohortDep = Annotated[Cohort | None, Depends(get_cohort)]


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the route returns (before the response
    is sent), rolled back on any error. Repositories only flush. It takes a pooled
    connection at its first query only, so services run inference before querying (or
    `app.core.store.db.release` a read-only session first) and no connection waits on the model."""
    async with context.sessions() as session:
        try:
            yield session
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            raise Conflict(
                "the change conflicts with stored data (duplicate external_id?)"
            ) from exc
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def require(scope: Scope | None) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller's key must carry `scope` (or a scope that implies it,
    `Scope` / `IMPLIED`); None: any valid key."""

    async def check(
        context: ContextDep,
        key: Annotated[str | None, Security(api_key_header)],
    ) -> Principal:
        if context.settings.auth_mode == "open":
            return Principal(name="open-mode", scopes=frozenset({Scope.admin.value}))
        if not key:
            raise Unauthorized("missing X-API-Key header")
        # A session of its own, closed at once: on the request's session the key lookup
        # held a pooled connection through the whole inference, so a few slow requests
        # starved every other one of connections.
        async with context.sessions() as session:
            principal = await authenticate(session, key)
        if principal is None:
            raise Unauthorized("unknown or revoked API key")
        if scope is not None and not principal.allows(scope):
            raise Forbidden(f"this API key lacks the {scope.value!r} scope")
        return principal

    return check


AdminKey = Annotated[Principal, Depends(require(Scope.admin))]
EnrollKey = Annotated[Principal, Depends(require(Scope.enroll))]
VerifyKey = Annotated[Principal, Depends(require(Scope.verify))]
ReadKey = Annotated[Principal, Depends(require(Scope.read))]
AnyKey = Annotated[Principal, Depends(require(None))]
