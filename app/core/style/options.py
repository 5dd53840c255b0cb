"""What a style-transfer job asks for (`StyleOptions`) and the same with every default
filled in (`Plan`), which is what is stored with the job and run."""

from __future__ import annotations

import secrets
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.core.config import Settings
from app.core.errors import ValidationFailed
from app.core.style.config import StyleConfig
from app.core.style.networks import network_spec

T = TypeVar("T")
Init = Literal["noise", "content"]
Optimiser = Literal["adam", "lbfgs"]
GramNormalisation = Literal["nhwc", "gatys", "ng"]
# Adam's step in pixel units (0..255); L-BFGS takes unit steps along its own direction.
DEFAULT_LEARNING_RATE: dict[str, float] = {"adam": 4.0, "lbfgs": 1.0}


class StyleOptions(BaseModel):
    """Optional settings of one job; None takes the network's or the service's default."""

    model_config = ConfigDict(extra="forbid")

    network: str = Field("vgg19", description="vgg19, dlib-resnet or vgg19-torchvision.")
    alpha: float | None = Field(None, ge=0, description="Weight of J_content.")
    beta: float | None = Field(None, ge=0, description="Weight of J_style.")
    content_layer: str | None = Field(None, description="Layer of J_content.")
    style_layers: dict[str, float] | None = Field(
        None, description="Style layers and their lambda weights, {name: lambda}."
    )
    steps: int | None = Field(None, ge=1, description="Optimisation steps.")
    max_side: int | None = Field(None, ge=16, description="Long side of the output in pixels.")
    init: Init = Field("noise", description="Start from white noise or the content image.")
    seed: int | None = Field(None, ge=0, lt=2**63, description="Seed of the noise.")
    optimiser: Optimiser = "lbfgs"
    learning_rate: float | None = Field(None, gt=0, description="Step size (Adam, L-BFGS).")
    tv_weight: float | None = Field(None, ge=0, description="Total-variation weight.")
    pyramid_levels: int | None = Field(
        None, ge=0, le=8, description="Optimise a Laplacian pyramid of this many levels."
    )
    shift_average: bool | None = Field(
        None, description="Average the cost over the four one-pixel shifts of the image."
    )
    normalisation: GramNormalisation | None = Field(
        None, description="Style-cost normalisation (default: the service setting)."
    )


class Plan(BaseModel):
    """Every value a run needs; stored with the job so a re-run is the same run."""

    network: str
    alpha: float
    beta: float
    content_layer: str
    style_layers: dict[str, float]
    steps: int
    max_side: int
    init: Init
    seed: int
    optimiser: Optimiser
    learning_rate: float
    tv_weight: float
    pyramid_levels: int
    shift_average: bool
    normalisation: GramNormalisation


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def plan(options: StyleOptions, config: StyleConfig | Settings) -> Plan:
    """Fill defaults and check limits and layer names; raises ValidationFailed."""
    limits = StyleConfig.of(config)
    spec = network_spec(options.network)
    defaults = spec.defaults
    steps = _pick(options.steps, limits.stylize_default_steps)
    if steps > limits.stylize_max_steps:
        raise ValidationFailed(f"steps: at most {limits.stylize_max_steps}")
    max_side = _pick(options.max_side, limits.stylize_default_side)
    if max_side > limits.stylize_max_side:
        raise ValidationFailed(f"max_side: at most {limits.stylize_max_side}")
    style_layers = _pick(options.style_layers, defaults.style_layers)
    if not style_layers:
        raise ValidationFailed("style_layers: name at least one layer")
    if any(weight < 0 for weight in style_layers.values()):
        raise ValidationFailed("style_layers: weights must not be negative")
    content_layer = _pick(options.content_layer, defaults.content_layer)
    spec.check_layers([content_layer, *style_layers])
    return Plan(
        network=spec.name,
        alpha=_pick(options.alpha, defaults.alpha),
        beta=_pick(options.beta, defaults.beta),
        content_layer=content_layer,
        style_layers=dict(style_layers),
        steps=steps,
        max_side=max_side,
        init=options.init,
        seed=_pick(options.seed, secrets.randbits(63)),
        optimiser=options.optimiser,
        learning_rate=_pick(options.learning_rate, DEFAULT_LEARNING_RATE[options.optimiser]),
        tv_weight=_pick(options.tv_weight, defaults.tv_weight),
        pyramid_levels=_pick(options.pyramid_levels, defaults.pyramid_levels),
        shift_average=_pick(options.shift_average, defaults.shift_average),
        normalisation=_pick(options.normalisation, limits.stylize_gram_normalisation),
    )
