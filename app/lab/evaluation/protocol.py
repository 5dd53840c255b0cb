"""The shared PROTOCOL.md over a face set and its embeddings: builds pairs and searches,
then reports every figure as one JSON-serialisable dict.

Choices the protocol leaves open (all documented where they are made):
- impostor sampling: `impostor_pair_indices`;
- enrolment split: floor(n/2) enrolled, `enrolment_split`;
- ties in the nearest gallery entry go to the first in identity-name order;
- a figure whose section does not apply (no pairs file, no impostor pairs, empty
  gallery) is None, and so is a whole map such as `tar_at_far`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.decision.open_set_rule import OpenSetRule
from app.lab.evaluation import metrics
from app.lab.evaluation.dataset import FaceSet, read_lfw_pairs
from app.lab.evaluation.figures import (
    identification_figures,
    no_verification,
    threshold_figures,
    verification_figures,
)
from app.lab.evaluation.metrics import FloatArray, OpenSetSearches, PairFold

IMPOSTOR_PAIR_LIMIT = 5_000_000
SEED = 0

IntArray = npt.NDArray[np.int64]
EmbeddingMap = Mapping[Path, npt.NDArray[Any] | None]
# (n, d), (m, d) -> (n, m) scores, smaller = more alike; the protocol's is the squared
# distance, a learned verifier passes its own (app/lab/learning/scores.py)
PairDistances = Callable[[FloatArray, FloatArray], FloatArray]


# --- embeddings and distances ---------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedImages:
    """Images with their embeddings as float64 rows; a failed image has a zero row."""

    paths: list[Path]
    vectors: FloatArray  # (n, dim)
    failed: npt.NDArray[np.bool_]


def embed_rows(paths: list[Path], embeddings: EmbeddingMap, dim: int) -> EmbeddedImages:
    vectors = np.zeros((len(paths), dim), dtype=np.float64)
    failed = np.zeros(len(paths), dtype=bool)
    for row, path in enumerate(paths):
        embedding = embeddings[path]
        if embedding is None:
            failed[row] = True
        else:
            vectors[row] = np.asarray(embedding, dtype=np.float64)
    return EmbeddedImages(paths, vectors, failed)


def embedding_dimension(face_set: FaceSet, embeddings: EmbeddingMap) -> int:
    """Checks that every image has an entry and all embeddings are vectors of one size."""
    missing = [path for path in face_set.images if path not in embeddings]
    if missing:
        raise ValueError(f"no embedding entry for {len(missing)} images, e.g. {missing[0]}")
    shapes = {np.shape(e) for p in face_set.images if (e := embeddings[p]) is not None}
    if len(shapes) > 1 or any(len(shape) != 1 for shape in shapes):
        raise ValueError(f"embeddings must be vectors of one length, got shapes {sorted(shapes)}")
    return shapes.pop()[0] if shapes else 0


def pairwise_squared_distances(a: FloatArray, b: FloatArray) -> FloatArray:
    """||a_i - b_j||^2 for all rows, in float64 via ||a||^2 + ||b||^2 - 2 a.b.

    Clipped at 0 because the expansion can round a true 0 slightly below it.
    """
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a_sq = np.einsum("ij,ij->i", a64, a64)
    b_sq = np.einsum("ij,ij->i", b64, b64)
    distances = a_sq[:, None] + b_sq[None, :] - 2.0 * (a64 @ b64.T)
    return np.maximum(distances, 0.0)


# --- section 1 ------------------------------------------------------------------------


def lfw_pair_folds(face_set: FaceSet, embeddings: EmbeddingMap, dim: int) -> list[PairFold]:
    """Distances of every pair in the set's pairs file; NaN where an image failed."""
    if face_set.pairs_file is None:
        raise ValueError(f"set {face_set.name} has no pairs file")
    pair_folds = []
    for fold in read_lfw_pairs(face_set.pairs_file, face_set):
        pairs = fold.matched + fold.mismatched
        first = embed_rows([a for a, _ in pairs], embeddings, dim)
        second = embed_rows([b for _, b in pairs], embeddings, dim)
        diff = first.vectors - second.vectors
        distances = np.einsum("ij,ij->i", diff, diff)
        distances[first.failed | second.failed] = np.nan
        same = np.arange(len(pairs)) < len(fold.matched)
        pair_folds.append(PairFold(distances=distances, same=same))
    return pair_folds


# --- section 2 ------------------------------------------------------------------------


def identity_groups(face_set: FaceSet, names: list[str]) -> tuple[list[Path], IntArray]:
    """The images of `names` in order, and per image the index one past its identity's last."""
    paths: list[Path] = []
    group_end: list[int] = []
    for name in names:
        files = face_set.identities[name]
        paths.extend(files)
        group_end.extend([len(paths)] * len(files))
    return paths, np.asarray(group_end, dtype=np.int64)


