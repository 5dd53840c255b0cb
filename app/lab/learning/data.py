"""Labelled sets for training: embeddings from the evaluation cache, a seeded split by
identity, and subsets that the shared protocol can evaluate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.embedding import embed_set

EmbeddingMap = dict[Path, npt.NDArray[Any] | None]


def cached_embeddings(
    pipeline: FacePipeline, face_set: FaceSet, cache_dir: Path | None, progress: bool = True
) -> EmbeddingMap:
    """Every image's embedding (None: no face), through `facesvc eval`'s cache files
    (`cache_dir` None: no cache)."""
    return embed_set(pipeline, face_set, cache_dir, cache_dir is not None, progress)


@dataclass(frozen=True)
class IdentitySplit:
    train: list[str]  # sorted
    held_out: list[str]  # sorted


def split_identities(face_set: FaceSet, held_out: float, seed: int) -> IdentitySplit:
    """Identities with >= 2 images, sorted and permuted by default_rng(seed): the first
    round(held_out * n) are held out. Identities with one image cannot form a genuine pair
    in the protocol, so they always go to training (as negatives)."""
    if not 0.0 < held_out < 1.0:
        raise ValueError("the held-out share must be between 0 and 1")
    names = face_set.identities_with_at_least(2)
    order = np.random.default_rng(seed).permutation(len(names))
    count = round(held_out * len(names))
    test = {names[i] for i in order[:count]}
    return IdentitySplit(train=sorted(set(face_set.identities) - test), held_out=sorted(test))


def subset(face_set: FaceSet, names: list[str], suffix: str) -> FaceSet:
    """The same set restricted to `names` (no pairs file: it would name other people)."""
    identities = {name: face_set.identities[name] for name in sorted(names)}
    return FaceSet(face_set.root, f"{face_set.name}-{suffix}", identities, None)


@dataclass(frozen=True)
class LabelledVectors:
    """The embedded images of some identities: vectors, integer labels, and their paths."""

    vectors: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    paths: list[Path]


def labelled_vectors(face_set: FaceSet, embeddings: EmbeddingMap) -> LabelledVectors:
    """Images whose embedding exists (failed images are left out), labelled by identity."""
    rows, labels, paths = [], [], []
    for label, files in enumerate(face_set.identities.values()):
        for path in files:
            vector = embeddings[path]
            if vector is not None:
                rows.append(np.asarray(vector, dtype=np.float32))
                labels.append(label)
                paths.append(path)
    return LabelledVectors(
        np.stack(rows) if rows else np.zeros((0, 0), np.float32),
        np.asarray(labels, dtype=np.int64),
        paths,
    )
