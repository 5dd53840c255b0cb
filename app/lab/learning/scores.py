"""PROTOCOL.md sections 2 and 3 with any pair score in place of the squared distance
(smaller = more alike), so a learned verifier is measured exactly like the distance;
and the reliability of predicted probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.figures import identification_figures, verification_figures
from app.lab.evaluation.metrics import FloatArray
from app.lab.evaluation.protocol import (
    PairDistances,
    all_pair_distances,
    embedding_dimension,
    genuine_and_impostor,
    open_set_searches,
)
from app.lab.learning.data import EmbeddingMap

PairScore = PairDistances  # (n, d), (m, d) -> (n, m) scores, smaller = more alike


def score_matrix(score: PairScore, a: FloatArray, b: FloatArray, rows: int = 64) -> FloatArray:
    """All scores between the rows of a and b, `rows` rows of a at a time."""
    parts = [score(a[i : i + rows], b) for i in range(0, len(a), rows)]
    return np.concatenate(parts) if parts else np.zeros((0, len(b)))


def score_protocol(
    face_set: FaceSet, embeddings: EmbeddingMap, score: PairScore, default_tau: float
) -> dict[str, Any]:
    """The figures `protocol.evaluate` gives for sections 2 and 3, for `score`."""
    dim = embedding_dimension(face_set, embeddings)
    by_rows = partial(score_matrix, score)
    distances, group_end = all_pair_distances(face_set, embeddings, dim, by_rows)
    genuine, impostor = genuine_and_impostor(distances, group_end)
    figures = verification_figures(genuine, impostor)
    searches = open_set_searches(face_set, embeddings, dim, by_rows)
    if searches is None:
        raise ValueError(f"{face_set.name}: empty gallery")
    figures.update(identification_figures(searches, default_tau))
    figures.update(genuine_pairs=int(genuine.size), impostor_pairs=int(impostor.size))
    return figures


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
