"""What GET /v1/models describes: the active model with the calibration in use, every
configured backbone, how 1:N scores; and one network's layers for `explain-units`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.decision.calibration import ActiveCalibration, active_calibration
from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.decision.model_match import Model
from app.core.errors import NotFound
from app.core.model.backbones import BackboneInfo, configured_backbones
from app.core.model.backbones.normalised import with_normalisation
from app.core.serving.inference import FaceInference
from app.core.store.repos import faces as repo
from app.core.store.vector_index import GalleryIndex
from app.domains.models.curve import curve_of
from app.domains.models.schemas import (
    CalibrationCurveOut,
    ConfiguredModelOut,
    HeldOutOut,
    IdentifyScoreOut,
    LayerOut,
    LayersOut,
    ModelOut,
    ModelsOut,
    StoredCalibrationOut,
    StoredModelOut,
    Threshold1to1,
    Threshold1toN,
)


class ModelsService:
    """Built once in the lifespan. `settings`: which backbones are configured is read
    on every request (weights may appear), and the threshold range and cohort tau."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inference: FaceInference,
        gallery: GalleryIndex,
        settings: Settings,
        cohort: Cohort | None = None,
        built_in_cohort: BuiltInCohort | None = None,
    ) -> None:
        self._sessions = sessions
        self._inference = inference
        self._gallery = gallery
        self._settings = settings
        self._cohort = cohort
        self._built_in_cohort = built_in_cohort

    async def describe(self, *, may_read: bool = True) -> ModelsOut:
        inference, settings = self._inference, self._settings
        backbone = inference.backbone
        async with self._sessions() as session:
            active = await active_calibration(
                session, inference.model, backbone.calibration, len(self._gallery)
            )
            others = await repo.other_model_face_counts(session, inference.model)
        infos = configured_backbones(settings, backbone, normalise=settings.normalise_embeddings)
        infos[0] = replace(infos[0], calibration=active.calibration)
        configured = [_described(info) for info in infos]
        return ModelsOut(
            active=ModelOut(
                **configured[0].model_dump(),
                version=inference.model[1],
                normalized=backbone.normalized,
                threshold_range=(settings.threshold_min, settings.threshold_max),
                gallery_faces=len(self._gallery) if may_read else None,
                calibration=_stored_out(active),
                other_models=_other_models(others, inference.model) if may_read else None,
            ),
            configured=configured,
            identify_score=self._identify_score(len(self._gallery)),
        )

    async def calibration_curve(self, name: str) -> CalibrationCurveOut:
        """The curves of the calibration in use: the active model's only, since another
        backbone's version (hence its stored calibrations) is not known without loading it."""
        inference = self._inference
        if name != inference.model[0]:
            raise NotFound(
                f"{name!r} is not the active model; calibrations are served for the active "
                f"model only ({inference.model[0]})"
            )
        async with self._sessions() as session:
            active = await active_calibration(
                session, inference.model, inference.backbone.calibration, len(self._gallery)
            )
        return curve_of(active, inference.model)

    def _identify_score(self, gallery_size: int) -> IdentifyScoreOut:
        cohort, built_in = self._cohort, self._built_in_cohort
        if cohort is not None:
            return IdentifyScoreOut(
                mode="cohort",
                cohort_k=cohort.k,
                cohort_tau=self._settings.cohort_tau,
                cohort_size=len(cohort.vectors),
            )
        if built_in is not None:
            return IdentifyScoreOut(
                mode="built_in_cohort",
                cohort_k=built_in.cohort.k,
                cohort_tau=built_in.tau(gallery_size),
                cohort_size=len(built_in.cohort.vectors),
                min_gallery=built_in.min_gallery,
                active=built_in.applies(gallery_size),
            )
        return IdentifyScoreOut(mode="distance")


def _other_models(rows: Sequence[Row[str, str, int]], active: Model) -> list[StoredModelOut]:
    return [
        StoredModelOut(
            name=name, version=version, faces=faces, action=_action((name, version), active)
        )
        for name, version, faces in rows
    ]


def _action(stored: Model, active: Model) -> str:
    """What to do with faces of `stored`: the same network's other normalisation can be
    served by a setting until it is re-embedded; anything else is re-embedded."""
    reembed = "`facesvc reembed` re-embeds them with the active model"
    if stored[0] == active[0] and with_normalisation(stored[1]) == active[1]:
        return (
            f"the un-normalised version of the active model: {reembed}; until then "
            "FACESVC_NORMALISE_EMBEDDINGS=false serves their version"
        )
    if stored[0] == active[0] and stored[1] == with_normalisation(active[1]):
        return (
            "the L2-normalised version of the active model: FACESVC_NORMALISE_EMBEDDINGS=true "
            f"(the default) serves it, or {reembed}"
        )
    return f"{reembed} (faces enrolled without FACESVC_KEEP_THUMBNAILS: re-enroll them)"


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


def layers_of_model(name: str) -> LayersOut:
    """The layers of backbone `name` and what one unit of each sees."""
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
