"""Verify (1:1), compare, recognize (1:N) and detect.

Distances are squared L2 between embeddings, the same number FAISS and `facesvc eval`
report. Verify against a person with several enrolled faces uses the *smallest* distance
to any of them. Defaults: verify and compare use the backbone's `tau_verify`, recognize
the stricter `tau_identify`; a request may override within the configured range.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from dataclasses import replace
from typing import Any

import anyio.to_thread
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.decision.calibration import ActiveCalibration, active_calibration
from app.core.decision.cohort import Cohort
from app.core.decision.distance import squared_distance
from app.core.errors import Conflict, Forbidden, ModelMismatch, NotFound, ValidationFailed
from app.core.model.backbones import BackboneInfo, configured_backbones
from app.core.model.backbones.base import Calibration
from app.core.model.types import Embedding
from app.core.model.verifier import Verifier
from app.core.serving.inference import FaceInference, FaceMode
from app.core.store.codec import embedding_from_bytes
from app.core.store.index_sync import catch_up
from app.core.store.repos import identities as repo
from app.core.store.rows.identities import Identity
from app.core.store.vector_index import GalleryIndex
from app.core.telemetry import Metrics
from app.domains.recognition.schemas import (
    Candidate,
    CompareForm,
    CompareOut,
    ConfiguredModelOut,
    DetectedFace,
    DetectForm,
    DetectOut,
    HeldOutOut,
    IdentifyScoreOut,
    LayerOut,
    LayersOut,
    ModelOut,
    ModelsOut,
    RecognizedFace,
    RecognizeForm,
    RecognizeOut,
    StoredCalibrationOut,
    Threshold1to1,
    Threshold1toN,
    VerifyForm,
    VerifyOut,
)
from app.domains.shared import IdentityOut

log = logging.getLogger(__name__)


async def _calibration(
    session: AsyncSession, inference: FaceInference, gallery_size: int
) -> Calibration:
    """The stored calibration of the active model if there is one, else the built-in."""
    built_in = inference.backbone.calibration
    active = await active_calibration(session, inference.model, built_in, gallery_size)
    return active.calibration


def resolve_threshold(value: float | None, default: float, settings: Settings) -> float:
    if value is None:
        return float(default)
    check_threshold(value, settings)
    return float(value)


def check_threshold(value: float | None, settings: Settings) -> None:
    """A request's own threshold must lie in the configured range (checked before any
    inference is spent on the request)."""
    if value is not None and not settings.threshold_min <= value <= settings.threshold_max:
        raise ValidationFailed(
            f"threshold: {value} is outside the allowed range "
            f"[{settings.threshold_min}, {settings.threshold_max}]"
        )


async def _target(session: AsyncSession, form: VerifyForm) -> tuple[Identity | None, str]:
    """The claimed identity, or None and how to say it is missing."""
    if form.identity_id is not None:
        identity = await repo.get_identity(session, form.identity_id)
        missing = f"no identity with id {form.identity_id}"
    else:
        assert form.external_id is not None
        identity = await repo.get_by_external_id(session, form.external_id)
        missing = f"no identity with external_id {form.external_id!r}"
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


async def verify(
    session: AsyncSession,
    form: VerifyForm,
    *,
    inference: FaceInference,
    settings: Settings,
    metrics: Metrics,
    verifier: Verifier | None = None,
    may_read: bool = True,
) -> VerifyOut:
    """`may_read` false (a key without `read`): an unknown or uncomparable identity
    answers as a non-match, and a non-match carries no distance nor identity."""
    check_threshold(form.threshold, settings)
    # Inference before the first query: a session holds its pooled connection from its
    # first query to its commit, so reading first held one through the whole inference,
    # and under load requests queued for connections instead of sharing inference
    # batches (docs/performance.md). Every request pays it, known identity or not, so
    # timing does not tell a caller whether an id is enrolled.
    (probe,) = await inference.analyze(
        form.image, faces="largest" if form.largest_face else "single"
    )
    with metrics.stage("database"):
        calibration = await _calibration(session, inference, gallery_size=0)
        identity, missing = await _target(session, form)
    threshold = resolve_threshold(form.threshold, calibration.tau_verify, settings)
    probe_face = DetectedFace.of(probe.detection)
    if identity is None:
        if may_read:
            raise NotFound(missing)
        return _no_match(threshold, probe_face)
    model = inference.model
    faces = [f for f in identity.faces if (f.model_name, f.model_version) == model]
    if not faces:
        if not may_read:  # fail closed, and say nothing about the identity
            log.warning("verify: identity %s has no face of the active model", identity.id)
            return _no_match(threshold, probe_face)
        if identity.faces:
            other = identity.faces[0]
            raise ModelMismatch(
                f"identity {identity.id} was enrolled with {other.model_name} "
                f"{other.model_version}; the active model is {model[0]} {model[1]}: re-enroll"
            )
        raise Conflict(f"identity {identity.id} has no enrolled faces")
    metrics.faces_embedded.labels("verify").inc()
    enrolled = [(f.id, embedding_from_bytes(f.embedding, f.dim)) for f in faces]
    distance, face_id, matched = min(
        (
            (squared_distance(probe.embedding, vector), face_id, vector)
            for face_id, vector in enrolled
        ),
        key=lambda scored: scored[:2],
    )
    match = distance <= threshold
    if not match and not may_read:
        return _no_match(threshold, probe_face)
    return VerifyOut(
        match=match,
        distance=distance,
        threshold=threshold,
        identity=IdentityOut.of(identity),
        face=probe_face,
        matched_face_id=face_id,
        probability=_probability(verifier, probe.embedding, matched),
    )


async def compare(
    session: AsyncSession,
    form: CompareForm,
    *,
    inference: FaceInference,
    settings: Settings,
    metrics: Metrics,
    verifier: Verifier | None = None,
) -> CompareOut:
    check_threshold(form.threshold, settings)
    mode: FaceMode = "largest" if form.largest_face else "single"
    # gather, not a task group: the first domain error (e.g. no_face) must surface as such
    (a,), (b,) = await asyncio.gather(
        inference.analyze(form.image_a, faces=mode), inference.analyze(form.image_b, faces=mode)
    )
    calibration = await _calibration(session, inference, gallery_size=0)  # after: see verify
    threshold = resolve_threshold(form.threshold, calibration.tau_verify, settings)
    metrics.faces_embedded.labels("compare").inc(2)
    distance = squared_distance(a.embedding, b.embedding)
    return CompareOut(
        match=distance <= threshold,
        distance=distance,
        threshold=threshold,
        faces=[DetectedFace.of(a.detection), DetectedFace.of(b.detection)],
        probability=_probability(verifier, a.embedding, b.embedding),
    )


def _probability(verifier: Verifier | None, a: Embedding, b: Embedding) -> float | None:
    """The learned verifier's P(same person), when one is configured (FACESVC_VERIFIER)."""
    return None if verifier is None else verifier.probability(a, b)


