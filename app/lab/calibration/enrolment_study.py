"""One photo or three per enrolled person, and how to decide with several.

People with at least 4 images (faces on the first four): per enrolment seed, half of them
are enrolled with their first image, or with their first three; their images from the
4th on search the gallery (the same mated searches either way), and every image of every
person not enrolled is a non-mated search. Embeddings are L2-normalised. With several
photos a person's distance is:

- `best_face`: the nearest of their enrolled faces (what the service does today);
- `template`: the distance to the mean of their normalised embeddings, re-normalised;
- `both`: the mean of the two.

tau for FPIR 1e-2 is chosen on the calibration identities (pooled over seeds) and
applied to the held-out ones, next to the held-out half's own FNIR at FPIR 1e-2.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.lab.calibration.gallery_scores import l2_normalised
from app.lab.evaluation import metrics
from app.lab.evaluation.dataset import FaceSet
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches
from app.lab.evaluation.protocol import (
    EmbeddingMap,
    embed_rows,
    embedding_dimension,
    pairwise_squared_distances,
)

MODES = ("best_face", "template", "both")
PHOTOS = (1, 3)


def eligible(face_set: FaceSet, embeddings: EmbeddingMap, photos: int = 4) -> list[str]:
    """People with >= `photos` images whose first `photos` all have a face."""
    return [
        name
        for name, files in face_set.identities.items()
        if len(files) >= photos and all(embeddings[f] is not None for f in files[:photos])
    ]


def _vectors(paths: list[Any], embeddings: EmbeddingMap, dim: int) -> tuple[FloatArray, Any]:
    rows = embed_rows(paths, embeddings, dim)
    return l2_normalised(rows.vectors), rows.failed


def person_distances(probes: FloatArray, enrolled: list[FloatArray], mode: str) -> FloatArray:
    """(probes, people): each person's distance under `mode`; `enrolled[i]` holds person
    i's normalised embeddings, one per row."""
    best = np.stack(
        [pairwise_squared_distances(probes, faces).min(axis=1) for faces in enrolled], axis=1
    )
    if mode == "best_face":
        return best
    templates = l2_normalised(np.stack([faces.mean(axis=0) for faces in enrolled]))
    template = pairwise_squared_distances(probes, templates)
    if mode == "template":
        return template
    if mode == "both":
        return np.asarray((best + template) / 2.0, dtype=np.float64)
    raise ValueError(f"unknown mode {mode!r}")


def searches(
    face_set: FaceSet, embeddings: EmbeddingMap, photos: int, mode: str, seed: int
) -> OpenSetSearches:
    dim = embedding_dimension(face_set, embeddings)
    people = eligible(face_set, embeddings)
    order = np.random.default_rng(seed).permutation(len(people))
    enrolled = sorted(people[i] for i in order[: len(people) // 2])
    taken = set(enrolled)
    faces = [_vectors(face_set.identities[n][:photos], embeddings, dim)[0] for n in enrolled]
    mated = [(i, p) for i, n in enumerate(enrolled) for p in face_set.identities[n][4:]]
    non_mated = [p for n, files in face_set.identities.items() if n not in taken for p in files]

    def search(paths: list[Any]) -> tuple[FloatArray, Any]:
        vectors, failed = _vectors(paths, embeddings, dim)
        d = person_distances(vectors, faces, mode)
        nearest = np.argmin(d, axis=1)
        value = d[np.arange(len(paths)), nearest]
        return np.where(failed, np.inf, value), nearest

    mated_d, nearest = search([p for _, p in mated])
    non_mated_d, _ = search(non_mated)
    truth = np.array([i for i, _ in mated], dtype=np.int64)
    return OpenSetSearches(
        mated_distances=mated_d,
        mated_correct=(nearest == truth) & np.isfinite(mated_d),
        non_mated_distances=non_mated_d,
    )


def study(
    calibration: FaceSet,
    held_out: FaceSet,
    embeddings: EmbeddingMap,
    splits: int = 5,
    fpir: float = 1e-2,
) -> dict[str, Any]:
    rows = []
    for photos in PHOTOS:
        for mode in MODES if photos > 1 else ("best_face",):
            tune = [searches(calibration, embeddings, photos, mode, s) for s in range(splits)]
            test = [searches(held_out, embeddings, photos, mode, s) for s in range(splits)]
            pooled = np.concatenate([t.non_mated_distances for t in tune])
            tau = metrics.threshold_for_rate(pooled, fpir)
            rows.append(
                {
                    "photos": photos,
                    "mated_searches": float(np.mean([t.mated_correct.size for t in test])),
                    "non_mated_searches": float(
                        np.mean([t.non_mated_distances.size for t in test])
                    ),
                    "mode": mode,
                    "rank1": float(np.mean([metrics.rank1_accuracy(t) for t in test])),
                    "fnir_own_tau": float(
                        np.mean([metrics.fnir_at_fpir(t, fpir)[0] for t in test])
                    ),
                    "tau_calibration": tau,
                    "fpir_at_calibration_tau": float(
                        np.mean(
                            [metrics.fpir_at_threshold(t.non_mated_distances, tau) for t in test]
                        )
                    ),
                    "fnir_at_calibration_tau": float(
                        np.mean([metrics.fnir_at_threshold(t, tau) for t in test])
                    ),
                }
            )
    return {
        "people_calibration": len(eligible(calibration, embeddings)),
        "people_held_out": len(eligible(held_out, embeddings)),
        "splits": splits,
        "fpir": fpir,
        "rows": rows,
    }
