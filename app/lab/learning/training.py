"""The triplet training loop, shared by the head (on cached embeddings) and the
backbone's last blocks (on aligned crops)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from app.lab.learning.batches import pk_batches
from app.lab.learning.mining import Mining, mine
from app.lab.learning.triplet import Reduction, squared_distances, triplet_loss, triplet_losses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TripletConfig:
    mining: Mining = "batch-hard"
    margin: float = 0.2
    reduction: Reduction = "mean"
    identities_per_batch: int = 16  # P
    images_per_identity: int = 4  # K
    epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    loss: float  # mean over the epoch's batches of the reduced batch loss
    active_fraction: float  # mined triplets with a non-zero loss
    triplets: int


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def train_triplet(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: npt.NDArray[np.int64],
    config: TripletConfig,
    *,
    device: torch.device,
    augment: Augment | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """Train `model` (inputs -> embeddings) in place; only parameters with requires_grad
    are optimised (Adam). Returns the per-epoch statistics."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    label_tensor = torch.as_tensor(labels)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses, active, total = [], 0, 0
        for batch in pk_batches(
            labels, config.identities_per_batch, config.images_per_identity, rng
        ):
            x = inputs[torch.as_tensor(batch)].to(device)
            if augment is not None:
                x = augment(x, generator)
            embeddings = model(x)
            distances = squared_distances(embeddings)
            batch_labels = label_tensor[torch.as_tensor(batch)].to(device)
            triplets = mine(config.mining, distances, batch_labels, generator)
            loss = triplet_loss(distances, triplets, config.margin, config.reduction)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                per_triplet = triplet_losses(distances, triplets, config.margin)
            losses.append(loss.item())
            active += int((per_triplet > 0).sum())
            total += int(triplets.shape[0])
        stats = EpochStats(
            epoch, float(np.mean(losses)) if losses else 0.0, active / max(total, 1), total
        )
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    model.eval()
    return history
