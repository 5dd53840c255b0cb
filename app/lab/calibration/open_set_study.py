"""Which open-set score should the service decide on by default? Every score of
`gallery_scores` on embeddings raw and L2-normalised, measured the way a deployment meets
it: parameter and tau chosen on calibration identities, then applied unchanged to
held-out identities (PROTOCOL.md section 3's design, enrolment seeds 0..splits-1).

Per score: FNIR at FPIR 1e-2 on the held-out half at its own tau (how good the score is)
and at the calibration tau (what a door sees: the achieved FPIR and the FNIR there). The
calibration tau pools the non-mated scores of all calibration splits (about 5 x 700
searches) rather than taking one split's, so it rests on some 35 false positives, not 7.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.decision.cohort import Cohort, CohortMixture
from app.core.decision.open_set import GalleryModel
from app.lab.calibration import gallery as gallery_model
from app.lab.calibration import synthetic_cohort
from app.lab.calibration.data import pair_matrix, search_matrix
from app.lab.calibration.gallery_scores import (
    GRIDS,
    METHODS,
    GalleryStats,
    IntArray,
    score,
    usable,
)
from app.lab.calibration.threshold import tau_for_far
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

TARGET_FPIR = 1e-2
TARGET_FAR = 1e-3


def l2_embeddings(embeddings: EmbeddingMap) -> dict[Path, npt.NDArray[Any] | None]:
    """x / ||x|| for every embedding (None stays None)."""
    return {
        path: None if e is None else np.asarray(e, dtype=np.float64) / np.linalg.norm(e)
        for path, e in embeddings.items()
    }


@dataclass(frozen=True)
class Design:
    """One enrolment split: every probe's distances to the gallery and to the fixed cohort."""

    distances: FloatArray  # (probes, entries); +inf rows for failed probes
    true_entry: IntArray  # the probe's own entry, -1 for a non-mated search
    gallery: GalleryStats
    cohort: FloatArray  # (probes, cohort), ascending

    def searches(
        self, method: str, parameter: float, distance_cap: float | None = None
    ) -> OpenSetSearches:
        """`distance_cap`: a candidate further than it is never accepted (score +inf), as
        the service's built-in cohort rule decides."""
        values, candidate = score(method, parameter, self.distances, self.gallery, self.cohort)
        if distance_cap is not None:
            chosen = self.distances[np.arange(len(candidate)), candidate]
            values = np.where(chosen > distance_cap, np.inf, values)
        mated = self.true_entry >= 0
        return OpenSetSearches(
            mated_distances=values[mated],
            mated_correct=(candidate[mated] == self.true_entry[mated]) & np.isfinite(values[mated]),
            non_mated_distances=values[~mated],
        )


def cohort_vectors(face_set: FaceSet, embeddings: EmbeddingMap) -> FloatArray:
    """The fixed reference cohort: one face per single-image person (never enrolled)."""
    dim = embedding_dimension(face_set, embeddings)
    rows = embed_rows([f[0] for f in face_set.identities.values() if len(f) == 1], embeddings, dim)
    return rows.vectors[~rows.failed]


def design(face_set: FaceSet, embeddings: EmbeddingMap, cohort: FloatArray, seed: int) -> Design:
    """Section 3 with enrolment seed `seed`: one image per enrolled person (its first,
    skipped when it has no face), mated = their other images, non-mated = every image of
    the people not enrolled."""
    dim = embedding_dimension(face_set, embeddings)
    split = enrolment_split(face_set, seed)
    enrolled = [
        n for n in sorted(split.enrolled) if embeddings[face_set.identities[n][0]] is not None
    ]
    entry_of = {name: index for index, name in enumerate(enrolled)}
    probes, truth = [], []
    for name in face_set.identities_with_at_least(2):
        own = entry_of.get(name, -1)
        files = face_set.identities[name][1:] if own >= 0 else face_set.identities[name]
        probes.extend(files)
        truth.extend([own] * len(files))
    gallery = embed_rows([face_set.identities[n][0] for n in enrolled], embeddings, dim).vectors
    rows = embed_rows(probes, embeddings, dim)
    distances = pairwise_squared_distances(rows.vectors, gallery)
    distances[rows.failed] = np.inf
    to_cohort = np.sort(pairwise_squared_distances(rows.vectors, cohort), axis=1)
    return Design(
        distances=distances,
        true_entry=np.asarray(truth, dtype=np.int64),
        gallery=GalleryStats.of(pairwise_squared_distances(gallery, gallery)),
        cohort=to_cohort,
    )


