"""Cohort score normalisation for 1:N, as the service runs it (FACESVC_IDENTIFY_SCORE=cohort).

The nearest enrolled distance d1 is divided by c, the mean squared distance from the
probe to its k nearest faces in a fixed cohort of people who are never enrolled: a probe
that is near everybody (a "wolf") gets its distance scaled up. Measured in
`app/lab/calibration/normalise.py` (docs/learning-calibration.md): on lfw_dev's held-out
people it halves FNIR at FPIR 1e-2 against the raw distance. The cohort file and the
threshold on d1 / c come from `facesvc calibrate --holdout 0.5 --study-normalisation
--save-cohort FILE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.core.errors import ModelUnavailable
from app.core.model.types import Embedding


@dataclass(frozen=True)
class Cohort:
    vectors: npt.NDArray[np.float32]  # (n, d): one face per never-enrolled person
    k: int

    @classmethod
    def load(cls, path: Path, k: int, dim: int) -> Cohort:
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cohort file {path}: {exc}") from None
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise ModelUnavailable(
                f"cohort file {path} holds {vectors.shape} embeddings; the active model "
                f"makes {dim}-d ones (build it with the same model)"
            )
        if len(vectors) < k:
            raise ModelUnavailable(f"cohort file {path} has {len(vectors)} faces, k is {k}")
        return cls(np.ascontiguousarray(vectors, dtype=np.float32), k)

    def scale(self, probe: Embedding) -> float:
        """c: the mean of the k smallest squared distances from probe to the cohort."""
        distances = ((self.vectors - probe.astype(np.float32)) ** 2).sum(axis=1)
        return float(np.partition(distances, self.k - 1)[: self.k].mean())

    def score(self, distance: float, probe: Embedding) -> float:
        return distance / self.scale(probe)
