"""Retraining the last blocks of dlib's ResNet (meant for a GPU; the same code runs on a
CPU for tests): the earlier layers stay frozen and run without gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from app.core.model.backbones.dlib_resnet import DlibResNet
from app.core.model.backbones.projected import BACKBONE_PREFIX, ProjectionHead


class TunedNetwork(nn.Module):
    """(n, size, size, 3) uint8 crops -> head(network(crops)) with the last `blocks`
    residual blocks and the final fc layer trainable."""

    def __init__(self, network: DlibResNet, head: ProjectionHead, blocks: int) -> None:
        super().__init__()
        if not 1 <= blocks <= len(network.blocks):
            raise ValueError(f"blocks must be between 1 and {len(network.blocks)}")
        self.network, self.head, self.first_trained = network, head, len(network.blocks) - blocks
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        for module in [*network.blocks[self.first_trained :], network.fc]:
            for parameter in module.parameters():
                parameter.requires_grad_(True)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        net = self.network
        with torch.no_grad():  # the frozen part, as DlibResNet.forward does it
            x = (chips.permute(0, 3, 1, 2).float() - net.pixel_mean) / 256.0
            x = F.max_pool2d(F.relu(net.stem_affine(net.stem_conv(x))), 3, 2)
            for block in net.blocks[: self.first_trained]:
                x = block(x)
        for block in net.blocks[self.first_trained :]:
            x = block(x)
        return self.head(net.fc(x.mean(dim=(2, 3))))

    def trained_backbone_tensors(self) -> dict[str, torch.Tensor]:
        return {
            BACKBONE_PREFIX + name: parameter.detach()
            for name, parameter in self.network.named_parameters()
            if parameter.requires_grad
        }


def random_flip(chips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each crop (n, h, w, 3) with probability 1/2: the service fuses both views."""
    flip = torch.rand(chips.shape[0], generator=generator) < 0.5
    out = chips.clone()
    out[flip.to(chips.device)] = chips[flip.to(chips.device)].flip(dims=(2,))
    return out