async def _candidates(
    session: AsyncSession, gallery: GalleryIndex, vector: Embedding, top_k: int
) -> list[Candidate]:
    """The top_k nearest *identities* (several faces of one person count once)."""
    k = top_k * 4
    while True:
        hits = await anyio.to_thread.run_sync(gallery.search, vector, k)
        faces = await repo.faces_with_identities(session, [face_id for face_id, _ in hits])
        best: dict[uuid.UUID, Candidate] = {}
        for face_id, distance in hits:  # nearest first
            face = faces.get(face_id)  # None: deleted since the search
            if face is None or face.identity_id in best:
                continue
            best[face.identity_id] = Candidate(
                identity=IdentityOut.of(face.identity), distance=distance, face_id=face_id
            )
        if len(best) >= top_k or len(hits) < k:
            return list(best.values())[:top_k]
        k *= 4


async def recognize(
    session: AsyncSession,
    form: RecognizeForm,
    *,
    inference: FaceInference,
    gallery: GalleryIndex,
    settings: Settings,
    metrics: Metrics,
    cohort: Cohort | None = None,
    may_read: bool = True,
) -> RecognizeOut:
    """Candidates within the threshold only, unless the form asks for the rejected ones
    too (`include_rejected`), which needs a key that may read the gallery."""
    top_k = form.top_k if form.top_k is not None else settings.default_top_k
    if top_k > settings.max_top_k:
        raise ValidationFailed(f"top_k: at most {settings.max_top_k}")
    if form.include_rejected and not may_read:
        raise Forbidden("include_rejected lists gallery entries: it needs the 'read' scope")
    check_threshold(form.threshold, settings)
    # Inference before the first query (see verify).
    results = await inference.analyze(form.image, faces="all" if form.all_faces else "largest")
    with metrics.stage("database"):
        if await repo.other_model_faces_exist(session, inference.model):
            raise ModelMismatch(
                "the gallery holds faces embedded with another model than the active "
                f"{inference.model[0]} {inference.model[1]}; it cannot be searched with it"
            )
        await catch_up(session, gallery, inference.model)  # other workers' enrolls / deletes
        calibration = await _calibration(session, inference, gallery_size=len(gallery))
    default = calibration.tau_identify
    if cohort is not None:  # FACESVC_IDENTIFY_SCORE=cohort: tau is on d1 / c
        assert settings.cohort_tau is not None  # load_cohort refuses to start without it
        default = settings.cohort_tau
    threshold = resolve_threshold(form.threshold, default, settings)
    metrics.faces_embedded.labels("recognize").inc(len(results))

    faces = []
    for result in results:
        candidates = await _candidates(session, gallery, result.embedding, top_k)
        best = candidates[0] if candidates else None
        scale = 1.0  # cohort mode decides on distance / the probe's cohort scale
        if best is not None and cohort is not None:
            scale = cohort.scale(result.embedding)
        score = best.distance / scale if best is not None else None
        known = score is not None and score <= threshold
        if not form.include_rejected:  # the gallery's nearest strangers stay unsaid
            candidates = [c for c in candidates if c.distance / scale <= threshold]
        shown = known or form.include_rejected
        faces.append(
            RecognizedFace(
                face=DetectedFace.of(result.detection),
                candidates=candidates,
                identity=best.identity if known and best else None,
                distance=best.distance if best and shown else None,
                score=score if cohort is not None and shown else None,
            )
        )
    return RecognizeOut(threshold=threshold, faces=faces)


