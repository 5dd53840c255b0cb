"""A projection head on top of a frozen backbone, and the backbone variant that applies it.

The head is a linear map, initialised to the identity, optionally with a residual
one-hidden-layer MLP beside it, followed by L2 normalisation (FaceNet's hypersphere, so
the margin has a fixed scale). A checkpoint may also carry retrained parameters of the
backbone's last blocks (`facesvc train-triplet --train blocks`, meant for a GPU).

Loaded through FACESVC_PROJECTION_HEAD, the variant is a model of its own: name
`<backbone>+head`, version `<backbone version>+head.<file sha256[:12]>`, so a gallery
enrolled with the base model (or another head) is never searched with it (409).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Backbone, Calibration
from app.core.model.checkpoint import Checkpoint, load_checkpoint, require_model
from app.core.model.types import Embedding, RGBImage

KIND = "projection-head"
BACKBONE_PREFIX = "backbone."
HEAD_PREFIX = "head."


class ProjectionHead(nn.Module):
    def __init__(self, dim: int, hidden: int = 0) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.linear = nn.Linear(dim, dim)
        with torch.no_grad():  # start as the identity: training begins at the base model
            self.linear.weight.copy_(torch.eye(dim))
            self.linear.bias.zero_()
        self.mlp = (
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            if hidden
            else None
        )
        if self.mlp is not None:
            last = self.mlp[2]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)  # the residual branch starts silent
            nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        if self.mlp is not None:
            y = y + self.mlp(x)
        return F.normalize(y, dim=-1)

    def project(self, embeddings: npt.NDArray[Any]) -> Embedding:
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
            out = self(x.to(self.linear.weight.device)).cpu().numpy()
        return np.ascontiguousarray(out, dtype=np.float32)


def head_from_checkpoint(checkpoint: Checkpoint) -> ProjectionHead:
    head = ProjectionHead(int(checkpoint.header["dim"]), int(checkpoint.header["hidden"]))
    state = {
        name.removeprefix(HEAD_PREFIX): tensor
        for name, tensor in checkpoint.tensors.items()
        if name.startswith(HEAD_PREFIX)
    }
    head.load_state_dict(state, strict=True)
    return head.eval()


def backbone_state(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    return {
        name.removeprefix(BACKBONE_PREFIX): tensor
        for name, tensor in checkpoint.tensors.items()
        if name.startswith(BACKBONE_PREFIX)
    }


def calibration_of(header: dict[str, Any]) -> Calibration:
    return Calibration(**header["calibration"])


class ProjectedBackbone:
    """A `Backbone` whose embeddings are head(base(chip)).

    With flip fusion the pipeline averages the head's outputs of a crop and its mirror
    image and re-normalises; the head was trained on fused base embeddings, so for the
    linear head the two orders differ only by the final normalisation.
    """

    normalized = True

    def __init__(self, base: Backbone, head: ProjectionHead, checkpoint: Checkpoint) -> None:
        self.base = base
        self.head = head.to(base.device)
        self.name = f"{base.name}+head"
        self.version = f"{base.version}+head.{checkpoint.version}"
        self.licence = f"{base.licence}; projection head trained with facesvc train-triplet"
        self.embedding_size = head.dim
        self.input_size = base.input_size
        self.device = base.device
        self.alignment = base.alignment
        self.calibration = calibration_of(checkpoint.header)

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        return self.head.project(self.base.embed(chips))


def apply_backbone_state(base: Backbone, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy retrained last-block parameters into the base network (same device)."""
    network = getattr(base, "model", None)
    if not isinstance(network, nn.Module):
        raise ModelUnavailable(f"{path} retrains backbone blocks, which {base.name} exposes not")
    own = network.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ModelUnavailable(f"{path}: {base.name} has no parameter {unknown[0]}")
    with torch.no_grad():
        for name, tensor in state.items():
            own[name].copy_(tensor.to(own[name].device))


def load_projected_backbone(base: Backbone, path: Path) -> ProjectedBackbone:
    """Wrap `base` with the head in `path`; the file must have been trained on `base`."""
    checkpoint = load_checkpoint(path, KIND)
    require_model(checkpoint, path, (base.name, base.version))
    state = backbone_state(checkpoint)
    if state:
        apply_backbone_state(base, state, path)
    return ProjectedBackbone(base, head_from_checkpoint(checkpoint), checkpoint)
