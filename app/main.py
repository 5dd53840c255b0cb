"""The FastAPI application: `create_app(settings)`.

Run it with `facesvc serve`, or `uvicorn --factory app.main:app_from_env`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api import access_log, errors, openapi
from app.api.admission import AdmissionMiddleware
from app.api.deps import KeyCheck
from app.api.guard import ServerErrorGuard
from app.api.limits import BodyLimitMiddleware
from app.api.metrics import MetricsMiddleware
from app.api.request_id import RequestIdMiddleware
from app.core import logs
from app.core.config import Settings
from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Backbone
from app.core.serving.inference import FaceInference, Pipeline, backend_for
from app.core.serving.pool import batch_capacity
from app.core.store import db
from app.core.store.audit_trail import DecisionLog
from app.core.store.index_feed import IndexFeed
from app.core.store.index_sync import IndexedSession, catch_up
from app.core.store.repos.faces import face_id_fingerprint
from app.core.store.vector_index import AutoKinds, GalleryIndex, Kind
from app.core.telemetry import Metrics
from app.domains.audit.router import router as audit_router
from app.domains.audit.service import AuditService
from app.domains.collections.router import router as collections_router
from app.domains.collections.service import CollectionService
from app.domains.compreface.router import PREFIX as COMPREFACE_PREFIX
from app.domains.compreface.router import compreface_error
from app.domains.compreface.router import router as compreface_router
from app.domains.compreface.service import CompreFaceService
from app.domains.console.router import pages as console_pages
from app.domains.console.router import router as console_router
from app.domains.health.docs import docs_router
from app.domains.health.router import metrics_router
from app.domains.health.router import router as health_router
from app.domains.health.service import HealthService
from app.domains.identities.by_name import GalleryByName
from app.domains.identities.router import router as identities_router
from app.domains.identities.service import IdentityService
from app.domains.jobs.router import router as stylize_router
from app.domains.jobs.runner import StyleRunner
from app.domains.jobs.service import JobService
from app.domains.keys.router import router as keys_router
from app.domains.keys.service import KeyService
from app.domains.models.router import router as models_router
from app.domains.models.service import ModelsService
from app.domains.recognition.router import router as recognition_router
from app.domains.recognition.service import RecognitionService

log = logging.getLogger("facesvc")

DESCRIPTION = """Face verification (1:1) and recognition (1:N) with one-shot enrollment.

Send images as `multipart/form-data` files, or base64 strings in an `application/json`
body with the same field names. Every error has the body `{"error": code, "detail": text}`.
Distances are squared L2 between embeddings; smaller is more alike.
"""


def load_pipelines(settings: Settings) -> list[Pipeline]:
    """One pipeline (detector and backbone) per device the service runs on."""
    from app.core.model.device import resolve_devices
    from app.core.model.pipeline import FacePipeline

    return [
        FacePipeline.load(settings.model_copy(update={"device": str(device)}))
        for device in resolve_devices(settings.device)
    ]


async def load_in_thread(settings: Settings) -> list[Pipeline]:
    return await anyio.to_thread.run_sync(load_pipelines, settings)


def build_stylize_runner(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], inference: FaceInference
) -> StyleRunner:
    """Style jobs: own threads on the service's device; identity checked by the pool."""
    from functools import partial

    from app.core.model.device import resolve_device
    from app.core.style.networks import NetworkCache
    from app.domains.jobs import identity

    networks = NetworkCache(settings, resolve_device(settings.device))
    check = partial(identity.with_inference, inference, sessions)
    return StyleRunner(settings, sessions, networks, check)


def load_cohort(settings: Settings, dim: int) -> Cohort | None:
    """The 1:N cohort when FACESVC_IDENTIFY_SCORE=cohort; a missing part stops start-up."""
    if settings.identify_score != "cohort":
        return None
    if settings.cohort_file is None or settings.cohort_tau is None:
        raise ModelUnavailable(
            "FACESVC_IDENTIFY_SCORE=cohort needs FACESVC_COHORT_FILE and FACESVC_COHORT_TAU "
            "(facesvc calibrate --holdout 0.5 --study-normalisation --save-cohort FILE)"
        )
    return Cohort.load(settings.cohort_file, settings.cohort_k, dim)


