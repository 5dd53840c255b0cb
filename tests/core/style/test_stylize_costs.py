"""Gram matrix and both costs against values worked out by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from app.core.style.costs import (
    content_cost,
    gram,
    gram_per_position,
    style_layer_cost,
    total_variation,
)
from app.core.style.pyramid import compose, decompose

# One image, nC = 2 channels, nH = 1, nW = 2 positions:
# channel 0 = [1, 2], channel 1 = [3, 4].
A = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
# G_kk' = sum over positions of a_k a_k':
# G00 = 1*1 + 2*2 = 5, G01 = 1*3 + 2*4 = 11, G11 = 3*3 + 4*4 = 25.
GRAM_A = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]])
# A second activation: channel 0 = [0, 1], channel 1 = [1, 1].
B = torch.tensor([[[[0.0, 1.0]], [[1.0, 1.0]]]])
# G00 = 0 + 1 = 1, G01 = 0*1 + 1*1 = 1, G11 = 1 + 1 = 2.
GRAM_B = torch.tensor([[[1.0, 1.0], [1.0, 2.0]]])
# Sum of squared Gram differences: (5-1)^2 + 2 * (11-1)^2 + (25-2)^2 = 16 + 200 + 529 = 745.
GRAM_SSD = 745.0


def test_gram_sums_products_over_positions() -> None:
    assert torch.equal(gram(A), GRAM_A)
    assert torch.equal(gram(B), GRAM_B)
    assert torch.equal(gram_per_position(A), GRAM_A / 2)


def test_content_cost_is_the_squared_distance() -> None:
    # (1-0)^2 + (2-1)^2 + (3-1)^2 + (4-1)^2 = 1 + 1 + 4 + 9 = 15
    assert content_cost(A, B).tolist() == [15.0]
    assert content_cost(A, A).tolist() == [0.0]


@pytest.mark.parametrize(
    ("normalisation", "factor"),
    [
        ("nhwc", 1 / (1 * 2 * 2)),  # 1 / (nH nW nC)
        ("gatys", 1 / (4 * 2**2 * (1 * 2) ** 2)),  # 1 / (4 nC^2 (nH nW)^2)
        ("ng", 1 / (2 * 1 * 2 * 2) ** 2),  # 1 / (2 nH nW nC)^2
    ],
)
def test_style_layer_cost(normalisation: str, factor: float) -> None:
    cost = style_layer_cost(gram_per_position(B)[0], A, normalisation)
    assert cost.item() == pytest.approx(GRAM_SSD * factor)
    assert style_layer_cost(gram_per_position(A)[0], A, normalisation).item() == 0.0


def test_style_gram_is_rescaled_to_the_generated_size() -> None:
    """A style image twice as wide with the same statistics has the same cost."""
    wide_b = torch.cat([B, B], dim=3)  # 4 positions, Gram doubles, per position the same
    assert torch.equal(gram(wide_b), 2 * GRAM_B)
    narrow = style_layer_cost(gram_per_position(B)[0], A).item()
    wide = style_layer_cost(gram_per_position(wide_b)[0], A).item()
    assert wide == pytest.approx(narrow) == pytest.approx(GRAM_SSD / 4)


def test_total_variation() -> None:
    image = torch.tensor([[[[0.0, 2.0], [1.0, 5.0]]]])
    # horizontal |2-0|, |5-1| -> mean 3; vertical |1-0|, |5-2| -> mean 2
    assert total_variation(image).tolist() == [5.0]


def test_pyramid_composes_back_exactly() -> None:
    image = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(0)) * 255
    bands = decompose(image, 4)
    assert [tuple(b.shape[2:]) for b in bands] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    assert torch.allclose(compose(bands), image, atol=1e-3)
