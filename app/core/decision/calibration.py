"""The thresholds the service decides with: the newest stored calibration of the active
model, else the backbone's built-in one (whose 1:N tau follows the gallery size too when
it carries a gallery model).

With `follow_gallery`, tau_identify is re-derived on every request from the number of
faces in the search index, so that the stored target FPIR holds as the gallery grows
(every enrolled face is one more chance for a stranger), and the FNIR reported is the
one the gallery model expects there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.decision.open_set import GalleryModel
from app.core.model.backbones.base import Calibration
from app.core.store.repos import calibrations as repository
from app.core.store.rows.calibrations import StoredCalibration


@dataclass(frozen=True)
class ActiveCalibration:
    calibration: Calibration
    stored: StoredCalibration | None  # None: the backbone's built-in calibration


def from_stored(row: StoredCalibration, gallery_size: int) -> Calibration:
    report = row.report
    tau_identify, fnir = row.tau_identify, report["expected_fnir"]
    size = row.gallery_size
    fpir = report["identification"]["fpir"]["value"]
    if row.follow_gallery:
        model = GalleryModel.from_dict(report["gallery_model"])
        size = max(gallery_size, 1)
        tau_identify = model.tau_for_fpir(row.fpir_target, size)
        fnir, fpir = model.expected_fnir(tau_identify, size), row.fpir_target
    return Calibration(
        tau_verify=row.tau_verify,
        far_verify=report["far"],
        tar_verify=report["tar"],
        tau_identify=tau_identify,
        fpir_identify=fpir,
        fnir_identify=fnir,
        gallery_size=size,
        source=f"database: calibration {row.id} of {row.created_at:%Y-%m-%d %H:%M} ({row.source})",
    )


def from_built_in(built_in: Calibration, gallery_size: int) -> Calibration:
    """A backbone's built-in calibration, its 1:N tau re-derived for `gallery_size` when
    it carries a gallery model (the L2 default does), as a stored one's is."""
    if built_in.gallery_model is None:
        return built_in
    model = GalleryModel.from_dict(built_in.gallery_model)
    size = max(gallery_size, 1)
    tau_identify = model.tau_for_fpir(built_in.fpir_identify, size)
    return replace(
        built_in,
        tau_identify=tau_identify,
        fnir_identify=model.expected_fnir(tau_identify, size),
        gallery_size=size,
    )


def gallery_model_of(active: ActiveCalibration) -> GalleryModel | None:
    """The model of FPIR against gallery size of the calibration in use, if it has one
    (every stored calibration does; of the built-in ones, the L2 default's)."""
    if active.stored is None:
        data = active.calibration.gallery_model
    else:
        data = active.stored.report.get("gallery_model")
    return None if data is None else GalleryModel.from_dict(data)


async def active_calibration(
    session: AsyncSession, model: tuple[str, str], built_in: Calibration, gallery_size: int
) -> ActiveCalibration:
    row = await repository.latest(session, model)
    if row is None:
        return ActiveCalibration(from_built_in(built_in, gallery_size), None)
    return ActiveCalibration(from_stored(row, gallery_size), row)


async def calibration_in_use(
    session: AsyncSession, model: tuple[str, str], built_in: Calibration, gallery_size: int
) -> Calibration:
    """The thresholds to decide with: the stored calibration of `model` if there is one
    (1:N re-derived for `gallery_size` if it follows the gallery), else `built_in`."""
    return (await active_calibration(session, model, built_in, gallery_size)).calibration