def genuine_pair_indices(group_end: IntArray) -> tuple[IntArray, IntArray]:
    """Every same-identity pair (i < j)."""
    rows, cols = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    ends = np.unique(group_end)
    starts = np.concatenate([[0], ends[:-1]])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        i, j = np.triu_indices(end - start, k=1)
        rows.append(i + start)
        cols.append(j + start)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def impostor_pair_indices(
    group_end: IntArray, limit: int = IMPOSTOR_PAIR_LIMIT, seed: int = SEED
) -> tuple[IntArray, IntArray]:
    """Every cross-identity pair (i < j), or a uniform sample of `limit` of them.

    The impostor pairs are numbered 0..M-1 in row-major order (i, then j) over the images
    in identity-name, then file-name order; image i's impostors are j = group_end[i]..n-1.
    When M > limit the sample is `np.sort(default_rng(seed).choice(M, size=limit,
    replace=False, shuffle=False))`, decoded to (i, j) without listing all M pairs.
    """
    n = group_end.size
    per_row = n - group_end
    row_end = np.cumsum(per_row)
    total = int(row_end[-1]) if n else 0
    if total > limit:
        rng = np.random.default_rng(seed)
        numbers = np.sort(rng.choice(total, size=limit, replace=False, shuffle=False))
    else:
        numbers = np.arange(total, dtype=np.int64)
    rows = np.searchsorted(row_end, numbers, side="right")
    cols = group_end[rows] + (numbers - (row_end[rows] - per_row[rows]))
    return rows.astype(np.int64), cols.astype(np.int64)


def all_pair_distances(
    face_set: FaceSet,
    embeddings: EmbeddingMap,
    dim: int,
    pair_distances: PairDistances = pairwise_squared_distances,
) -> tuple[FloatArray, IntArray]:
    """Distances between all images of identities with >= 2 images (+inf where one
    failed), in `identity_groups` order, and that order's group ends."""
    paths, group_end = identity_groups(face_set, face_set.identities_with_at_least(2))
    images = embed_rows(paths, embeddings, dim)
    distances = pair_distances(images.vectors, images.vectors)
    distances[images.failed, :] = np.inf
    distances[:, images.failed] = np.inf
    return distances, group_end


def genuine_and_impostor(
    distances: FloatArray, group_end: IntArray
) -> tuple[FloatArray, FloatArray]:
    """The genuine and the (sampled) impostor pairs' entries of `all_pair_distances`."""
    return distances[genuine_pair_indices(group_end)], distances[impostor_pair_indices(group_end)]


def verification_distances(
    face_set: FaceSet, embeddings: EmbeddingMap, dim: int
) -> tuple[FloatArray, FloatArray]:
    """(genuine, impostor) distances over identities with >= 2 images; +inf where one failed."""
    return genuine_and_impostor(*all_pair_distances(face_set, embeddings, dim))


# --- section 3 ------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolmentSplit:
    enrolled: list[str]  # in shuffled order
    not_enrolled: list[str]


def enrolment_split(face_set: FaceSet, seed: int = SEED) -> EnrolmentSplit:
    """Identities with >= 2 images, sorted, shuffled by default_rng(seed).permutation.

    The first floor(n/2) are enrolled (with odd n the extra identity is not enrolled).
    Permuting indices gives the same order as permuting the list of names itself.
    """
    names = face_set.identities_with_at_least(2)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    half = len(names) // 2
    return EnrolmentSplit(enrolled=shuffled[:half], not_enrolled=shuffled[half:])


@dataclass(frozen=True)
class OpenSetDesign:
    """Who is in the gallery (one image each) and which images search it."""

    gallery: list[tuple[str, Path]]  # sorted by identity name
    mated: list[tuple[str, Path]]  # (true identity, probe)
    non_mated: list[Path]


def open_set_design(face_set: FaceSet, embeddings: EmbeddingMap) -> OpenSetDesign:
    """Enrol each enrolled identity's first file; a failed one leaves the identity unenrolled.

    The probes of an unenrolled identity (its other images) become non-mated searches.
    """
    split = enrolment_split(face_set)
    gallery: list[tuple[str, Path]] = []
    mated: list[tuple[str, Path]] = []
    non_mated: list[Path] = []
    for name in sorted(split.enrolled):
        enrol_image, *probes = face_set.identities[name]
        if embeddings[enrol_image] is None:
            non_mated.extend(probes)
        else:
            gallery.append((name, enrol_image))
            mated.extend((name, probe) for probe in probes)
    for name in split.not_enrolled:
        non_mated.extend(face_set.identities[name])
    return OpenSetDesign(gallery=gallery, mated=mated, non_mated=non_mated)


def nearest_gallery_entries(
    probes: EmbeddedImages,
    gallery: EmbeddedImages,
    pair_distances: PairDistances = pairwise_squared_distances,
) -> tuple[FloatArray, IntArray]:
    """(distance, gallery index) of each probe's nearest entry; a failed probe gets +inf."""
    distances = pair_distances(probes.vectors, gallery.vectors)
    nearest = np.argmin(distances, axis=1)  # ties: the first entry in gallery order
    nearest_distance = distances[np.arange(len(probes.paths)), nearest]
    nearest_distance[probes.failed] = np.inf
    return nearest_distance, nearest.astype(np.int64)