async def detect(form: DetectForm, *, inference: FaceInference) -> DetectOut:
    detections = await inference.detect(form.image)
    return DetectOut(faces=[f for d in detections if (f := DetectedFace.of(d)) is not None])


def _known(value: float) -> float | None:
    """NaN (not measured) becomes null in JSON."""
    return None if math.isnan(value) else float(value)


def _described(info: BackboneInfo) -> ConfiguredModelOut:
    cal = info.calibration
    return ConfiguredModelOut(
        name=info.name,
        licence=info.licence,
        embedding_size=info.embedding_size,
        verify=Threshold1to1(
            default=cal.tau_verify, far=_known(cal.far_verify), tar=_known(cal.tar_verify)
        ),
        identify=Threshold1toN(
            default=cal.tau_identify,
            fpir=_known(cal.fpir_identify),
            fnir=_known(cal.fnir_identify),
            gallery_size=cal.gallery_size,
        ),
        calibration_source=cal.source,
    )


async def models(
    session: AsyncSession,
    inference: FaceInference,
    gallery: GalleryIndex,
    settings: Settings,
    cohort: Cohort | None = None,
    may_read: bool = True,
) -> ModelsOut:
    backbone = inference.backbone
    active = await active_calibration(session, inference.model, backbone.calibration, len(gallery))
    infos = configured_backbones(settings, backbone)
    infos[0] = replace(infos[0], calibration=active.calibration)
    configured = [_described(info) for info in infos]
    return ModelsOut(
        active=ModelOut(
            **configured[0].model_dump(),
            version=inference.model[1],
            normalized=backbone.normalized,
            threshold_range=(settings.threshold_min, settings.threshold_max),
            gallery_faces=len(gallery) if may_read else None,
            calibration=_stored_out(active),
        ),
        configured=configured,
        identify_score=_identify_score(cohort, settings),
    )


def _identify_score(cohort: Cohort | None, settings: Settings) -> IdentifyScoreOut:
    if cohort is None:
        return IdentifyScoreOut(mode="distance")
    return IdentifyScoreOut(
        mode="cohort",
        cohort_k=cohort.k,
        cohort_tau=settings.cohort_tau,
        cohort_size=len(cohort.vectors),
    )


def _stored_out(active: ActiveCalibration) -> StoredCalibrationOut | None:
    row = active.stored
    if row is None:
        return None
    report = row.report
    return StoredCalibrationOut(
        id=row.id,
        created_at=row.created_at,
        source=row.source,
        far_target=row.far_target,
        far_interval=_bounds(report["verification"]["far"]),
        tar_interval=_bounds(report["verification"]["tar"]),
        fpir_target=row.fpir_target,
        calibrated_gallery_size=row.gallery_size,
        calibrated_tau_identify=row.tau_identify,
        follow_gallery=row.follow_gallery,
        gallery_model=report["gallery_model"]["kind"],
        held_out=_held_out(report),
    )


def _bounds(interval: dict[str, float]) -> tuple[float, float]:
    return (interval["low"], interval["high"])


def _held_out(report: dict[str, Any]) -> HeldOutOut | None:
    held = report.get("held_out")
    if held is None:
        return None
    return HeldOutOut(
        identities=held["identities"],
        far=held["verification"]["far"]["value"],
        tar=held["verification"]["tar"]["value"],
        fpir=held["identification"]["fpir"]["value"],
        fnir=held["identification"]["fnir"]["value"],
    )


def layers(name: str) -> LayersOut:
    from app.core.model.backbones import BACKBONES
    from app.core.model.backbones.dlib_resnet import INPUT_SIZE
    from app.core.model.receptive_fields import layers_of

    if name not in BACKBONES:
        raise NotFound(f"unknown model {name!r}; known models: {', '.join(sorted(BACKBONES))}")
    try:
        described = layers_of(name)
    except KeyError:
        raise NotFound(f"layers are described for dlib-resnet-v1 only, not {name}") from None
    return LayersOut(
        model=name,
        input_size=INPUT_SIZE,
        layers=[
            LayerOut(
                name=layer.name,
                description=layer.description,
                units=layer.channels,
                side=layer.side,
                receptive_field=layer.field.size,
                stride=layer.field.jump,
            )
            for layer in described
        ],
    )
