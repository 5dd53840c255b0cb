"""The triplet loss of FaceNet (Schroff et al. 2015) over mined (anchor, positive, negative)
index triplets.

L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0), reduced over the
triplets by `mean` (the default: the step size then does not depend on how many triplets
the miner returns) or `sum`.
"""

from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["mean", "sum"]


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """(n, n) matrix of ||e_i - e_j||^2, computed from differences (exact 0 on the diagonal,
    and no negative values from cancellation as with the |a|^2 + |b|^2 - 2ab expansion)."""
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    return (diff * diff).sum(dim=-1)


def triplet_losses(distances: torch.Tensor, triplets: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-triplet loss max(d(a, p) - d(a, n) + margin, 0); `triplets` is (m, 3) indices."""
    anchor, positive, negative = triplets.unbind(dim=1)
    return torch.relu(distances[anchor, positive] - distances[anchor, negative] + margin)


def triplet_loss(
    distances: torch.Tensor,
    triplets: torch.Tensor,
    margin: float,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """The reduced loss; 0 (with a gradient path) when there is no triplet."""
    if triplets.numel() == 0:
        return distances.sum() * 0.0
    losses = triplet_losses(distances, triplets, margin)
    return losses.mean() if reduction == "mean" else losses.sum()
