"""The open-set study behind docs/open-set.md, as `facesvc calibrate --holdout 0.5
--study-normalisation` runs it: scores on raw and L2 embeddings, the gallery-size
behaviour of the candidates, and one- vs three-photo enrolment; `tables` renders it."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.core.decision.open_set import GalleryModel
from app.lab.calibration import enrolment_study, gallery_size_study, open_set_study
from app.lab.calibration.data import search_matrix
from app.lab.calibration.gallery import fit_gallery_model
from app.lab.calibration.gallery_scores import GALLERY_METHODS
from app.lab.calibration.synthetic_cohort import MIN_GALLERY
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.protocol import EmbeddingMap

GALLERY_SIZES = [1, 2, 5, 10, 30, 100, 300]


def run(
    calibration: FaceSet,
    held_out: FaceSet,
    embeddings: EmbeddingMap,
    splits: int = 5,
    fpir: float = 1e-2,
    draws: int = 100,
) -> dict[str, Any]:
    scores = open_set_study.study(calibration, held_out, embeddings, splits, fpir)
    l2 = open_set_study.l2_embeddings(embeddings)
    l2_scores = scores["embeddings"]["l2"]["scores"]
    # the gallery-only candidate is the one best on the calibration half, never the held-out
    best = min(GALLERY_METHODS, key=lambda m: l2_scores[m]["fnir_calibration"])
    policies = [
        gallery_size_study.Policy("L2 d1, model tau (independent)", "raw", 0.0, None),
        gallery_size_study.Policy(
            f"L2 {best} k={l2_scores[best]['parameter']:g}, fixed tau",
            best,
            l2_scores[best]["parameter"],
            l2_scores[best]["tau_calibration"],
        ),
        gallery_size_study.Policy(
            f"L2 cohort k={l2_scores['cohort']['parameter']:g}, fixed tau (operator file)",
            "cohort",
            l2_scores["cohort"]["parameter"],
            l2_scores["cohort"]["tau_calibration"],
        ),
    ]
    model = fit_gallery_model(search_matrix(calibration, l2), "independent")
    pool = gallery_size_study.pool(held_out, l2, open_set_study.cohort_vectors(calibration, l2))
    sizes = gallery_size_study.study(pool, model, policies, GALLERY_SIZES, fpir, draws)
    sizes += built_in_sizes(calibration, held_out, l2, scores, splits, fpir, draws)
    weibull = GalleryModel(**{**model.__dict__, "kind": "weibull"})
    sizes += gallery_size_study.study(
        pool,
        weibull,
        [gallery_size_study.Policy("L2 d1, model tau (weibull)", "raw", 0.0, None)],
        GALLERY_SIZES,
        fpir,
        draws,
    )
    return {
        "scores": scores,
        "gallery_sizes": {"pool": int(pool.entries.shape[0]), "draws": draws, "rows": sizes},
        "enrolment": enrolment_study.study(calibration, held_out, l2, splits, fpir),
    }


def built_in_sizes(
    calibration: FaceSet,
    held_out: FaceSet,
    l2: EmbeddingMap,
    scores: dict[str, Any],
    splits: int,
    fpir: float,
    draws: int,
) -> list[dict[str, Any]]:
    """The built-in cohort's rule (what a fresh install does) at every gallery size,
    against what its score model predicts."""
    mixture, k, score_model = open_set_study.built_in_cohort_artefacts(
        calibration, l2, splits, fpir
    )
    cap = scores["embeddings"]["l2"]["verification"]["tau_calibration"]
    policy = gallery_size_study.Policy(
        f"L2 built-in cohort k={k}, model tau, cap {cap:.4f} (the default)",
        "cohort",
        k,
        None,
        score_model=score_model,
        min_gallery=MIN_GALLERY,
        distance_cap=cap,
    )
    drawn = mixture.draw().astype(np.float64)
    model = fit_gallery_model(search_matrix(calibration, l2), "independent")
    pool = gallery_size_study.pool(held_out, l2, drawn)
    return gallery_size_study.study(pool, model, [policy], GALLERY_SIZES, fpir, draws)


def _tau(value: float) -> str:
    """A tau of +inf or the largest float: every tau keeps FPIR under the target (a
    distance cap rejects enough strangers by itself)."""
    return f"{value:.4f}" if value < 1e300 else "any"


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def tables(report: dict[str, Any]) -> list[str]:
    """Markdown tables of `run`'s report, one line each."""
    lines = [
        "| embeddings | score | parameter | FNIR cal | FNIR held (own tau) | tau (cal) "
        "| FPIR held at cal tau | FNIR held at cal tau | FPIR per split |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, figures in report["scores"]["embeddings"].items():
        for method, s in figures["scores"].items():
            per_split = ", ".join(f"{v:.3f}" for v in s["fpir_per_split"])
            lines.append(
                f"| {variant} | {method} | {s['parameter']:g} | {_f(s['fnir_calibration'])} "
                f"| {_f(s['fnir_held_out_own_tau'])} | {s['tau_calibration']:.4f} "
                f"| {_f(s['fpir_held_out_at_calibration_tau'], 4)} "
                f"| {_f(s['fnir_held_out_at_calibration_tau'])} | {per_split} |"
            )
        rows = [("raw d1", figures["raw_gallery_model"])]
        if "synthetic_cohort" in figures:
            s = figures["synthetic_cohort"]
            lines.append(
                f"| {variant} | built-in cohort (mixture) | {s['parameter']:g} "
                f"| {_f(s['fnir_calibration'])} | {_f(s['fnir_held_out_own_tau'])} "
                f"| {s['tau_calibration']:.4f} | {_f(s['fpir_held_out_at_calibration_tau'], 4)} "
                f"| {_f(s['fnir_held_out_at_calibration_tau'])} "
                f"| {', '.join(f'{v:.3f}' for v in s['fpir_per_split'])} |"
            )
            rows.append(("built-in cohort (the default)", figures["synthetic_cohort_model"]))
        for label, g in rows:
            lines.append(
                f"| {variant} | {label}, gallery-model tau at N={g['gallery_size']:.0f} | - | - "
                f"| - | {g['tau']:.4f} | {_f(g['fpir_held_out'], 4)} | {_f(g['fnir_held_out'])} "
                f"(model {_f(g['expected_fnir'])}) | |"
            )
    lines += [
        "",
        "| embeddings | tau for FAR 1e-3 (cal) | FAR held | TAR held | TAR held (own tau) |",
        "|---|---|---|---|---|",
    ]
    for variant, figures in report["scores"]["embeddings"].items():
        v = figures["verification"]
        lines.append(
            f"| {variant} | {v['tau_calibration']:.4f} | {v['far_held_out']:.5f} "
            f"| {v['tar_held_out']:.3f} | {v['tar_held_out_own_tau']:.3f} |"
        )
    lines += [
        "",
        "| policy | N | score used | tau | FPIR | FNIR | model FPIR | model FNIR "
        "| tau for FPIR 1e-2 here | FNIR there |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["gallery_sizes"]["rows"]:
        lines.append(
            f"| {r['policy']} | {r['gallery_size']} "
            f"| {r['score']}{' (fallback)' if r['fallback'] else ''} | {r['tau']:.4f} "
            f"| {_f(r['fpir'], 4)} | {_f(r['fnir'])} | {_f(r['model_fpir'], 4)} "
            f"| {_f(r['model_fnir'])} | {_tau(r['tau_own'])} | {_f(r['fnir_own_tau'])} |"
        )
    e = report["enrolment"]
    lines += [
        "",
        "| photos | decided by | rank-1 | FNIR at FPIR 1e-2 (own tau) | tau (cal) "
        "| FPIR at cal tau | FNIR at cal tau |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in e["rows"]:
        lines.append(
            f"| {r['photos']} | {r['mode']} | {r['rank1']:.3f} | {_f(r['fnir_own_tau'])} "
            f"| {r['tau_calibration']:.4f} | {_f(r['fpir_at_calibration_tau'], 4)} "
            f"| {_f(r['fnir_at_calibration_tau'])} |"
        )
    return lines
