"""Verification as binary classification: a logistic unit (or a small MLP) on the pair
features |f(a) - f(b)| and (f(a) - f(b))^2, whose output is the calibrated probability.
This is what the service loads; the fitting (maximum likelihood, optional Platt scaling)
and the writing of the file are in the lab (app/lab/learning/verifier_fit.py, model_files.py).

The probability is P(same person | pair) at even prior odds: training and calibration
use as many impostor pairs as genuine ones. For another prior, add log(prior odds) to the
logit. A verifier belongs to the model (name, version) whose embeddings it was trained on;
the service refuses to load it with another.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from app.core.model.checkpoint import Checkpoint, load_checkpoint, require_model

KIND = "verifier"


def pair_features(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d), (n, d) -> (n, 2d): |a - b| and (a - b)^2, symmetric in a and b."""
    diff = a - b
    return torch.cat([diff.abs(), diff * diff], dim=-1)


class PairClassifier(nn.Module):
    """Standardised pair features -> logit; `hidden` = 0 is the logistic unit."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.register_buffer("mean", torch.zeros(2 * dim))
        self.register_buffer("std", torch.ones(2 * dim))
        self.net: nn.Module = (
            nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
            if hidden
            else nn.Linear(2 * dim, 1)
        )
        # Platt scaling of the logit, fitted after the classifier on other identities.
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))

    platt: torch.Tensor

    def raw_logit(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The calibrated logit."""
        return self.platt[0] * self.raw_logit(features) + self.platt[1]


class Verifier:
    """A loaded verifier file: probability that two embeddings show the same person."""

    def __init__(self, model: PairClassifier, checkpoint: Checkpoint) -> None:
        self.model = model.eval()
        self.version = checkpoint.version
        self.header = checkpoint.header

    def logits(self, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
        ta = torch.as_tensor(np.atleast_2d(np.asarray(a, dtype=np.float32)))
        tb = torch.as_tensor(np.atleast_2d(np.asarray(b, dtype=np.float32)))
        with torch.inference_mode():
            return self.model(pair_features(ta, tb)).double().numpy()

    def probabilities(self, a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return 1.0 / (1.0 + np.exp(-self.logits(a, b)))

    def probability(self, a: npt.ArrayLike, b: npt.ArrayLike) -> float:
        return float(self.probabilities(a, b)[0])


def load_verifier(path: Path, model: tuple[str, str] | None = None) -> Verifier:
    """Load a verifier file; with `model`, it must have been trained on that model."""
    checkpoint = load_checkpoint(path, KIND)
    if model is not None:
        require_model(checkpoint, path, model)
    classifier = PairClassifier(int(checkpoint.header["dim"]), int(checkpoint.header["hidden"]))
    classifier.load_state_dict(checkpoint.tensors, strict=True)
    return Verifier(classifier, checkpoint)
