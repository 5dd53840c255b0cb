"""Verify (1:1), compare, recognize (1:N) and detect.

Distances are squared L2 between embeddings, the same number FAISS and `facesvc eval`
report. Verify against a person with several enrolled faces uses the *smallest* distance
to any of them. Defaults: verify and compare use the backbone's `tau_verify`, recognize
the stricter `tau_identify`; a request may override within the configured range. Which
tau, and what it decides, is `app.core.decision`'s; this module runs the requests.
Recognize also answers, per face, the margin over the runner-up person and the
confidence 1 - FPIR(distance, N) of the stored gallery model (docs/service.md, "The
answer for a door").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.decision import identify, model_match
from app.core.decision.calibration import (
    ActiveCalibration,
    active_calibration,
)
from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.decision.distance import is_match, squared_distance
from app.core.decision.open_set_rule import OpenSetRule, rule_for
from app.core.decision.thresholds import Thresholds
from app.core.errors import Forbidden, ModelMismatch, NotFound, ValidationFailed
from app.core.model.backbones.base import Calibration
from app.core.model.types import Embedding, FaceSelection
from app.core.model.verifier import Verifier
from app.core.serving.inference import FaceInference
from app.core.store.codec import embedding_from_bytes
from app.core.store.index_feed import IndexFeed
from app.core.store.index_sync import catch_up
from app.core.store.repos import collections as collections_repo
from app.core.store.repos import identities as repo
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.core.store.rows.identities import Identity
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics
from app.domains.recognition.schemas import (
    Candidate,
    CompareForm,
    CompareOut,
    DetectedFace,
    DetectForm,
    DetectOut,
    RecognizedFace,
    RecognizeForm,
    RecognizeOut,
    VerifyForm,
    VerifyOut,
)
from app.domains.shared import IdentityOut

if TYPE_CHECKING:
    from app.core.model.pipeline import FaceResult

log = logging.getLogger(__name__)


class RecognitionService:
    """Built once in the lifespan. `threshold_range`: where a request's own threshold
    must lie; `verifier` (FACESVC_VERIFIER) adds P(same person) to 1:1 answers; 1:N
    decides by `open_set_rule.rule_for`: with `built_in_cohort` (the model version's, under
    FACESVC_IDENTIFY_SCORE=auto) or `cohort` (an operator's file, against `cohort_tau`)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inference: FaceInference,
        gallery: GalleryIndex,
        metrics: Metrics,
        *,
        threshold_range: tuple[float, float],
        default_top_k: int,
        max_top_k: int,
        verifier: Verifier | None = None,
        cohort: Cohort | None = None,
        cohort_tau: float | None = None,
        built_in_cohort: BuiltInCohort | None = None,
        max_image_bytes: int,
        index_feed: IndexFeed | None = None,
    ) -> None:
        if cohort is not None and cohort_tau is None:
            raise ValueError("cohort scoring needs its tau (FACESVC_COHORT_TAU)")
        self._sessions = sessions
        self._inference = inference
        self._gallery = gallery
        self._metrics = metrics
        self._thresholds = Thresholds(threshold_range)
        self._default_top_k = default_top_k
        self._max_top_k = max_top_k
        self._verifier = verifier
        # cohort_tau may be configured while 1:N scores on the distance: then unused
        self._operator_cohort = (
            None if cohort is None or cohort_tau is None else (cohort, cohort_tau)
        )
        self._built_in_cohort = built_in_cohort
        self.max_image_bytes = max_image_bytes  # the routes' upload limit
        self._index_feed = index_feed

    async def verify(self, form: VerifyForm, *, may_read: bool = True) -> VerifyOut:
        """`may_read` false (a key without `read`): an unknown or uncomparable identity
        answers as a non-match, and a non-match carries no distance nor identity."""
        self._thresholds.check(form.threshold)
        # Inference before the first query: a session holds its pooled connection from
        # its first query to its end, so reading first held one through the whole
        # inference, and under load requests queued for connections instead of sharing
        # inference batches (docs/performance.md). Every request pays it, known identity
        # or not, so timing does not tell a caller whether an id is enrolled.
        (probe,) = await self._inference.analyze(
            form.image, faces="largest" if form.largest_face else "single"
        )
        async with self._sessions() as session:
            with self._metrics.stage("database"):
                calibration = await self._calibration(session, gallery_size=0)
                collection = await collections_repo.require(session, form.collection)
                identity, missing = await _target(session, form, collection.id)
            threshold = self._thresholds.verify(calibration, form.threshold)
            probe_face = DetectedFace.of(probe.detection)
            if identity is None:
                if may_read:
                    raise NotFound(missing)
                return _no_match(threshold, probe_face)
            faces = model_match.faces_of_model(identity, self._inference.model)
            if not faces:
                if may_read:
                    raise model_match.not_comparable(identity, self._inference.model)
                # fail closed, and say nothing about the identity
                log.warning("verify: identity %s has no face of the active model", identity.id)
                return _no_match(threshold, probe_face)
            self._metrics.faces_embedded.labels("verify").inc()
            enrolled = [(f.id, embedding_from_bytes(f.embedding, f.dim)) for f in faces]
            distance, face_id, matched = min(
                (
                    (squared_distance(probe.embedding, vector), face_id, vector)
                    for face_id, vector in enrolled
                ),
                key=lambda scored: scored[:2],
            )
            match = is_match(distance, threshold)
            if not match and not may_read:
                return _no_match(threshold, probe_face)
            return VerifyOut(
                match=match,
                distance=distance,
                threshold=threshold,
                identity=IdentityOut.of(identity),
                face=probe_face,
                matched_face_id=face_id,
                probability=self._probability(probe.embedding, matched),
            )

    async def verify_face(
        self, image: bytes, face_id: int, *, collection: str = DEFAULT_COLLECTION
    ) -> VerifyOut:
        """The probe's largest face against one enrolled face, not the nearest of its
        identity's (CompreFace's verify against a saved example), in `collection`: a face
        of another is not found. The full answer: for callers that may read the gallery."""
        (probe,) = await self._inference.analyze(image, faces="largest")  # before queries
        async with self._sessions() as session:
            with self._metrics.stage("database"):
                calibration = await self._calibration(session, gallery_size=0)
                where = await collections_repo.require(session, collection)
                face = (await repo.faces_with_identities(session, [face_id])).get(face_id)
        if face is None or face.identity.collection_id != where.id:
            raise NotFound(f"no face {face_id} in the collection {collection!r}")
        if (face.model_name, face.model_version) != self._inference.model:
            raise ModelMismatch(
                f"face {face_id} was embedded with {face.model_name} {face.model_version}; "
                f"the active model is {' '.join(self._inference.model)}: re-enroll"
            )
        self._metrics.faces_embedded.labels("verify").inc()
        threshold = self._thresholds.verify(calibration)
        enrolled = embedding_from_bytes(face.embedding, face.dim)
        distance = squared_distance(probe.embedding, enrolled)
        return VerifyOut(
            match=is_match(distance, threshold),
            distance=distance,
            threshold=threshold,
            identity=IdentityOut.of(face.identity),
            face=DetectedFace.of(probe.detection),
            matched_face_id=face_id,
            probability=self._probability(probe.embedding, enrolled),
        )

    async def compare(self, form: CompareForm) -> CompareOut:
        self._thresholds.check(form.threshold)
        mode: FaceSelection = "largest" if form.largest_face else "single"
        analyze = self._inference.analyze
        # gather, not a task group: the first domain error (e.g. no_face) must surface as such
        (a,), (b,) = await asyncio.gather(
            analyze(form.image_a, faces=mode), analyze(form.image_b, faces=mode)
        )
        async with self._sessions() as session:  # after inference: see verify
            calibration = await self._calibration(session, gallery_size=0)
        threshold = self._thresholds.verify(calibration, form.threshold)
        self._metrics.faces_embedded.labels("compare").inc(2)
        distance = squared_distance(a.embedding, b.embedding)
        return CompareOut(
            match=is_match(distance, threshold),
            distance=distance,
            threshold=threshold,
            faces=[DetectedFace.of(a.detection), DetectedFace.of(b.detection)],
            probability=self._probability(a.embedding, b.embedding),
        )

    async def recognize(self, form: RecognizeForm, *, may_read: bool = True) -> RecognizeOut:
        """Candidates within the threshold only, unless the form asks for the rejected
        ones too (`include_rejected`), which needs a key that may read the gallery."""
        top_k = form.top_k if form.top_k is not None else self._default_top_k
        if top_k > self._max_top_k:
            raise ValidationFailed(f"top_k: at most {self._max_top_k}")
        if form.include_rejected and not may_read:
            raise Forbidden("include_rejected lists gallery entries: it needs the 'read' scope")
        self._thresholds.check(form.threshold)
        # Inference before the first query (see verify).
        selection: FaceSelection = (
            "all" if form.all_faces else "largest" if form.largest_face else "single"
        )
        results = await self._inference.analyze(form.image, faces=selection)
        model = self._inference.model
        async with self._sessions() as session:
            with self._metrics.stage("database"):
                collection = await collections_repo.require(session, form.collection)
                await model_match.check_gallery(session, model)
                if self._index_feed is None or not self._index_feed.live:
                    # other processes' changes: by query on SQLite, or while the feed
                    # that brings them on Postgres reconnects
                    await catch_up(session, self._gallery, model)
                # N is the collection's: only its faces can answer a stranger's search
                gallery_size = self._gallery.count(collection.id)
                active = await self._active_calibration(session, gallery_size)
            rule = rule_for(active, gallery_size, self._built_in_cohort, self._operator_cohort)
            threshold = self._thresholds.identify(rule.tau, form.threshold)
            door = _Door(rule, gallery_size)
            self._metrics.faces_embedded.labels("recognize").inc(len(results))
            faces = []
            for result in results:
                # at least two people, so that the margin has its runner-up
                candidates = await self._candidates(
                    session, result.embedding, max(top_k, 2), collection.id
                )
                faces.append(self._recognized(result, candidates, threshold, form, top_k, door))
        return RecognizeOut(threshold=threshold, faces=faces)

    def _recognized(
        self,
        result: FaceResult,
        candidates: list[Candidate],
        threshold: float,
        form: RecognizeForm,
        top_k: int,
        door: _Door,
    ) -> RecognizedFace:
        """One face's answer: the nearest candidate if accepted, else unknown; `top_k` of
        the candidates (searched for more, for the runner-up) are listed."""
        decision = identify.decide(
            [c.distance for c in candidates],
            threshold,
            result.embedding,
            door.rule.cohort,
            door.rule.distance_cap,
        )
        best = candidates[0] if candidates else None
        listed = list(zip(candidates, decision.within, strict=True))[:top_k]
        if not form.include_rejected:  # the gallery's nearest strangers stay unsaid
            listed = [(c, ok) for c, ok in listed if ok]
        shown = best is not None and (decision.known or form.include_rejected)
        return RecognizedFace(
            face=DetectedFace.of(result.detection),
            candidates=[c for c, _ in listed],
            identity=best.identity if decision.known and best else None,
            distance=best.distance if best and shown else None,
            cohort_score=decision.score if door.rule.cohort is not None and shown else None,
            margin=decision.margin if shown else None,
            confidence=door.confidence(best.distance, decision.score) if best and shown else None,
        )

    async def detect(self, form: DetectForm) -> DetectOut:
        detections = await self._inference.detect(form.image)
        return DetectOut(faces=[f for d in detections if (f := DetectedFace.of(d)) is not None])

    async def _calibration(self, session: AsyncSession, gallery_size: int) -> Calibration:
        return (await self._active_calibration(session, gallery_size)).calibration

    async def _active_calibration(
        self, session: AsyncSession, gallery_size: int
    ) -> ActiveCalibration:
        inference = self._inference
        built_in = inference.backbone.calibration
        return await active_calibration(session, inference.model, built_in, gallery_size)

    def _probability(self, a: Embedding, b: Embedding) -> float | None:
        """The learned verifier's P(same person), when one is configured."""
        return None if self._verifier is None else self._verifier.probability(a, b)

    async def _candidates(
        self, session: AsyncSession, vector: Embedding, top_k: int, collection_id: int
    ) -> list[Candidate]:
        """The top_k nearest *identities* of the collection: more faces are searched
        until top_k people are found or the collection runs out."""
        k = top_k * 4
        while True:
            hits = await anyio.to_thread.run_sync(self._gallery.search, vector, k, collection_id)
            faces = await repo.faces_with_identities(session, [face_id for face_id, _ in hits])
            nearest = identify.nearest_per_identity(
                hits, {face_id: face.identity_id for face_id, face in faces.items()}
            )
            if len(nearest) >= top_k or len(hits) < k:
                return [
                    Candidate(
                        identity=IdentityOut.of(faces[face_id].identity),
                        distance=distance,
                        face_id=face_id,
                    )
                    for face_id, distance in list(nearest.values())[:top_k]
                ]
            k *= 4


