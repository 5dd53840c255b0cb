"""Open-set score normalisation, measured: does deciding 1:N on something other than the
raw nearest distance lower FNIR at a fixed FPIR?

Scores (smaller = accept; every one keeps the nearest entry as the candidate):
- `raw`: d1, the nearest distance;
- `margin`: d1 - beta (d2 - d1), d2 the distance to the second-nearest enrolled person,
  so a probe that is about as near to two people counts as less sure;
- `cohort`: d1 / c, c the mean distance from the probe to its `k` nearest faces in a
  fixed cohort of people who are never enrolled: a probe that is near everyone (a
  "wolf") has its distance scaled up.

beta and k are chosen on calibration identities; the figures that decide are measured
on held-out ones, averaged over several enrolment splits (PROTOCOL.md section 3's design
with seeds 0..splits-1), because FPIR 1e-2 on a few hundred non-mated searches rests on a
handful of false positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.lab.evaluation import metrics
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches
from app.lab.evaluation.protocol import (
    EmbeddingMap,
    embed_rows,
    embedding_dimension,
    enrolment_split,
    pairwise_squared_distances,
)

BETAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
COHORT_KS = (1, 5, 20, 100)
TARGET_FPIR = 1e-2


@dataclass(frozen=True)
class Searches:
    """Per search: d1, d2, the cohort distances, and (mated only) whether d1 is right."""

    mated: FloatArray  # (n, 2): d1, d2
    mated_correct: npt.NDArray[np.bool_]
    mated_cohort: FloatArray  # (n, cohort) sorted
    non_mated: FloatArray  # (n, 2): d1, d2
    non_mated_cohort: FloatArray


def cohort_faces(face_set: FaceSet, embeddings: EmbeddingMap) -> FloatArray:
    """One face per identity with a single image (people never enrolled in either part)."""
    dim = embedding_dimension(face_set, embeddings)
    paths = [files[0] for files in face_set.identities.values() if len(files) == 1]
    rows = embed_rows(paths, embeddings, dim)
    return rows.vectors[~rows.failed]


def searches(
    face_set: FaceSet, embeddings: EmbeddingMap, cohort: FloatArray, seed: int
) -> Searches:
    """The section 3 design with enrolment seed `seed`, keeping two nearest distances."""
    dim = embedding_dimension(face_set, embeddings)
    split = enrolment_split(face_set, seed)
    gallery = [(n, face_set.identities[n][0]) for n in sorted(split.enrolled)]
    gallery = [(n, p) for n, p in gallery if embeddings[p] is not None]
    enrolled = {n for n, _ in gallery}
    mated = [(n, p) for n, _ in gallery for p in face_set.identities[n][1:]]
    non_mated = [
        p
        for n in face_set.identities_with_at_least(2)
        if n not in enrolled
        for p in face_set.identities[n]
    ]
    gallery_rows = embed_rows([p for _, p in gallery], embeddings, dim)
    names = np.array([n for n, _ in gallery], dtype=object)

    def nearest_two(paths: list[Any]) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray]:
        rows = embed_rows(paths, embeddings, dim)
        distances = pairwise_squared_distances(rows.vectors, gallery_rows.vectors)
        order = np.argsort(distances, axis=1)[:, :2]
        two = np.take_along_axis(distances, order, axis=1)
        two[rows.failed] = np.inf
        to_cohort = np.sort(pairwise_squared_distances(rows.vectors, cohort), axis=1)
        return two, order[:, 0], to_cohort

    mated_two, nearest, mated_cohort = nearest_two([p for _, p in mated])
    true_names = np.array([n for n, _ in mated], dtype=object)
    non_mated_two, _, non_mated_cohort = nearest_two(non_mated)
    return Searches(
        mated=mated_two,
        mated_correct=np.asarray(names[nearest] == true_names, dtype=bool)
        & np.isfinite(mated_two[:, 0]),
        mated_cohort=mated_cohort,
        non_mated=non_mated_two,
        non_mated_cohort=non_mated_cohort,
    )


def _score(method: str, parameter: float, two: FloatArray, cohort: FloatArray) -> FloatArray:
    d1 = two[:, 0]
    if method == "raw":
        return d1
    if method == "margin":
        return d1 - parameter * (two[:, 1] - d1)
    if method == "cohort":
        return d1 / cohort[:, : int(parameter)].mean(axis=1)
    raise ValueError(f"unknown score {method!r}")


def fnir_at_fpir(search: Searches, method: str, parameter: float, fpir: float) -> float:
    return fnir_and_tau(search, method, parameter, fpir)[0]


def fnir_and_tau(
    search: Searches, method: str, parameter: float, fpir: float
) -> tuple[float, float]:
    """(FNIR, tau) at `fpir`, deciding on the `method` score with tau."""
    mated = _score(method, parameter, search.mated, search.mated_cohort)
    non_mated = _score(method, parameter, search.non_mated, search.non_mated_cohort)
    scored = OpenSetSearches(
        mated_distances=np.where(np.isfinite(search.mated[:, 0]), mated, np.inf),
        mated_correct=search.mated_correct,
        non_mated_distances=np.where(np.isfinite(search.non_mated[:, 0]), non_mated, np.inf),
    )
    return metrics.fnir_at_fpir(scored, fpir)


def study(
    calibration: FaceSet,
    held_out: FaceSet,
    embeddings: EmbeddingMap,
    splits: int = 5,
    fpir: float = TARGET_FPIR,
) -> dict[str, Any]:
    """Choose each method's parameter on `calibration`, report FNIR at `fpir` on
    `held_out` (mean over `splits` enrolment seeds), and which method lowers it."""
    cohort = cohort_faces(calibration, embeddings)
    tune = [searches(calibration, embeddings, cohort, seed) for seed in range(splits)]
    test = [searches(held_out, embeddings, cohort, seed) for seed in range(splits)]
    grids = {"raw": (0.0,), "margin": BETAS, "cohort": COHORT_KS}
    results: dict[str, Any] = {}
    for method, grid in grids.items():
        tuned = {p: float(np.mean([fnir_at_fpir(s, method, p, fpir) for s in tune])) for p in grid}
        best = min(tuned, key=lambda p: tuned[p])
        held = [fnir_at_fpir(s, method, best, fpir) for s in test]
        # The tau the service would use with this score (FACESVC_COHORT_TAU for cohort):
        # the median over the calibration splits of the tau that gives `fpir`.
        taus = [fnir_and_tau(s, method, best, fpir)[1] for s in tune]
        results[method] = {
            "parameter": best,
            "tau_calibration": float(np.median(taus)),
            "fnir_calibration": tuned[best],
            "fnir_held_out": float(np.mean(held)),
            "fnir_held_out_per_split": held,
        }
    raw = results["raw"]["fnir_held_out"]
    winner = min(results, key=lambda m: results[m]["fnir_held_out"])
    return {
        "fpir": fpir,
        "cohort_size": int(cohort.shape[0]),
        "splits": splits,
        "methods": results,
        "best": winner if results[winner]["fnir_held_out"] < raw else "raw",
    }
