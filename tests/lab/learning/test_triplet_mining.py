"""The triplet loss and every mining rule against small examples computed by hand.

Embeddings are points on a line, so every squared distance is easy to check:
x = [0, 1, 1.5, 3.5], labels [a, a, b, b], margin 2:

    d(0,1) = 1     d(0,2) = 2.25   d(0,3) = 12.25
    d(1,2) = 0.25  d(1,3) = 6.25   d(2,3) = 4
"""

from __future__ import annotations

import pytest
import torch

from app.lab.learning.mining import batch_hard, mine, random_negatives, semi_hard
from app.lab.learning.triplet import squared_distances, triplet_loss, triplet_losses

MARGIN = 2.0


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.tensor([[0.0], [1.0], [1.5], [3.5]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    return x, labels, squared_distances(x)


def test_squared_distances(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    _, _, d = batch
    expected = torch.tensor(
        [
            [0.0, 1.0, 2.25, 12.25],
            [1.0, 0.0, 0.25, 6.25],
            [2.25, 0.25, 0.0, 4.0],
            [12.25, 6.25, 4.0, 0.0],
        ]
    )
    torch.testing.assert_close(d, expected)


def test_loss_is_hinge_on_the_distance_gap() -> None:
    d = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 0.5], [3.0, 0.5, 0.0]])
    triplets = torch.tensor([[0, 1, 2], [1, 0, 2]])
    # (1 - 3 + 0.5) -> 0 ; (1 - 0.5 + 0.5) = 1
    torch.testing.assert_close(triplet_losses(d, triplets, 0.5), torch.tensor([0.0, 1.0]))
    assert triplet_loss(d, triplets, 0.5, "sum").item() == pytest.approx(1.0)
    assert triplet_loss(d, triplets, 0.5, "mean").item() == pytest.approx(0.5)


def test_batch_hard(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    x, labels, d = batch
    triplets = batch_hard(d, labels)
    # anchor: farthest positive, nearest negative
    assert triplets.tolist() == [[0, 1, 2], [1, 0, 2], [2, 3, 1], [3, 2, 1]]
    losses = triplet_losses(d, triplets, MARGIN)
    # 1-2.25+2, 1-0.25+2, 4-0.25+2, max(4-6.25+2, 0)
    torch.testing.assert_close(losses, torch.tensor([0.75, 2.75, 5.75, 0.0]))
    loss = triplet_loss(d, triplets, MARGIN, "mean")
    assert loss.item() == pytest.approx(9.25 / 4)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_semi_hard(batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    _, labels, d = batch
    triplets = semi_hard(d, labels)
    # (0,1): negatives 2.25, 12.25 both farther than 1 -> nearest of them, 2 (inside margin)
    # (1,0): 0.25 is nearer than the positive, 6.25 farther -> 3 (beyond the margin)
    # (2,3): no negative farther than 4 -> the farthest negative, 0 (2.25)
    # (3,2): 12.25 and 6.25 farther than 4 -> nearest, 1
    assert triplets.tolist() == [[0, 1, 2], [1, 0, 3], [2, 3, 0], [3, 2, 1]]
    losses = triplet_losses(d, triplets, MARGIN)
    torch.testing.assert_close(losses, torch.tensor([0.75, 0.0, 3.75, 0.0]))
    assert triplet_loss(d, triplets, MARGIN, "sum").item() == pytest.approx(4.5)


def test_semi_hard_excludes_a_negative_at_the_positive_distance() -> None:
    # d(0,1) = 1 = d(0,2): equal is not farther, so 3 (d = 4) is chosen.
    x = torch.tensor([[0.0], [1.0], [-1.0], [2.0]])
    triplets = semi_hard(squared_distances(x), torch.tensor([0, 0, 1, 1]))
    assert triplets[0].tolist() == [0, 1, 3]


def test_anchor_without_positive_is_only_a_negative() -> None:
    x = torch.tensor([[0.0], [1.0], [1.5], [3.5], [0.9]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # identity 2 has one image
    d = squared_distances(x)
    hard = batch_hard(d, labels)
    assert hard[:, 0].tolist() == [0, 1, 2, 3]
    # anchor 1 (x=1): nearest negative is now the singleton at 0.9 (d = 0.01)
    assert hard[1].tolist() == [1, 0, 4]
    assert 4 not in semi_hard(d, labels)[:, :2].flatten().tolist()


def test_random_mining_draws_uniform_negatives(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    _, labels, d = batch
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([random_negatives(d, labels, generator) for _ in range(2000)])
    assert draws[0, :, :2].tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]]
    negatives = draws[:, :, 2]
    assert (labels[negatives] != labels[draws[:, :, 0]]).all()
    share_of_first = (negatives == torch.tensor([2, 2, 0, 0])).double().mean(dim=0)
    assert ((share_of_first > 0.45) & (share_of_first < 0.55)).all(), share_of_first
    again = random_negatives(d, labels, torch.Generator().manual_seed(0))
    assert again.tolist() == draws[0].tolist()  # seeded


def test_mine_dispatch_and_unknown_rule(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    _, labels, d = batch
    generator = torch.Generator().manual_seed(0)
    assert mine("batch-hard", d, labels, generator).tolist() == batch_hard(d, labels).tolist()
    assert mine("semi-hard", d, labels, generator).tolist() == semi_hard(d, labels).tolist()
    with pytest.raises(ValueError, match="unknown mining rule"):
        mine("hardest", d, labels, generator)  # type: ignore[arg-type]


def test_empty_triplets_give_zero_loss_with_gradient() -> None:
    x = torch.tensor([[0.0], [1.0]], requires_grad=True)
    loss = triplet_loss(squared_distances(x), torch.empty(0, 3, dtype=torch.long), MARGIN)
    assert loss.item() == 0.0
    loss.backward()
