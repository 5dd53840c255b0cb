"""PROTOCOL.md sections 2 and 3 with any pair score in place of the squared distance
(smaller = more alike), so a learned verifier is measured exactly like the distance;
and the reliability of predicted probabilities."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.lab.evaluation import metrics
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches
from app.lab.evaluation.protocol import (
    FAR_TARGETS,
    FPIR_TARGETS,
    embed_rows,
    embedding_dimension,
    genuine_pair_indices,
    identity_groups,
    impostor_pair_indices,
    open_set_design,
    rate_key,
)
from app.lab.learning.data import EmbeddingMap

# (n, d), (m, d) -> (n, m) scores, smaller = more alike
PairScore = Callable[[FloatArray, FloatArray], FloatArray]


def score_matrix(score: PairScore, a: FloatArray, b: FloatArray, rows: int = 64) -> FloatArray:
    """All scores between the rows of a and b, `rows` rows of a at a time."""
    parts = [score(a[i : i + rows], b) for i in range(0, len(a), rows)]
    return np.concatenate(parts) if parts else np.zeros((0, len(b)))


def score_protocol(
    face_set: FaceSet, embeddings: EmbeddingMap, score: PairScore, default_tau: float
) -> dict[str, Any]:
    """The figures `protocol.evaluate` gives for sections 2 and 3, for `score`."""
    dim = embedding_dimension(face_set, embeddings)
    paths, group_end = identity_groups(face_set, face_set.identities_with_at_least(2))
    images = embed_rows(paths, embeddings, dim)
    all_scores = score_matrix(score, images.vectors, images.vectors)
    all_scores[images.failed, :] = np.inf
    all_scores[:, images.failed] = np.inf
    genuine = all_scores[genuine_pair_indices(group_end)]
    impostor = all_scores[impostor_pair_indices(group_end)]
    tar_at_far = {}
    for far in FAR_TARGETS:
        tar, tau = metrics.tar_at_far(genuine, impostor, far)
        tar_at_far[rate_key(far)] = {"tar": tar, "tau": tau}
    searches = _searches(face_set, embeddings, dim, score)
    fnir_at_fpir = {}
    for fpir in FPIR_TARGETS:
        fnir, tau = metrics.fnir_at_fpir(searches, fpir)
        fnir_at_fpir[rate_key(fpir)] = {"fnir": fnir, "tau": tau}
    return {
        "roc_auc": metrics.roc_auc(genuine, impostor),
        "eer": metrics.equal_error_rate(genuine, impostor),
        "tar_at_far": tar_at_far,
        "rank1": metrics.rank1_accuracy(searches),
        "fnir_at_fpir": fnir_at_fpir,
        "default_tau": float(default_tau),
        "fnir_at_default_tau": metrics.fnir_at_threshold(searches, default_tau),
        "fpir_at_default_tau": metrics.fpir_at_threshold(searches.non_mated_distances, default_tau),
        "genuine_pairs": int(genuine.size),
        "impostor_pairs": int(impostor.size),
    }


def _searches(
    face_set: FaceSet, embeddings: EmbeddingMap, dim: int, score: PairScore
) -> OpenSetSearches:
    design = open_set_design(face_set, embeddings)
    if not design.gallery:
        raise ValueError(f"{face_set.name}: empty gallery")
    gallery = embed_rows([path for _, path in design.gallery], embeddings, dim)
    names = np.array([name for name, _ in design.gallery], dtype=object)

    def nearest(paths: list[Any]) -> tuple[FloatArray, npt.NDArray[np.int64], Any]:
        probes = embed_rows(paths, embeddings, dim)
        scores = score_matrix(score, probes.vectors, gallery.vectors)
        best = np.argmin(scores, axis=1)  # ties: the first entry, as the protocol
        best_score = scores[np.arange(len(paths)), best]
        best_score[probes.failed] = np.inf
        return best_score, best, probes.failed

    mated_scores, mated_best, mated_failed = nearest([path for _, path in design.mated])
    truth = np.array([name for name, _ in design.mated], dtype=object)
    correct = (names[mated_best] == truth) & ~mated_failed
    non_mated_scores, _, _ = nearest(design.non_mated)
    return OpenSetSearches(mated_scores, np.asarray(correct, dtype=bool), non_mated_scores)


@dataclass(frozen=True)
class ReliabilityBin:
    count: int
    mean_probability: float
    observed: float  # share of genuine pairs in the bin

    @property
    def gap(self) -> float:
        return abs(self.mean_probability - self.observed)


def reliability(
    probabilities: npt.ArrayLike, same: npt.ArrayLike, bins: int = 10
) -> list[ReliabilityBin]:
    """Pairs sorted by predicted probability, cut into `bins` equal-count bins (deciles):
    per bin the mean prediction and the observed share of genuine pairs."""
    p = np.asarray(probabilities, dtype=np.float64)
    s = np.asarray(same, dtype=bool)
    order = np.argsort(p, kind="stable")
    return [
        ReliabilityBin(int(part.size), float(p[part].mean()), float(s[part].mean()))
        for part in np.array_split(order, bins)
        if part.size
    ]


def expected_calibration_error(table: list[ReliabilityBin]) -> float:
    total = sum(b.count for b in table)
    return float(sum(b.count * b.gap for b in table) / total)
