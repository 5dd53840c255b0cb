"""One calibration run: tau for a target FAR (1:1) and for a target FPIR at a gallery
size (1:N), the rates they give with 95% intervals, the gallery-size model, and, with
held-out identities, how all of that carries over to people the calibration never saw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.lab.calibration import gallery, normalise, open_set_report, roc
from app.lab.calibration.data import (
    PairMatrix,
    SearchMatrix,
    pair_matrix,
    search_matrix,
    split_identities,
)
from app.lab.calibration.threshold import bootstrap_rate, bootstrap_rates, pair_counts, tau_for_far
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.protocol import EmbeddingMap, enrolment_split

VALIDATION_SIZES = (1, 8, 32, 128, 512)


@dataclass(frozen=True)
class Request:
    far: float
    fpir: float = 1e-2
    gallery_size: int | None = None  # None: the protocol's gallery of the calibration part
    holdout: float = 0.0
    seed: int = 0
    model_kind: gallery.ModelKind = "independent"
    study_normalisation: bool = False
    study_splits: int = 5  # enrolment seeds of the open-set study


def verification_figures(pairs: PairMatrix, tau: float) -> dict[str, Any]:
    far, tar = bootstrap_rates(pair_counts(pairs.distances, pairs.labels, tau))
    genuine, impostor = pairs.genuine_and_impostor()
    return {
        "far": far.as_dict(),
        "tar": tar.as_dict(),
        "genuine_pairs": int(genuine.size),
        "impostor_pairs": int(impostor.size),
    }


def identification_figures(search: SearchMatrix, tau: float, size: int) -> dict[str, Any]:
    """FPIR and FNIR at tau over random galleries of `size`, with intervals."""
    size = min(size, gallery.largest_gallery(search))
    rows, _ = search.mated_rows()
    fpir = bootstrap_rate(gallery.fpir_per_probe(search, tau, size), search.probe_identity)
    fnir = bootstrap_rate(gallery.fnir_per_probe(search, tau, size), search.probe_identity[rows])
    return {"gallery_size": size, "fpir": fpir.as_dict(), "fnir": fnir.as_dict()}


def calibrate(face_set: FaceSet, embeddings: EmbeddingMap, request: Request) -> dict[str, Any]:
    part, held = split_identities(face_set, request.holdout, request.seed)
    pairs = pair_matrix(part, embeddings)
    genuine, impostor = pairs.genuine_and_impostor()
    if impostor.size == 0:
        raise ValueError("the calibration part has no impostor pairs")
    tau_verify = tau_for_far(impostor, request.far)
    search = search_matrix(part, embeddings)
    model = gallery.fit_gallery_model(search, request.model_kind)
    size = request.gallery_size or len(enrolment_split(part).enrolled)
    tau_identify = model.tau_for_fpir(request.fpir, size)
    result: dict[str, Any] = {
        "set": face_set.name,
        "identities": len(part.identities),
        "images": len(part.images),
        "far_target": request.far,
        "tau": tau_verify,
        "verification": verification_figures(pairs, tau_verify),
        # the curve the console plots; stored with the rest of the report
        "roc": roc.roc_points(genuine, impostor, tau_verify) if genuine.size else None,
        "fpir_target": request.fpir,
        "gallery_size": size,
        "tau_identify": tau_identify,
        "expected_fnir": model.expected_fnir(tau_identify, size),
        "identification": identification_figures(search, tau_identify, size),
        "gallery_model": model.as_dict(),
    }
    result["far"] = result["verification"]["far"]["value"]
    result["tar"] = result["verification"]["tar"]["value"]
    if held.identities:
        result["held_out"] = held_out_figures(held, embeddings, result, model, request)
        if request.study_normalisation:
            result["normalisation"] = normalise.study(part, held, embeddings, fpir=request.fpir)
            result["open_set_study"] = open_set_report.run(
                part, held, embeddings, splits=request.study_splits, fpir=request.fpir
            )
    return result


def held_out_figures(
    held: FaceSet,
    embeddings: EmbeddingMap,
    result: dict[str, Any],
    model: gallery.GalleryModel,
    request: Request,
) -> dict[str, Any]:
    search = search_matrix(held, embeddings)
    largest = gallery.largest_gallery(search)
    sizes = sorted({s for s in VALIDATION_SIZES if s <= largest} | {largest})
    validation: dict[str, Any] = {}
    for kind in ("independent", "weibull"):
        other = gallery.GalleryModel(**{**model.__dict__, "kind": kind})
        rows = gallery.validate(other, search, request.fpir, sizes)
        ratios = [r["measured_fpir"] / request.fpir for r in rows if r["measured_fpir"] > 0]
        validation[kind] = {
            "rows": rows,
            "mean_abs_log_ratio": float(np.mean(np.abs(np.log(ratios)))) if ratios else None,
        }
    return {
        "identities": len(held.identities),
        "images": len(held.images),
        "verification": verification_figures(pair_matrix(held, embeddings), result["tau"]),
        "identification": identification_figures(
            search, result["tau_identify"], result["gallery_size"]
        ),
        "gallery_model_validation": validation,
    }
