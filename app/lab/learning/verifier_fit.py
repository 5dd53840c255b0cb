"""Fitting the pair verifier (app/core/model/verifier.py): maximum likelihood by full-batch
L-BFGS with mild L2 on the weights, and optional Platt scaling of its logit on pairs of
other identities (off by default: measured to hurt on lfw_dev, docs/learning.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from app.core.model.verifier import PairClassifier


@dataclass(frozen=True)
class VerifierConfig:
    hidden: int = 0
    weight_decay: float = 1e-3  # L2 on the weights, scaled per pair
    iterations: int = 200
    seed: int = 0


def _fit(
    parameters: list[nn.Parameter],
    logits: Callable[[], torch.Tensor],
    targets: torch.Tensor,
    penalty: Callable[[], torch.Tensor | float],
    iterations: int,
) -> None:
    """Full-batch L-BFGS on the mean binary cross-entropy plus `penalty()`."""
    optimiser = torch.optim.LBFGS(parameters, max_iter=iterations, line_search_fn="strong_wolfe")
    loss_fn = nn.BCEWithLogitsLoss()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(logits(), targets) + penalty()
        loss.backward()
        return loss

    optimiser.step(closure)


def train_classifier(
    features: torch.Tensor, same: torch.Tensor, config: VerifierConfig
) -> PairClassifier:
    torch.manual_seed(config.seed)
    model = PairClassifier(features.shape[1] // 2, config.hidden)
    model.mean.copy_(features.mean(dim=0))
    model.std.copy_(features.std(dim=0).clamp_min(1e-8))
    weights = [p for name, p in model.net.named_parameters() if name.endswith("weight")]
    _fit(
        list(model.net.parameters()),
        lambda: model.raw_logit(features),
        same.float(),
        lambda: config.weight_decay * sum((w * w).sum() for w in weights),
        config.iterations,
    )
    return model


def fit_platt(model: PairClassifier, features: torch.Tensor, same: torch.Tensor) -> None:
    """Fit p = sigmoid(A z + B) on held-aside pairs (z: the classifier's raw logit)."""
    with torch.no_grad():
        z = model.raw_logit(features)
    ab = nn.Parameter(torch.tensor([1.0, 0.0]))
    _fit([ab], lambda: ab[0] * z + ab[1], same.float(), lambda: 0.0, 100)
    with torch.no_grad():
        model.platt.copy_(ab.detach())