def pooled_tau(designs: list[Design], method: str, parameter: float, fpir: float) -> float:
    """The largest tau whose FPIR over the non-mated searches of all `designs` is <= fpir."""
    pooled = np.concatenate([d.searches(method, parameter).non_mated_distances for d in designs])
    return metrics.threshold_for_rate(pooled, fpir)


def at_tau(search: OpenSetSearches, tau: float) -> tuple[float, float]:
    """(FPIR, FNIR) at tau."""
    return metrics.fpir_at_threshold(search.non_mated_distances, tau), metrics.fnir_at_threshold(
        search, tau
    )


def tune_parameter(
    tune: list[Design], method: str, fpir: float, every: list[Design]
) -> tuple[float, dict[float, float]]:
    """The parameter of `method` with the lowest mean FNIR at `fpir` over `tune`, among
    those that every design of `every` is large enough for; and each one's FNIR."""
    smallest = min(d.distances.shape[1] for d in every)
    grid = [p for p in GRIDS[method] if usable(method, p, smallest)]
    if not grid:
        raise ValueError(f"galleries of {smallest} are too small for {method}")
    tuned = {
        p: float(np.mean([metrics.fnir_at_fpir(d.searches(method, p), fpir)[0] for d in tune]))
        for p in grid
    }
    return min(tuned, key=lambda p: tuned[p]), tuned


def measure_score(
    tune: list[Design], test: list[Design], method: str, fpir: float
) -> dict[str, Any]:
    """Parameter chosen on `tune` (among those every gallery is large enough for), then
    the held-out figures on `test`."""
    best, tuned = tune_parameter(tune, method, fpir, [*tune, *test])
    held = [d.searches(method, best) for d in test]
    own = [metrics.fnir_at_fpir(s, fpir)[0] for s in held]
    tau = pooled_tau(tune, method, best, fpir)
    deployed = [at_tau(s, tau) for s in held]
    return {
        "parameter": best,
        "fnir_calibration": tuned[best],
        "fnir_held_out_own_tau": float(np.mean(own)),
        "fnir_held_out_own_tau_per_split": own,
        "tau_calibration": tau,
        "fpir_held_out_at_calibration_tau": float(np.mean([f for f, _ in deployed])),
        "fnir_held_out_at_calibration_tau": float(np.mean([f for _, f in deployed])),
        "fpir_per_split": [f for f, _ in deployed],
        "rank1_held_out": float(np.mean([metrics.rank1_accuracy(s) for s in held])),
    }


def gallery_model_row(
    calibration: FaceSet, embeddings: EmbeddingMap, test: list[Design], fpir: float
) -> dict[str, Any]:
    """Raw d1 with the service's rule: tau from the gallery-size model fitted on the
    calibration half, at each held-out split's gallery size."""
    model = gallery_model.fit_gallery_model(search_matrix(calibration, embeddings), "independent")
    return model_tau_row(test, "raw", 0.0, model, fpir)


def model_tau_row(
    test: list[Design],
    method: str,
    parameter: float,
    model: GalleryModel,
    fpir: float,
    distance_cap: float | None = None,
) -> dict[str, Any]:
    """`method` decided with the tau `model` gives for `fpir` at each held-out split's
    gallery size (the service's rule)."""
    rows = []
    for d in test:
        size = d.distances.shape[1]
        tau = model.tau_for_fpir(fpir, size)
        rows.append((size, tau, *at_tau(d.searches(method, parameter, distance_cap), tau)))
    return {
        "gallery_size": float(np.mean([r[0] for r in rows])),
        "tau": float(np.mean([r[1] for r in rows])),
        "fpir_held_out": float(np.mean([r[2] for r in rows])),
        "fnir_held_out": float(np.mean([r[3] for r in rows])),
        "expected_fnir": float(np.mean([model.expected_fnir(r[1], r[0]) for r in rows])),
    }


