"""Enrollment and gallery management."""

from __future__ import annotations

import base64
import binascii
import io
import uuid

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.access import Principal
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.model.pipeline import FaceResult
from app.core.serving.inference import FaceInference
from app.core.store import db
from app.core.store.audit_trail import failures_audited
from app.core.store.index_sync import stage_add, stage_remove
from app.core.store.repos import audit
from app.core.store.repos import collections as collections_repo
from app.core.store.repos import identities as repo
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.rows.identities import Face, Identity
from app.core.store.unit_of_work import unit_of_work
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics
from app.domains.identities.schemas import (
    AddFaceForm,
    EnrollForm,
    EnrollOut,
    FaceOut,
    IdentityDetail,
    IdentityOut,
    IdentityPage,
    IdentityPatch,
)


def encode_cursor(identity_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(identity_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("cursor: not a cursor returned by this API") from exc


async def load_identity(
    session: AsyncSession, identity_id: uuid.UUID, collection: str = DEFAULT_COLLECTION
) -> Identity:
    """The identity in `collection`; one in another collection answers as not found."""
    where = await collections_repo.require(session, collection)
    identity = await repo.get_identity(session, identity_id, where.id)
    if identity is None:
        raise NotFound(f"no identity with id {identity_id} in the collection {collection!r}")
    return identity


def _thumbnail(result: FaceResult) -> bytes:
    out = io.BytesIO()
    Image.fromarray(result.aligned.chip).save(out, format="JPEG", quality=90)
    return out.getvalue()


class IdentityService:
    """Enrollment and gallery management. Each call is one unit of work, committed before
    it returns; a face reaches the index only once its commit succeeded
    (`app.core.store.index_sync`). Each change is audited as `actor`'s in its own
    transaction (`app.core.store.repos.audit`); a refused one apart."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        inference: FaceInference,
        gallery: GalleryIndex,
        metrics: Metrics,
        keep_thumbnails: bool,
        max_image_bytes: int,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.inference = inference
        self.gallery = gallery
        self.metrics = metrics
        self.keep_thumbnails = keep_thumbnails
        self.max_image_bytes = max_image_bytes  # uploads are refused above it

    async def _store_face(
        self, session: AsyncSession, identity: Identity, result: FaceResult
    ) -> Face:
        detection = result.detection
        face = await repo.add_face(
            session,
            identity,
            model=self.inference.model,
            embedding=result.embedding,
            box=detection.box if detection else None,
            detection_score=float(detection.score) if detection else None,
            thumbnail=_thumbnail(result) if self.keep_thumbnails else None,
        )
        vector = result.embedding.reshape(1, -1)
        stage_add(session, self.gallery, [face.id], vector, identity.collection_id)
        return face

    async def _embed(self, image: bytes, largest_face: bool) -> FaceResult:
        results = await self.inference.analyze(image, faces="largest" if largest_face else "single")
        self.metrics.faces_embedded.labels("enroll").inc()
        return results[0]

    async def enroll(self, form: EnrollForm, *, actor: Principal) -> EnrollOut:
        # ids only: an external_id names a person, and would outlive their deletion here
        async with (
            failures_audited(self.sessions, actor, "identity.create", {}),
            unit_of_work(self.sessions) as session,
        ):
            collection = await collections_repo.require(session, form.collection)
            if form.external_id is not None and await repo.get_by_external_id(
                session, form.external_id, collection.id
            ):
                raise Conflict(f"external_id {form.external_id!r} is already enrolled")
            await db.release(session)  # no pooled connection held through inference
            result = await self._embed(form.image, form.largest_face)
            with self.metrics.stage("database"):
                identity = await repo.add_identity(
                    session, form.name, form.external_id, form.metadata or {}, collection.id
                )
                face = await self._store_face(session, identity, result)
                target = {"identity_id": identity.id, "face_id": face.id}
                await audit.record(session, actor, "identity.create", target)
            return EnrollOut(identity=IdentityOut.of(identity), face=FaceOut.of(face))

    async def add_face(
        self, identity_id: uuid.UUID, form: AddFaceForm, *, actor: Principal
    ) -> EnrollOut:
        target: dict[str, object] = {"identity_id": identity_id}
        async with (
            failures_audited(self.sessions, actor, "face.create", target),
            unit_of_work(self.sessions) as session,
        ):
            identity = await load_identity(session, identity_id, form.collection)
            await db.release(session)  # no pooled connection held through inference
            result = await self._embed(form.image, form.largest_face)
            face = await self._store_face(session, identity, result)
            await audit.record(session, actor, "face.create", {**target, "face_id": face.id})
            return EnrollOut(identity=IdentityOut.of(identity), face=FaceOut.of(face))

    async def list_page(
        self,
        *,
        cursor: str | None,
        limit: int,
        external_id: str | None,
        name: str | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> IdentityPage:
        after = decode_cursor(cursor) if cursor else None
        async with unit_of_work(self.sessions) as session:
            where = await collections_repo.require(session, collection)
            rows = await repo.list_identities(
                session,
                after=after,
                limit=limit + 1,
                external_id=external_id,
                name_contains=name,
                collection_id=where.id,
            )
            more = len(rows) > limit
            rows = rows[:limit]
            return IdentityPage(
                items=[IdentityOut.of(row) for row in rows],
                next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
            )

    async def detail(
        self, identity_id: uuid.UUID, *, collection: str = DEFAULT_COLLECTION
    ) -> IdentityDetail:
        async with unit_of_work(self.sessions) as session:
            identity = await load_identity(session, identity_id, collection)
            return IdentityDetail(
                identity=IdentityOut.of(identity), faces=[FaceOut.of(f) for f in identity.faces]
            )

    async def update(
        self,
        identity_id: uuid.UUID,
        patch: IdentityPatch,
        *,
        collection: str = DEFAULT_COLLECTION,
        actor: Principal,
    ) -> IdentityOut:
        target = {"identity_id": identity_id}
        async with (
            failures_audited(self.sessions, actor, "identity.update", target),
            unit_of_work(self.sessions) as session,
        ):
            identity = await load_identity(session, identity_id, collection)
            if patch.name is not None:
                identity.name = patch.name
            if patch.metadata is not None:
                identity.meta = patch.metadata
            await session.flush()
            await audit.record(session, actor, "identity.update", target)
            return IdentityOut.of(identity)

    async def delete(
        self, identity_id: uuid.UUID, *, collection: str = DEFAULT_COLLECTION, actor: Principal
    ) -> None:
        target = {"identity_id": identity_id}
        async with (
            failures_audited(self.sessions, actor, "identity.delete", target),
            unit_of_work(self.sessions) as session,
        ):
            await load_identity(session, identity_id, collection)  # 404 if in another
            face_ids = await repo.delete_identity(session, identity_id)
            if face_ids is None:
                raise NotFound(f"no identity with id {identity_id}")
            stage_remove(session, self.gallery, face_ids)
            await audit.record(session, actor, "identity.delete", target)

    async def delete_face(
        self,
        identity_id: uuid.UUID,
        face_id: int,
        *,
        collection: str = DEFAULT_COLLECTION,
        actor: Principal,
    ) -> None:
        target = {"identity_id": identity_id, "face_id": face_id}
        async with (
            failures_audited(self.sessions, actor, "face.delete", target),
            unit_of_work(self.sessions) as session,
        ):
            identity = await load_identity(session, identity_id, collection)
            face = next((f for f in identity.faces if f.id == face_id), None)
            if face is None:
                raise NotFound(f"identity {identity_id} has no face {face_id}")
            if not await repo.delete_face(session, face_id):
                raise NotFound(f"identity {identity_id} has no face {face_id}")
            stage_remove(session, self.gallery, [face_id])
            await audit.record(session, actor, "face.delete", target)

    async def checkpoint(self) -> None:
        """After a change has been committed: old rows leave SQLite's WAL too."""
        await db.checkpoint(self.engine)