@dataclass(frozen=True)
class _Door:
    """What decides one recognize request: its open-set rule and the live gallery size."""

    rule: OpenSetRule
    gallery_size: int

    def confidence(self, distance: float, score: float | None) -> float | None:
        return self.rule.confidence(
            distance, distance if score is None else score, self.gallery_size
        )


async def _target(
    session: AsyncSession, form: VerifyForm, collection_id: int
) -> tuple[Identity | None, str]:
    """The claimed identity in the collection, or None and how to say it is missing
    (one in another collection is missing too)."""
    where = f"in the collection {form.collection!r}"
    if form.identity_id is not None:
        identity = await repo.get_identity(session, form.identity_id, collection_id)
        missing = f"no identity with id {form.identity_id} {where}"
    else:
        assert form.external_id is not None
        identity = await repo.get_by_external_id(session, form.external_id, collection_id)
        missing = f"no identity with external_id {form.external_id!r} {where}"
    return identity, missing


def _no_match(threshold: float, probe_face: DetectedFace | None) -> VerifyOut:
    """A non-match as a key without `read` sees it: nothing about the claimed identity,
    not even whether it exists, and no distance to climb towards the threshold."""
    return VerifyOut(
        match=False,
        distance=None,
        threshold=threshold,
        identity=None,
        face=probe_face,
        matched_face_id=None,
        probability=None,
    )