def verification(
    calibration: FaceSet, held_out: FaceSet, embeddings: EmbeddingMap, far: float
) -> dict[str, float]:
    """1:1: tau for `far` on the calibration half; TAR and FAR on the held-out half at it,
    and the held-out half's own TAR at `far`."""
    _, impostor = pair_matrix(calibration, embeddings).genuine_and_impostor()
    tau = tau_for_far(impostor, far)
    genuine, held_impostor = pair_matrix(held_out, embeddings).genuine_and_impostor()
    return {
        "tau_calibration": tau,
        "far_held_out": metrics.far_at_threshold(held_impostor, tau),
        "tar_held_out": metrics.tar_at_threshold(genuine, tau),
        "tar_held_out_own_tau": metrics.tar_at_far(genuine, held_impostor, far)[0],
    }


def study(
    calibration: FaceSet,
    held_out: FaceSet,
    embeddings: EmbeddingMap,
    splits: int = 5,
    fpir: float = TARGET_FPIR,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, Any]:
    """Every score on raw and on L2-normalised embeddings, as the module docstring says."""
    results: dict[str, Any] = {"fpir": fpir, "splits": splits, "embeddings": {}}
    variants: Mapping[str, EmbeddingMap] = {"raw": embeddings, "l2": l2_embeddings(embeddings)}
    for variant, mapped in variants.items():
        cohort = cohort_vectors(calibration, mapped)
        tune = [design(calibration, mapped, cohort, s) for s in range(splits)]
        test = [design(held_out, mapped, cohort, s) for s in range(splits)]
        results["embeddings"][variant] = {
            "cohort_size": int(cohort.shape[0]),
            "gallery_size_held_out": float(np.mean([d.distances.shape[1] for d in test])),
            "scores": {m: measure_score(tune, test, m, fpir) for m in methods},
            "raw_gallery_model": gallery_model_row(calibration, mapped, test, fpir),
            "verification": verification(calibration, held_out, mapped, TARGET_FAR),
        }
        if variant == "l2" and "cohort" in methods:
            cap = results["embeddings"][variant]["verification"]["tau_calibration"]
            results["embeddings"][variant].update(
                built_in_cohort(calibration, held_out, mapped, splits, fpir, cap)
            )
    return results


def built_in_cohort(
    calibration: FaceSet,
    held_out: FaceSet,
    embeddings: EmbeddingMap,
    splits: int,
    fpir: float,
    distance_cap: float | None = None,
) -> dict[str, Any]:
    """The shipped kind of cohort (`built_in_cohort_artefacts`), drawn as the service
    draws it; its tau from a gallery model of cohort scores fitted on the calibration half,
    at each held-out gallery's size (what a fresh install does)."""
    mixture, k, model = built_in_cohort_artefacts(calibration, embeddings, splits, fpir)
    drawn = mixture.draw().astype(np.float64)
    tune = [design(calibration, embeddings, drawn, s) for s in range(splits)]
    test = [design(held_out, embeddings, drawn, s) for s in range(splits)]
    return {
        "synthetic_cohort": measure_score(tune, test, "cohort", fpir),
        "synthetic_cohort_model": model_tau_row(test, "cohort", k, model, fpir, distance_cap),
    }


def built_in_cohort_artefacts(
    calibration: FaceSet, embeddings: EmbeddingMap, splits: int, fpir: float
) -> tuple[CohortMixture, int, GalleryModel]:
    """What ships with a model version, all from `calibration` alone: the mixture fitted
    to its one-photo people (never probes), k tuned on its enrolment splits, and the
    gallery model of its cohort scores."""
    mixture = synthetic_cohort.fit_mixture(cohort_vectors(calibration, embeddings))
    vectors = mixture.draw()
    tune = [design(calibration, embeddings, vectors.astype(np.float64), s) for s in range(splits)]
    k = int(tune_parameter(tune, "cohort", fpir, tune)[0])
    model = synthetic_cohort.score_model(calibration, embeddings, Cohort(vectors, k))
    return mixture, k, model
