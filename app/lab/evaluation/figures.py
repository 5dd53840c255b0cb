"""The figures of PROTOCOL.md's report, from distances already computed: verification
(TAR at FAR, ROC AUC, EER), open-set identification (rank-1, FNIR at FPIR) and the rates
at one fixed tau. Keys are the report's (`app.lab.evaluation.protocol.evaluate`)."""

from __future__ import annotations

from typing import Any

from app.lab.evaluation import metrics
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches

FAR_TARGETS = (1e-2, 1e-3, 1e-4)
FPIR_TARGETS = (1e-1, 1e-2, 1e-3)


def rate_key(rate: float) -> str:
    """Map keys are the rates as Python's str(float) writes them: "0.01", "0.0001"."""
    return str(float(rate))


def verification_figures(genuine: FloatArray, impostor: FloatArray) -> dict[str, Any]:
    tar_at_far = {}
    for far in FAR_TARGETS:
        tar, tau = metrics.tar_at_far(genuine, impostor, far)
        tar_at_far[rate_key(far)] = {"tar": tar, "tau": tau}
    return {
        "roc_auc": metrics.roc_auc(genuine, impostor),
        "eer": metrics.equal_error_rate(genuine, impostor),
        "tar_at_far": tar_at_far,
    }


def no_verification() -> dict[str, Any]:
    return {"roc_auc": None, "eer": None, "tar_at_far": None}


def identification_figures(searches: OpenSetSearches | None, default_tau: float) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "rank1": None,
        "fnir_at_fpir": None,
        "default_tau": float(default_tau),
    }
    figures.update(fnir_at_default_tau=None, fpir_at_default_tau=None)
    if searches is None:
        return figures
    fnir_at_fpir = {}
    for fpir in FPIR_TARGETS:
        fnir, tau = metrics.fnir_at_fpir(searches, fpir)
        fnir_at_fpir[rate_key(fpir)] = {"fnir": fnir, "tau": tau}
    figures.update(
        rank1=metrics.rank1_accuracy(searches),
        fnir_at_fpir=fnir_at_fpir,
        fnir_at_default_tau=metrics.fnir_at_threshold(searches, default_tau),
        fpir_at_default_tau=metrics.fpir_at_threshold(searches.non_mated_distances, default_tau),
    )
    return figures


def threshold_figures(
    genuine: FloatArray, impostor: FloatArray, searches: OpenSetSearches | None, tau: float
) -> dict[str, Any]:
    figures: dict[str, Any] = {"threshold": tau}
    figures.update(far_at_threshold=None, tar_at_threshold=None)
    figures.update(fpir_at_threshold=None, fnir_at_threshold=None)
    if genuine.size and impostor.size:
        figures["far_at_threshold"] = metrics.far_at_threshold(impostor, tau)
        figures["tar_at_threshold"] = metrics.tar_at_threshold(genuine, tau)
    if searches is not None:
        figures["fpir_at_threshold"] = metrics.fpir_at_threshold(searches.non_mated_distances, tau)
        figures["fnir_at_threshold"] = metrics.fnir_at_threshold(searches, tau)
    return figures
