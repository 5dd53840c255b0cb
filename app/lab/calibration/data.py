"""Distances a calibration needs, from a labelled set and its embeddings.

Identities are split (seeded, by identity) into a calibration part and a held-out part,
so that figures on the held-out part show how a tau carries over to new people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray
from app.lab.evaluation.protocol import (
    EmbeddingMap,
    all_pair_distances,
    embed_rows,
    embedding_dimension,
    pairwise_squared_distances,
)

IntArray = npt.NDArray[np.int64]


def split_identities(face_set: FaceSet, holdout: float, seed: int = 0) -> tuple[FaceSet, FaceSet]:
    """(calibration part, held-out part): identities sorted, permuted by default_rng(seed),
    the last round(holdout * n) held out. Neither part has a pairs file."""
    if not 0.0 <= holdout < 1.0:
        raise ValueError("holdout must be in [0, 1)")
    names = list(face_set.identities)
    order = np.random.default_rng(seed).permutation(len(names))
    held = round(holdout * len(names))
    held_names = {names[i] for i in order[len(names) - held :]} if held else set()

    def part(keep: bool) -> FaceSet:
        identities = {n: f for n, f in face_set.identities.items() if (n in held_names) != keep}
        return FaceSet(root=face_set.root, name=face_set.name, identities=identities)

    return part(True), part(False)


@dataclass(frozen=True)
class PairMatrix:
    """All image-by-image distances among identities with >= 2 images (PROTOCOL.md
    section 2's images); +inf where an image failed."""

    distances: FloatArray  # (n, n)
    labels: IntArray  # identity index per image, 0..k-1

    def genuine_and_impostor(self) -> tuple[FloatArray, FloatArray]:
        i, j = np.triu_indices(self.labels.size, k=1)
        same = self.labels[i] == self.labels[j]
        pairs = self.distances[i, j]
        return pairs[same], pairs[~same]


def pair_matrix(face_set: FaceSet, embeddings: EmbeddingMap) -> PairMatrix:
    dim = embedding_dimension(face_set, embeddings)
    distances, group_end = all_pair_distances(face_set, embeddings, dim)
    labels = np.unique(group_end, return_inverse=True)[1].astype(np.int64)
    return PairMatrix(distances=distances, labels=labels)


@dataclass(frozen=True)
class SearchMatrix:
    """Every identity enrolled with one image (its first that has a face); every other
    image searches that gallery. Row p, column g: the distance from probe p to entry g.

    Per probe, the entries of other identities are its impostors (the material of the
    gallery-size model) and its own identity's entry, if any, is its mate.
    """

    distances: FloatArray  # (probes, gallery); +inf for a failed probe
    probe_identity: IntArray  # identity index of each probe
    gallery_identity: IntArray  # identity index of each entry
    probe_failed: npt.NDArray[np.bool_]

    def impostor_mask(self) -> npt.NDArray[np.bool_]:
        return self.probe_identity[:, None] != self.gallery_identity[None, :]

    def mated_rows(self) -> tuple[IntArray, IntArray]:
        """(probe row, gallery column) of each probe whose identity is enrolled."""
        rows, cols = np.nonzero(~self.impostor_mask())
        return rows.astype(np.int64), cols.astype(np.int64)


def search_matrix(
    face_set: FaceSet,
    embeddings: EmbeddingMap,
    probe_scale: Callable[[FloatArray], FloatArray] | None = None,
) -> SearchMatrix:
    """`probe_scale`: each probe's row divided by its value on the probe's embedding (the
    cohort scale c, `app.core.decision.cohort`), making the matrix one of cohort scores."""
    dim = embedding_dimension(face_set, embeddings)
    gallery, probes = [], []
    gallery_identity: list[int] = []
    probe_identity: list[int] = []
    for index, files in enumerate(face_set.identities.values()):
        enrolled = next((f for f in files if embeddings[f] is not None), None)
        if enrolled is not None:
            gallery.append(enrolled)
            gallery_identity.append(index)
        others = [f for f in files if f != enrolled]
        probes.extend(others)
        probe_identity.extend([index] * len(others))
    gallery_rows = embed_rows(gallery, embeddings, dim)
    probe_rows = embed_rows(probes, embeddings, dim)
    distances = pairwise_squared_distances(probe_rows.vectors, gallery_rows.vectors)
    if probe_scale is not None:
        distances /= probe_scale(probe_rows.vectors)[:, None]
    distances[probe_rows.failed, :] = np.inf
    return SearchMatrix(
        distances=distances,
        probe_identity=np.asarray(probe_identity, dtype=np.int64),
        gallery_identity=np.asarray(gallery_identity, dtype=np.int64),
        probe_failed=probe_rows.failed,
    )
