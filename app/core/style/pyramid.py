"""How the generated image is parameterised: raw pixels, or a Laplacian pyramid.

With a pyramid the optimiser moves each frequency band on its own scale: a coarse level
is one value per 2^k x 2^k block, so its gradient sums over the block and low
frequencies (colour areas) move as fast as fine ones. Plain pixels under a network with
a stride-2 stem move mostly the highest frequencies, which shows as speckle.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import torch
import torch.nn.functional as F

from app.core.style.options import Plan

LOW, HIGH = 0.0, 255.0


class ImageParameters(Protocol):
    parameters: list[torch.Tensor]

    def pixels(self) -> torch.Tensor:
        """The image, (1, 3, H, W), differentiable in `parameters`."""
        ...

    def project(self) -> None:
        """Bring the pixels back into 0..255 after an optimiser step."""
        ...


class PixelParameters:
    def __init__(self, pixels: torch.Tensor) -> None:
        self.image = pixels.detach().clone().requires_grad_(True)
        self.parameters = [self.image]

    def pixels(self) -> torch.Tensor:
        return self.image

    def project(self) -> None:
        with torch.no_grad():
            self.image.clamp_(LOW, HIGH)


def level_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    sizes = [(height, width)]
    for _ in range(levels - 1):
        h, w = sizes[-1]
        sizes.append((max(1, (h + 1) // 2), max(1, (w + 1) // 2)))
    return sizes


def _up(x: torch.Tensor, size: tuple[int, ...] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def decompose(pixels: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels, finest first, then the coarse residual; `compose` inverts it
    exactly (each band is what the upsampled coarser level misses)."""
    sizes = level_sizes(pixels.shape[2], pixels.shape[3], levels)
    gaussians = [pixels]
    for size in sizes[1:]:
        gaussians.append(F.adaptive_avg_pool2d(gaussians[-1], size))
    bands = [g - _up(coarser, g.shape[2:]) for g, coarser in itertools.pairwise(gaussians)]
    return [*bands, gaussians[-1]]


def compose(bands: list[torch.Tensor]) -> torch.Tensor:
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = _up(image, band.shape[2:]) + band
    return image


class PyramidParameters:
    def __init__(self, pixels: torch.Tensor, levels: int) -> None:
        self.levels = levels
        self.parameters = [
            b.detach().clone().requires_grad_(True) for b in decompose(pixels, levels)
        ]

    def pixels(self) -> torch.Tensor:
        return compose(self.parameters)

    def project(self) -> None:
        with torch.no_grad():
            clamped = compose(self.parameters).clamp_(LOW, HIGH)
            for parameter, band in zip(
                self.parameters, decompose(clamped, self.levels), strict=True
            ):
                parameter.copy_(band)


def parameters_for(pixels: torch.Tensor, plan: Plan) -> ImageParameters:
    if plan.pyramid_levels > 1:
        return PyramidParameters(pixels, plan.pyramid_levels)
    return PixelParameters(pixels)
