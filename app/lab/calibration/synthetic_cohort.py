"""The built-in cohort of the default model version, and how it is measured.

A cohort of real people's embeddings cannot ship with the package (their photos' licence,
and embeddings are biometric data). What ships instead is a mixture of Gaussians fitted
to the embeddings of people who are never probes (the calibration half's one-photo
people): a few components, each the mean and a covariance of dozens of people, shrunk
towards its diagonal. The service draws its cohort from it at start-up
(`app.core.decision.cohort.CohortMixture`). Measured against the real cohort it was
fitted on in docs/open-set.md: as good on held-out people.

Its 1:N tau follows the gallery size: a gallery model (`app/lab/calibration/gallery.py`)
fitted on the calibration half's cohort scores d / c instead of distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.core.decision.cohort import Cohort, CohortMixture
from app.core.decision.open_set import GalleryModel
from app.lab.calibration.data import search_matrix
from app.lab.calibration.gallery import fit_gallery_model
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray
from app.lab.evaluation.protocol import EmbeddingMap

COMPONENTS = 8  # 25 to 117 of the 594 people per component (lfw_dev): no one person shows
SHRINK = 0.5  # covariance halfway to its diagonal: full rank from a few dozen people
SAMPLES = 10_000
SEED = 0
MIN_GALLERY = 10  # below it the score does not help (docs/open-set.md section 2)


def kmeans_labels(vectors: FloatArray, components: int, seed: int, rounds: int = 50) -> Any:
    """Lloyd's k-means from `components` rows drawn with `seed`; the label of each row."""
    rng = np.random.default_rng(seed)
    centres = vectors[rng.choice(len(vectors), components, replace=False)]
    labels = np.zeros(len(vectors), dtype=np.int64)
    for _ in range(rounds):
        gaps = ((vectors[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = gaps.argmin(axis=1)
        centres = np.array(
            [
                vectors[labels == j].mean(axis=0) if (labels == j).any() else centres[j]
                for j in range(components)
            ]
        )
    return labels


def fit_mixture(
    vectors: FloatArray,
    components: int = COMPONENTS,
    shrink: float = SHRINK,
    samples: int = SAMPLES,
    seed: int = SEED,
) -> CohortMixture:
    """A mixture fitted to `vectors` (n, d): k-means clusters, each a Gaussian with the
    cluster's mean and its covariance shrunk by `shrink` towards the diagonal."""
    labels = kmeans_labels(vectors, components, seed)
    dim = vectors.shape[1]
    weights, means, factors = [], [], []
    for j in range(components):
        members = vectors[labels == j]
        if len(members) < 2:
            continue
        covariance = np.cov(members, rowvar=False)
        covariance = (1 - shrink) * covariance + shrink * np.diag(np.diag(covariance))
        covariance += 1e-9 * np.eye(dim)  # positive definite for Cholesky
        weights.append(len(members))
        means.append(members.mean(axis=0))
        factors.append(np.linalg.cholesky(covariance))
    return CohortMixture(
        weights=np.asarray(weights, dtype=np.float64),
        # at the precision the file keeps, so that what is measured here is what a
        # service draws from the saved file
        means=_as_stored(np.asarray(means)),
        cholesky=_as_stored(np.asarray(factors)),
        samples=samples,
        seed=seed,
    )


def _as_stored(values: FloatArray) -> FloatArray:
    return np.asarray(values.astype(np.float32), dtype=np.float64)


def score_model(face_set: FaceSet, embeddings: EmbeddingMap, cohort: Cohort) -> GalleryModel:
    """FPIR of the cohort score against gallery size, fitted on `face_set`'s searches."""
    search = search_matrix(face_set, embeddings, probe_scale=cohort.scales)
    return fit_gallery_model(search, "independent")


def built_in_spec(
    mixture_file: str, k: int, model: GalleryModel, fpir: float, source: str
) -> dict[str, Any]:
    """What a backbone's calibration carries (`Calibration.cohort`)."""
    return {
        "mixture": mixture_file,
        "k": k,
        "fpir": fpir,
        "min_gallery": MIN_GALLERY,
        "gallery_model": model.as_dict(),
        "source": source,
    }
