"""Online triplet mining inside a batch of P identities x K images.

Every rule returns an (m, 3) tensor of (anchor, positive, negative) indices into the
batch, chosen from the current squared distances (no gradient flows through the choice):

- batch-hard (Hermans et al. 2017): one triplet per anchor that has a positive and a
  negative, with its farthest positive and its nearest negative;
- semi-hard (FaceNet): one triplet per ordered (anchor, positive) pair, with the nearest
  negative that is farther than the positive (it is active when it lies inside the
  margin). When no negative is farther than the positive, the farthest negative is taken,
  as TensorFlow Addons' `triplet_semihard_loss` does;
- random: one triplet per ordered (anchor, positive) pair with a uniformly drawn negative,
  for comparison.
"""

from __future__ import annotations

from typing import Literal

import torch

Mining = Literal["batch-hard", "semi-hard", "random"]
MINING_RULES: tuple[Mining, ...] = ("batch-hard", "semi-hard", "random")


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positives, negatives


def batch_hard(distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    positives, negatives = _masks(labels)
    d = distances.detach()
    anchors = torch.nonzero(positives.any(1) & negatives.any(1)).flatten()
    hardest_positive = d.masked_fill(~positives, float("-inf")).argmax(dim=1)
    hardest_negative = d.masked_fill(~negatives, float("inf")).argmin(dim=1)
    return torch.stack([anchors, hardest_positive[anchors], hardest_negative[anchors]], dim=1)


def _anchor_positive_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    positives, negatives = _masks(labels)
    pairs = torch.nonzero(positives & negatives.any(1, keepdim=True))
    return pairs[:, 0], pairs[:, 1]


def semi_hard(distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    _, negatives = _masks(labels)
    d = distances.detach()
    anchor, positive = _anchor_positive_pairs(labels)
    d_an = d[anchor]  # (m, n): each pair's anchor row
    d_ap = d[anchor, positive][:, None]
    is_negative = negatives[anchor]
    farther = is_negative & (d_an > d_ap)
    nearest_farther = d_an.masked_fill(~farther, float("inf")).argmin(dim=1)
    farthest = d_an.masked_fill(~is_negative, float("-inf")).argmax(dim=1)
    negative = torch.where(farther.any(dim=1), nearest_farther, farthest)
    return torch.stack([anchor, positive, negative], dim=1)


def random_negatives(
    distances: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    _, negatives = _masks(labels)
    anchor, positive = _anchor_positive_pairs(labels)
    weights = negatives[anchor].to(torch.float64).cpu()
    negative = torch.multinomial(weights, 1, generator=generator).flatten().to(labels.device)
    return torch.stack([anchor, positive, negative], dim=1)


def mine(
    rule: Mining, distances: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    if rule == "batch-hard":
        return batch_hard(distances, labels)
    if rule == "semi-hard":
        return semi_hard(distances, labels)
    if rule == "random":
        return random_negatives(distances, labels, generator)
    raise ValueError(f"unknown mining rule {rule!r}; known: {', '.join(MINING_RULES)}")
