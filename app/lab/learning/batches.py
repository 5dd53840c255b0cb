"""Batches of P identities x K images for online triplet mining."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt


def pk_batches(
    labels: npt.NDArray[np.int64], identities: int, images: int, rng: np.random.Generator
) -> Iterator[npt.NDArray[np.int64]]:
    """One epoch: every identity with >= 2 images once, in random order, P per batch, each
    with min(K, its count) images drawn without replacement. Identities with one image
    join as extra negatives, at most P per batch, so they are not wasted. The last batch
    is kept when it still has two identities with positives."""
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(index)
    multi = [np.asarray(v) for v in groups.values() if len(v) >= 2]
    singles = np.asarray([v[0] for v in groups.values() if len(v) == 1], dtype=np.int64)
    singles = rng.permutation(singles)
    order = rng.permutation(len(multi))
    for batch_number, start in enumerate(range(0, len(order), identities)):
        chosen = order[start : start + identities]
        if len(chosen) < 2:
            break
        parts = [
            rng.choice(multi[i], size=min(images, multi[i].size), replace=False) for i in chosen
        ]
        extra = singles[batch_number * identities : (batch_number + 1) * identities]
        yield np.concatenate([*parts, extra]).astype(np.int64)
