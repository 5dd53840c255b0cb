"""Genuine and impostor pairs of a labelled set's embedded images, for the verifier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.lab.evaluation.protocol import genuine_pair_indices, impostor_pair_indices
from app.lab.learning.data import LabelledVectors

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Pairs:
    first: IntArray  # row indices into the vectors
    second: IntArray
    same: npt.NDArray[np.bool_]


def _group_end(labels: IntArray) -> IntArray:
    """Per row, one past the last row of its label (rows grouped by label)."""
    ends = np.searchsorted(labels, labels, side="right")
    return ends.astype(np.int64)


def balanced_pairs(data: LabelledVectors, impostor_ratio: float, seed: int) -> Pairs:
    """Every genuine pair, and round(ratio x that many) impostor pairs drawn uniformly
    (without replacement, seeded) from all cross-identity pairs."""
    if data.labels.size and np.any(np.diff(data.labels) < 0):
        raise ValueError("rows must be grouped by label")
    group_end = _group_end(data.labels)
    g_rows, g_cols = genuine_pair_indices(group_end)
    wanted = round(impostor_ratio * g_rows.size)
    i_rows, i_cols = impostor_pair_indices(group_end, limit=wanted, seed=seed)
    return Pairs(
        first=np.concatenate([g_rows, i_rows]),
        second=np.concatenate([g_cols, i_cols]),
        same=np.concatenate([np.ones(g_rows.size, bool), np.zeros(i_rows.size, bool)]),
    )
