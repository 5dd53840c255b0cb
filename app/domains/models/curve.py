"""GET /v1/models/{name}/calibration: the curves behind the active thresholds, for a
plot. The ROC is the one `facesvc calibrate` stored with its report; the FPIR curve is
evaluated from the gallery model the 1:N threshold is derived with, at the gallery
size that threshold is for."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.core.decision.calibration import ActiveCalibration, gallery_model_of
from app.core.decision.model_match import Model
from app.core.decision.open_set import GalleryModel
from app.domains.models.schemas import (
    CalibrationCurveOut,
    FpirCurveOut,
    FpirPointOut,
    IdentifyPointOut,
    OperatingPointOut,
    RocOut,
    RocPointOut,
    StoredRefOut,
)

FPIR_POINTS = 200  # at most, from the impostor CDF's knots
TAIL_POINTS = 20  # below the first knot, where the fitted power tail holds


def _known(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def curve_of(active: ActiveCalibration, model: Model) -> CalibrationCurveOut:
    cal, row = active.calibration, active.stored
    gallery = gallery_model_of(active)
    follow = row.follow_gallery if row is not None else cal.gallery_model is not None
    return CalibrationCurveOut(
        model=model[0],
        version=model[1],
        stored=None
        if row is None
        else StoredRefOut(id=row.id, created_at=row.created_at, source=row.source),
        calibration_source=cal.source,
        verify=OperatingPointOut(
            tau=cal.tau_verify, far=_known(cal.far_verify), tar=_known(cal.tar_verify)
        ),
        roc=None if row is None else _roc(row.report.get("roc")),
        identify=IdentifyPointOut(
            tau=cal.tau_identify,
            fpir=_known(cal.fpir_identify),
            fnir=_known(cal.fnir_identify),
            gallery_size=cal.gallery_size,
            follow_gallery=follow,
        ),
        fpir_curve=None
        if gallery is None
        else _fpir_curve(gallery, cal.tau_identify, max(cal.gallery_size, 1)),
    )


def _roc(stored: dict[str, Any] | None) -> RocOut | None:
    if not stored:
        return None  # stored before calibrations kept their curve
    return RocOut(
        points=[RocPointOut(tau=t, far=f, tar=a) for t, f, a in stored["points"]],
        genuine_pairs=stored["genuine_pairs"],
        impostor_pairs=stored["impostor_pairs"],
    )


def _fpir_curve(model: GalleryModel, tau: float, size: int) -> FpirCurveOut:
    knots = np.array([t for t, _ in model.impostor_cdf])
    if knots.size > FPIR_POINTS:
        knots = knots[np.linspace(0, knots.size - 1, FPIR_POINTS).round().astype(int)]
    tail = np.geomspace(knots[0] / 4.0, knots[0], TAIL_POINTS, endpoint=False)
    taus = np.unique(np.concatenate([tail, knots, [tau]]))
    fpir = model.fpir(taus, size)
    return FpirCurveOut(
        gallery_size=size,
        gallery_model=model.kind,
        points=[
            FpirPointOut(tau=float(t), fpir=float(f), fnir=model.expected_fnir(float(t), size))
            for t, f in zip(taus, fpir, strict=True)
        ],
    )
