"""The costs of Gatys style transfer, on (n, C, H, W) activations.

Gram matrix at layer l: G[l]_{kk'} = sum_i sum_j a[l]_{ijk} a[l]_{ijk'} (unnormalised:
a sum over the nH * nW positions). The per-layer style cost divides the squared Frobenius
distance of two Grams by a normalisation chosen by name (`STYLE_NORMALISATIONS`):

- "nhwc" (default, the issue's): 1 / (nH nW nC)
- "gatys" (the paper's E_l): 1 / (4 nC^2 (nH nW)^2)
- "ng": 1 / (2 nH nW nC)^2

The style image may have another size than the generated one: its Gram is rescaled to the
generated image's nH * nW positions (mean over positions times nH nW) so that both
Grams sum over the same number of terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Normalisation = Callable[[int, int, int], float]

STYLE_NORMALISATIONS: dict[str, Normalisation] = {
    "nhwc": lambda h, w, c: 1.0 / (h * w * c),
    "gatys": lambda h, w, c: 1.0 / (4.0 * c * c * (h * w) ** 2),
    "ng": lambda h, w, c: 1.0 / (2.0 * h * w * c) ** 2,
}


def gram(a: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) -> (n, C, C): sum over positions of a_k * a_k'."""
    flat = a.flatten(2)
    return flat @ flat.transpose(1, 2)


def gram_per_position(a: torch.Tensor) -> torch.Tensor:
    """The Gram divided by nH * nW, for comparing images of different sizes."""
    return gram(a) / (a.shape[2] * a.shape[3])


def content_cost(a_content: torch.Tensor, a_generated: torch.Tensor) -> torch.Tensor:
    """||a(C) - a(G)||^2, summed over all elements; one value per batch item, (n,)."""
    return (a_content - a_generated).pow(2).flatten(1).sum(1)


def style_layer_cost(
    gram_style: torch.Tensor, a_generated: torch.Tensor, normalisation: str = "nhwc"
) -> torch.Tensor:
    """J_style[l]: `gram_style` (C, C) or (n, C, C) is the style image's Gram *per
    position* (`gram_per_position`); the generated Gram sums over its own positions."""
    _, c, h, w = a_generated.shape
    target = gram_style * (h * w)
    diff = gram(a_generated) - target
    return STYLE_NORMALISATIONS[normalisation](h, w, c) * diff.pow(2).flatten(1).sum(1)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, per batch item (n,)."""
    dx = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().flatten(1).mean(1)
    dy = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs().flatten(1).mean(1)
    return dx + dy