def load_built_in_cohort(settings: Settings, backbone: Backbone) -> BuiltInCohort | None:
    """The model version's own cohort under FACESVC_IDENTIFY_SCORE=auto (the default)."""
    spec = backbone.calibration.cohort
    if settings.identify_score != "auto" or spec is None:
        return None
    return BuiltInCohort.of(spec, backbone.embedding_size)


async def index_kind(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], model: tuple[str, str]
) -> tuple[Kind, AutoKinds | None]:
    """FACESVC_INDEX_KIND, or under `auto` the kind for the gallery's size now (exact,
    HNSW, then IVF-PQ; docs/deploy.md, "Index kinds") and the thresholds by which the
    index changes kind while running."""
    if settings.index_kind != "auto":
        return settings.index_kind, None
    auto = AutoKinds(settings.index_auto_hnsw_from, settings.index_auto_ivfpq_from)
    async with sessions() as session:
        faces, _ = await face_id_fingerprint(session, model)
    kind = auto.for_size(faces)
    log.info("index kind %s for %d faces (FACESVC_INDEX_KIND=auto)", kind, faces)
    return kind, auto


def create_app(settings: Settings, *, pipeline: Pipeline | None = None) -> FastAPI:
    """The service. `pipeline` lets tests share one loaded pipeline between apps."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth_mode == "open":
            log.warning(
                "!!! FACESVC_AUTH_MODE=open: NO API KEY IS CHECKED. Anyone who can reach "
                "this port can enroll, read and delete faces. Local development only. !!!"
            )
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(db.upgrade, settings.database_url)
        engine = db.create_engine(
            settings.database_url, settings.db_pool_size, settings.db_pool_timeout_s
        )
        sessions = db.create_sessionmaker(engine)
        sessions.configure(sync_session_class=IndexedSession)
        # Thread backend: the pipelines loaded here run the jobs. Process backend: the
        # worker processes load their own; this process keeps a CPU copy for metadata
        # (model, embedding size, calibration) and never runs it.
        backend = backend_for(settings, injected=pipeline is not None)
        if pipeline is not None:
            loaded = [pipeline]
        elif backend == "thread":
            loaded = await load_in_thread(settings)
        else:
            loaded = (await load_in_thread(settings.model_copy(update={"device": "cpu"})))[:1]
        inference = FaceInference(loaded, settings, metrics, backend=backend)
        kind, auto = await index_kind(settings, sessions, inference.model)
        gallery = GalleryIndex(
            inference.backbone.embedding_size,
            kind,
            settings.hnsw_m,
            settings.hnsw_ef_search,
            ivfpq_nprobe=settings.ivfpq_nprobe,
            auto=auto,
        )
        # Postgres: replicas learn each other's changes by NOTIFY (the feed builds the
        # index and keeps it current); SQLite: one machine, built here, kept by hooks.
        feed: IndexFeed | None = None
        if engine.dialect.name == "postgresql":
            feed = IndexFeed(settings.database_url, sessions, gallery, inference.model, metrics)
            await feed.start()
        else:
            async with sessions() as session:
                await catch_up(session, gallery, inference.model)
        gallery.ready = True
        metrics.track_index(lambda: len(gallery))
        log.info("index built: %d faces of %s %s", len(gallery), *inference.model)
        stylize = build_stylize_runner(settings, sessions, inference)
        verifier = None
        if settings.verifier is not None:  # trained on the active model, or refused
            from app.core.model.verifier import load_verifier

            verifier = load_verifier(settings.verifier, inference.model)
        cohort = load_cohort(settings, inference.backbone.embedding_size)
        built_in_cohort = load_built_in_cohort(settings, inference.backbone)
        # What the routes reach through `app.api.deps.from_state`: one service per domain,
        # and the shared objects for the routes that use them directly.
        state = app.state
        state.settings, state.sessions, state.metrics = settings, sessions, metrics
        state.inference, state.gallery = inference, gallery
        state.verifier, state.cohort = verifier, cohort
        state.key_check = KeyCheck(sessions, open_mode=settings.auth_mode == "open")
        state.identities = IdentityService(
            engine=engine,
            sessions=sessions,
            inference=inference,
            gallery=gallery,
            metrics=metrics,
            keep_thumbnails=settings.keep_thumbnails,
            max_image_bytes=settings.max_image_bytes,
        )
        state.collections = CollectionService(engine=engine, sessions=sessions, gallery=gallery)
        state.jobs = JobService(sessions=sessions, runner=stylize, settings=settings)
        state.index_feed = feed
        state.health = HealthService(
            engine=engine,
            inference=inference,
            gallery=gallery,
            metrics=metrics,
            index_feed=feed,
            index_ready_lag_s=settings.index_ready_lag_s,
        )
        app.state.recognition = RecognitionService(
            sessions,
            inference,
            gallery,
            metrics,
            threshold_range=(settings.threshold_min, settings.threshold_max),
            default_top_k=settings.default_top_k,
            max_top_k=settings.max_top_k,
            verifier=verifier,
            cohort=cohort,
            cohort_tau=settings.cohort_tau,
            built_in_cohort=built_in_cohort,
            max_image_bytes=settings.max_image_bytes,
            index_feed=feed,
        )
        app.state.models = ModelsService(
            sessions, inference, gallery, settings, cohort, built_in_cohort
        )
        state.audit = AuditService(sessions)
        state.keys = KeyService(sessions)
        state.decision_log = DecisionLog(
            sessions,
            enabled=settings.record_decisions,
            retention_days=settings.decision_retention_days,
        )
        # also when recording is off now: what was recorded before still expires
        await state.decision_log.prune()
        state.compreface = CompreFaceService(
            state.identities,
            GalleryByName(state.identities),
            app.state.recognition,
            versions={"detector": settings.detector, "calculator": " ".join(inference.model)},
        )
        await inference.start()  # warm workers, or the pool server: /readyz reports them
        await stylize.start()
        try:
            yield
        finally:
            await stylize.stop()  # before inference: a finishing job may still verify
            await inference.stop()
            if feed is not None:
                await feed.stop()
            await engine.dispose()

    # /docs and /redoc are docs_router's (assets served here, not from a CDN); for "key"
    # it serves /openapi.json too, behind a key.
    public_docs = settings.docs == "public"
    app = FastAPI(
        title="facesvc",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={},
        openapi_url="/openapi.json" if public_docs else None,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        # The trailing-slash 307 ran before auth and echoed the Host header in Location.
        redirect_slashes=False,
    )
    errors.install(app, shapes={COMPREFACE_PREFIX: compreface_error})
    app.include_router(collections_router)
    app.include_router(identities_router)
    app.include_router(recognition_router)
    app.include_router(models_router)
    app.include_router(stylize_router)
    app.include_router(health_router)
    app.include_router(audit_router)
    app.include_router(keys_router)
    app.include_router(compreface_router)
    app.include_router(metrics_router(settings.metrics))
    app.include_router(console_router)
    if settings.console:
        app.include_router(console_pages)
    if settings.docs != "off":
        app.include_router(docs_router(keyed=settings.docs == "key"))
    app.openapi = openapi.document(app)  # type: ignore[method-assign]
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID"],  # browsers may read it for their logs
        )
    app.add_middleware(BodyLimitMiddleware, limit=settings.body_limit)
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.inference_queue_size,
        deadline_s=settings.inference_deadline_ms / 1000,
        window_s=settings.admission_window_ms / 1000,
        floor=2 * batch_capacity(settings),
        metrics=metrics,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(ServerErrorGuard)  # see app.api.guard
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the id
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory: settings from FACESVC_* and .env."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    access_log.install()  # in each worker, after uvicorn configured its loggers
    return create_app(settings)
