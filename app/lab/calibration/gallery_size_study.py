"""FPIR and FNIR against the gallery size, for raw distances with the gallery-size model's
tau (what the service does) and for a normalised score with one fixed tau.

The held-out people make a pool: each person's first image (with a face) is their entry,
their other images are probes. A gallery of N is N entries drawn at random (seeded,
`draws` times); probes of drawn people are mated, every other probe is non-mated. The
largest gallery is leave-one-person-out: each person's probes search all other entries
(non-mated, N = pool - 1), and every probe with an entry searches all entries (mated).

Gallery-based scores need k + 1 entries; below that the policy falls back to raw
distance with the model's tau, as the service would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.decision.open_set import GalleryModel
from app.lab.calibration.gallery_scores import GalleryStats, IntArray, score, usable
from app.lab.evaluation import metrics
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches
from app.lab.evaluation.protocol import (
    EmbeddingMap,
    embed_rows,
    embedding_dimension,
    pairwise_squared_distances,
)


@dataclass(frozen=True)
class Policy:
    """How a deployment decides: a score, its parameter, and a fixed tau on it, or None
    for raw distance with the gallery-size model's tau at the live gallery size.
    `score_model`: the tau on the score follows the gallery size through this model of
    the score (the built-in cohort), from `min_gallery` entries on (raw distance with the
    distance model's tau below), never accepting a candidate beyond `distance_cap`."""

    name: str
    method: str
    parameter: float
    tau: float | None
    score_model: GalleryModel | None = None
    min_gallery: int = 0
    distance_cap: float | None = None


@dataclass(frozen=True)
class Pool:
    distances: FloatArray  # (probes, entries); +inf rows for failed probes
    own_entry: IntArray  # -1: the probe's person has no entry
    entries: FloatArray  # (entries, entries)
    cohort: FloatArray  # (probes, cohort), ascending


def pool(face_set: FaceSet, embeddings: EmbeddingMap, cohort: FloatArray) -> Pool:
    dim = embedding_dimension(face_set, embeddings)
    entries: list[Path] = []
    probes: list[Path] = []
    own: list[int] = []
    for files in face_set.identities.values():
        first = next((f for f in files if embeddings[f] is not None), None)
        index = len(entries) if first is not None else -1
        if first is not None:
            entries.append(first)
        rest = [f for f in files if f != first]
        probes.extend(rest)
        own.extend([index] * len(rest))
    entry_rows = embed_rows(entries, embeddings, dim).vectors
    rows = embed_rows(probes, embeddings, dim)
    distances = pairwise_squared_distances(rows.vectors, entry_rows)
    distances[rows.failed] = np.inf
    return Pool(
        distances=distances,
        own_entry=np.asarray(own, dtype=np.int64),
        entries=pairwise_squared_distances(entry_rows, entry_rows),
        cohort=np.sort(pairwise_squared_distances(rows.vectors, cohort), axis=1),
    )


def _decide(
    policy: Policy, model: GalleryModel, fpir: float, size: int
) -> tuple[str, float, float]:
    if policy.score_model is not None and size >= policy.min_gallery:
        return policy.method, policy.parameter, policy.score_model.tau_for_fpir(fpir, size)
    if policy.tau is None or not usable(policy.method, policy.parameter, size):
        return "raw", 0.0, model.tau_for_fpir(fpir, size)
    return policy.method, policy.parameter, policy.tau


@dataclass
class Tally:
    """Scores gathered over galleries: non-mated scores, mated scores and whether the
    mated candidate was the right person."""

    non_mated: list[FloatArray] = field(default_factory=list)
    mated: list[FloatArray] = field(default_factory=list)
    right: list[npt.NDArray[np.bool_]] = field(default_factory=list)

    def searches(self) -> OpenSetSearches:
        return OpenSetSearches(
            mated_distances=np.concatenate(self.mated),
            mated_correct=np.concatenate(self.right),
            non_mated_distances=np.concatenate(self.non_mated),
        )


def _scores(
    the_pool: Pool,
    probes: IntArray,
    chosen: IntArray,
    method: str,
    parameter: float,
    cap: float | None = None,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """(score, candidate is the right person) for `probes` against entries `chosen`;
    a candidate beyond `cap` scores +inf."""
    stats = GalleryStats.of(the_pool.entries[np.ix_(chosen, chosen)])
    distances = the_pool.distances[np.ix_(probes, chosen)]
    values, candidate = score(method, parameter, distances, stats, the_pool.cohort[probes])
    if cap is not None:
        nearest = distances[np.arange(len(candidate)), candidate]
        values = np.where(nearest > cap, np.inf, values)
    right = (chosen[candidate] == the_pool.own_entry[probes]) & np.isfinite(values)
    return values, right


def tally_random(
    the_pool: Pool,
    method: str,
    parameter: float,
    size: int,
    draws: int,
    seed: int,
    cap: float | None = None,
) -> Tally:
    """Scores over `draws` random galleries of `size` entries."""
    rng = np.random.default_rng(seed)
    everyone = np.arange(the_pool.own_entry.size)
    tally = Tally()
    for _ in range(draws):
        chosen = np.sort(rng.choice(the_pool.entries.shape[0], size=size, replace=False))
        mated = np.isin(the_pool.own_entry, chosen)
        tally.non_mated.append(
            _scores(the_pool, everyone[~mated], chosen, method, parameter, cap)[0]
        )
        values, right = _scores(the_pool, everyone[mated], chosen, method, parameter, cap)
        tally.mated.append(values)
        tally.right.append(right)
    return tally


def tally_largest(the_pool: Pool, method: str, parameter: float, cap: float | None = None) -> Tally:
    """Scores leave-one-person-out over the whole pool."""
    total = the_pool.entries.shape[0]
    everyone = np.arange(the_pool.own_entry.size)
    tally = Tally()
    for person in np.unique(the_pool.own_entry):
        probes = everyone[the_pool.own_entry == person]
        chosen = np.delete(np.arange(total), person) if person >= 0 else np.arange(total)
        tally.non_mated.append(_scores(the_pool, probes, chosen, method, parameter, cap)[0])
    values, right = _scores(
        the_pool, everyone[the_pool.own_entry >= 0], np.arange(total), method, parameter, cap
    )
    tally.mated.append(values)
    tally.right.append(right)
    return tally


def study(
    the_pool: Pool,
    model: GalleryModel,
    policies: list[Policy],
    sizes: list[int],
    fpir: float = 1e-2,
    draws: int = 100,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per policy and gallery size (the pool's largest added last): FPIR and FNIR
    at the policy's tau, and (`tau_own`, `fnir_own_tau`) what the score could give at
    that size if its tau were right there (the tau for `fpir` on these very searches)."""
    largest = the_pool.entries.shape[0] - 1
    rows = []
    for policy in policies:
        for size in [*(s for s in sizes if s < largest), largest]:
            method, parameter, tau = _decide(policy, model, fpir, size)
            cap = None if method == "raw" else policy.distance_cap
            if size == largest:
                tally = tally_largest(the_pool, method, parameter, cap)
            else:
                tally = tally_random(the_pool, method, parameter, size, draws, seed, cap)
            searches = tally.searches()
            fnir_own, tau_own = metrics.fnir_at_fpir(searches, fpir)
            raw = method == "raw"
            predicted = model if raw else policy.score_model
            rows.append(
                {
                    "policy": policy.name,
                    "gallery_size": size,
                    "score": method,
                    "fallback": method != policy.method,
                    "tau": tau,
                    "fpir": metrics.fpir_at_threshold(searches.non_mated_distances, tau),
                    "fnir": metrics.fnir_at_threshold(searches, tau),
                    "tau_own": tau_own,
                    "fnir_own_tau": fnir_own,
                    "model_fpir": None if predicted is None else float(predicted.fpir(tau, size)),
                    "model_fnir": None if predicted is None else predicted.expected_fnir(tau, size),
                }
            )
    return rows
