"""Cohort score normalisation for 1:N.

The nearest enrolled distance d1 is divided by c, the mean squared distance from the
probe to its k nearest faces in a fixed cohort of people who are never enrolled: a probe
that is near everybody (a "wolf") gets its distance scaled up. Measured in
`app/lab/calibration/` (docs/open-set.md): on lfw_dev's held-out people it cuts FNIR at
FPIR 1e-2 by more than a third against the raw distance.

Two sources of cohort:
- built in (the default model version): `CohortMixture`, a mixture of Gaussians fitted
  offline to embeddings of people who are never probes; the cohort is drawn from it at
  start-up, so no person's embedding and no photo ships with the package. Its 1:N tau
  follows the gallery size through a gallery model fitted on cohort scores
  (`BuiltInCohort`);
- an operator file (FACESVC_IDENTIFY_SCORE=cohort, FACESVC_COHORT_FILE) of embeddings,
  from `facesvc calibrate --holdout 0.5 --study-normalisation --save-cohort FILE`, with
  one fixed tau (FACESVC_COHORT_TAU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.decision.open_set import GalleryModel
from app.core.errors import ModelUnavailable
from app.core.model.types import Embedding

FloatArray = npt.NDArray[np.float64]


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
        return float(self.scales(probe[None, :])[0])

    def scales(self, probes: npt.NDArray[Any]) -> FloatArray:
        """c for each row of `probes` (n, d)."""
        p = np.asarray(probes, dtype=np.float32)
        distances = (
            (p * p).sum(axis=1)[:, None]
            - 2.0 * p @ self.vectors.T
            + (self.vectors * self.vectors).sum(axis=1)[None, :]
        )
        nearest = np.partition(np.maximum(distances, 0.0), self.k - 1, axis=1)[:, : self.k]
        return np.asarray(nearest.mean(axis=1), dtype=np.float64)

    def score(self, distance: float, probe: Embedding) -> float:
        return distance / self.scale(probe)


@dataclass(frozen=True)
class CohortMixture:
    """A mixture of Gaussians over unit embeddings: component j has weight w_j, mean m_j
    and covariance L_j L_j^T. `draw` samples `samples` points with numpy's legacy
    RandomState (whose stream numpy keeps fixed across versions) and scales them to unit
    length, so every start-up draws the same cohort."""

    weights: FloatArray  # (c,)
    means: FloatArray  # (c, d)
    cholesky: FloatArray  # (c, d, d), lower triangular
    samples: int
    seed: int

    def draw(self) -> npt.NDArray[np.float32]:
        random = np.random.RandomState(self.seed)
        counts = np.round(self.weights / self.weights.sum() * self.samples).astype(int)
        counts[np.argmax(counts)] += self.samples - counts.sum()  # rounding: exactly `samples`
        parts = []
        for mean, factor, count in zip(self.means, self.cholesky, counts, strict=True):
            noise = random.standard_normal((int(count), mean.shape[0]))
            parts.append(mean + noise @ factor.T)
        drawn = np.concatenate(parts)
        drawn /= np.linalg.norm(drawn, axis=1, keepdims=True)
        return np.ascontiguousarray(drawn, dtype=np.float32)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            weights=self.weights,
            means=self.means.astype(np.float32),
            cholesky=self.cholesky.astype(np.float32),
            samples=np.int64(self.samples),
            seed=np.int64(self.seed),
        )

    @classmethod
    def load(cls, path: Path) -> CohortMixture:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    weights=np.asarray(data["weights"], dtype=np.float64),
                    means=np.asarray(data["means"], dtype=np.float64),
                    cholesky=np.asarray(data["cholesky"], dtype=np.float64),
                    samples=int(data["samples"]),
                    seed=int(data["seed"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ModelUnavailable(f"cohort mixture {path}: {exc}") from None


@dataclass(frozen=True)
class BuiltInCohort:
    """The default model version's cohort scoring: the cohort, and how FPIR of the score
    d1 / c grows with the gallery size (its tau follows the gallery as the distance's
    does). Below `min_gallery` entries the score does not help (docs/open-set.md), and
    the service decides on the distance."""

    cohort: Cohort
    model: GalleryModel
    fpir: float
    min_gallery: int

    @classmethod
    def of(cls, spec: Mapping[str, Any], dim: int) -> BuiltInCohort:
        mixture = CohortMixture.load(Path(spec["mixture"]))
        vectors = mixture.draw()
        if vectors.shape[1] != dim:
            raise ModelUnavailable(f"built-in cohort is {vectors.shape[1]}-d, model {dim}-d")
        return cls(
            cohort=Cohort(vectors, int(spec["k"])),
            model=GalleryModel.from_dict(spec["gallery_model"]),
            fpir=float(spec["fpir"]),
            min_gallery=int(spec["min_gallery"]),
        )

    def applies(self, gallery_size: int) -> bool:
        return gallery_size >= self.min_gallery

    def tau(self, gallery_size: int) -> float:
        return self.model.tau_for_fpir(self.fpir, max(gallery_size, 1))