def open_set_searches(
    face_set: FaceSet,
    embeddings: EmbeddingMap,
    dim: int,
    pair_distances: PairDistances = pairwise_squared_distances,
    probe_scale: Callable[[FloatArray], FloatArray] | None = None,
    distance_cap: float | None = None,
) -> OpenSetSearches | None:
    """The searches of section 3, or None when the gallery is empty. `probe_scale`: each
    search's nearest distance divided by its value on the probe (the cohort scale c), as
    the service scores with a cohort; the nearest entry is the same either way. With it,
    `distance_cap`: a search whose nearest distance is above it is never accepted (its
    score becomes +inf), as the service's built-in cohort rule decides."""
    design = open_set_design(face_set, embeddings)
    if not design.gallery:
        return None
    gallery = embed_rows([path for _, path in design.gallery], embeddings, dim)
    mated = embed_rows([path for _, path in design.mated], embeddings, dim)
    non_mated = embed_rows(design.non_mated, embeddings, dim)
    mated_distances, mated_nearest = nearest_gallery_entries(mated, gallery, pair_distances)
    gallery_names = np.array([name for name, _ in design.gallery], dtype=object)
    true_names = np.array([name for name, _ in design.mated], dtype=object)
    mated_correct = (gallery_names[mated_nearest] == true_names) & ~mated.failed
    non_mated_distances, _ = nearest_gallery_entries(non_mated, gallery, pair_distances)
    if probe_scale is not None:
        mated_distances = _scaled(mated_distances, probe_scale(mated.vectors), distance_cap)
        non_mated_distances = _scaled(
            non_mated_distances, probe_scale(non_mated.vectors), distance_cap
        )
    return OpenSetSearches(
        mated_distances=mated_distances,
        mated_correct=np.asarray(mated_correct, dtype=bool),
        non_mated_distances=non_mated_distances,
    )


def _scaled(distances: FloatArray, scales: FloatArray, cap: float | None) -> FloatArray:
    scores = distances / scales
    return scores if cap is None else np.where(distances > cap, np.inf, scores)


# --- the report -----------------------------------------------------------------------


def evaluate(
    face_set: FaceSet,
    embeddings: Mapping[Path, np.ndarray | None],
    *,
    model: str,
    default_tau: float,
    threshold: float | None = None,
    open_set_rule: Callable[[int], OpenSetRule] | None = None,
) -> dict[str, Any]:
    """Every figure of PROTOCOL.md for one set, as a JSON-serialisable dict.

    `embeddings` needs an entry for every image of the set (None = no face found). Keys
    are those PROTOCOL.md lists, plus `failed_files` and a few counts; with `threshold`,
    also the section 4 rates measured at that fixed tau. `open_set_rule`: section 3 is
    scored as the service decides for a gallery of that size (the cohort score where the
    rule has one) and its default tau replaces `default_tau`.
    """
    dim = embedding_dimension(face_set, embeddings)
    failed_files = [face_set.relative(p) for p in face_set.images if embeddings[p] is None]
    report: dict[str, Any] = {}
    report.update(_lfw_figures(face_set, embeddings, dim))
    genuine, impostor = verification_distances(face_set, embeddings, dim)
    has_pairs = genuine.size > 0 and impostor.size > 0
    report.update(verification_figures(genuine, impostor) if has_pairs else no_verification())
    gallery_size = len(open_set_design(face_set, embeddings).gallery)
    rule = None if open_set_rule is None else open_set_rule(gallery_size)
    scale = None if rule is None or rule.cohort is None else rule.cohort.scales
    cap = None if rule is None else rule.distance_cap
    searches = open_set_searches(face_set, embeddings, dim, probe_scale=scale, distance_cap=cap)
    report.update(identification_figures(searches, default_tau if rule is None else rule.tau))
    report.update(open_set_score="distance" if rule is None else rule.name)
    report.update(gallery_size=gallery_size)
    report.update(
        images=len(face_set.images),
        failed_images=len(failed_files),
        model=model,
        set=face_set.name,
        failed_files=failed_files,
        genuine_pairs=int(genuine.size),
        impostor_pairs=int(impostor.size),
        mated_searches=0 if searches is None else int(searches.mated_correct.size),
        non_mated_searches=0 if searches is None else int(searches.non_mated_distances.size),
    )
    if threshold is not None:
        report.update(threshold_figures(genuine, impostor, searches, float(threshold)))
    return report


def _lfw_figures(face_set: FaceSet, embeddings: EmbeddingMap, dim: int) -> dict[str, Any]:
    if face_set.pairs_file is None:
        return {"lfw_accuracy_mean": None, "lfw_accuracy_std": None, "lfw_folds": None}
    folds = lfw_pair_folds(face_set, embeddings, dim)
    mean, std = metrics.lfw_accuracy(folds)
    per_fold = [
        {"tau": result.tau, "accuracy": result.accuracy}
        for result in metrics.lfw_fold_results(folds)
    ]
    return {"lfw_accuracy_mean": mean, "lfw_accuracy_std": std, "lfw_folds": per_fold}
