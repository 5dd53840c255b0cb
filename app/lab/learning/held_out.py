"""Before/after figures on held-out identities with the shared protocol, and a model's
default thresholds chosen on the training identities."""

from __future__ import annotations

import math
from typing import Any

from app.core.model.backbones.base import Calibration
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.figures import rate_key
from app.lab.evaluation.protocol import evaluate
from app.lab.learning.data import EmbeddingMap

FAR_VERIFY = 1e-3  # the operating points the shipped calibrations use
FPIR_IDENTIFY = 1e-2
SUMMARY_KEYS = (
    "roc_auc",
    "eer",
    "tar_at_far",
    "rank1",
    "fnir_at_fpir",
    "default_tau",
    "fnir_at_default_tau",
    "fpir_at_default_tau",
    "images",
    "failed_images",
    "genuine_pairs",
    "impostor_pairs",
    "mated_searches",
    "non_mated_searches",
)


def protocol_summary(
    face_set: FaceSet, embeddings: EmbeddingMap, model: str, default_tau: float
) -> dict[str, Any]:
    """PROTOCOL.md sections 2 and 3 on `face_set` (section 1 needs a pairs file)."""
    report = evaluate(face_set, embeddings, model=model, default_tau=default_tau)
    return {key: report[key] for key in SUMMARY_KEYS}


def calibrate_on(
    face_set: FaceSet, embeddings: EmbeddingMap, model: str, source: str
) -> Calibration:
    """tau at FAR 1e-3 (1:1) and at FPIR 1e-2 (1:N), measured on `face_set`."""
    report = evaluate(face_set, embeddings, model=model, default_tau=math.nan)
    verify = (report["tar_at_far"] or {}).get(rate_key(FAR_VERIFY))
    identify = (report["fnir_at_fpir"] or {}).get(rate_key(FPIR_IDENTIFY))
    if verify is None or identify is None:
        raise ValueError(f"{face_set.name}: too few identities to choose thresholds on")
    return Calibration(
        tau_verify=verify["tau"],
        far_verify=FAR_VERIFY,
        tar_verify=verify["tar"],
        tau_identify=identify["tau"],
        fpir_identify=FPIR_IDENTIFY,
        fnir_identify=identify["fnir"],
        gallery_size=len(face_set.identities_with_at_least(2)) // 2,
        source=source,
    )
