"""facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (512-d, L2-normalised).

Its weights are not on the package index: facenet-pytorch downloads them from GitHub,
which this service never does at run time. The operator supplies the file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from facenet_pytorch import InceptionResnetV1

from app.core.errors import ModelUnavailable
from app.core.model.align import Alignment
from app.core.model.backbones.base import unit_vector_placeholder
from app.core.model.device import resolve_device
from app.core.model.options import BackboneOptions
from app.core.model.templates import ARCFACE_112
from app.core.model.types import Embedding, RGBImage

WEIGHTS_FILE = "20180402-114759-vggface2.pt"
INPUT_SIZE = 160
# The standard ArcFace five-point template, scaled to 160 px. Not measured here:
# without the weights no figure about this backbone can be produced on this machine.
ALIGNMENT = Alignment(size=INPUT_SIZE, template=ARCFACE_112.template * INPUT_SIZE / 112)
# Placeholder operating point until the model can be calibrated with `facesvc eval`.
UNCALIBRATED = unit_vector_placeholder(
    "not calibrated: the weights were not available where this release was measured"
)


def find_weights(options: BackboneOptions) -> Path:
    """The configured file, else facenet-pytorch's own cache location."""
    if options.facenet_weights is not None:
        candidates = [options.facenet_weights]
    else:
        torch_home = os.getenv(
            "TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch")
        )
        candidates = [Path(torch_home).expanduser() / "checkpoints" / WEIGHTS_FILE]
    for path in candidates:
        if path.is_file():
            return path
    raise ModelUnavailable(
        f"facenet-vggface2 needs its weights file {WEIGHTS_FILE}, not found at "
        f"{', '.join(str(p) for p in candidates)}. Download it on a machine with internet "
        "access (facenet-pytorch's GitHub release v2.2.9) and set FACESVC_FACENET_WEIGHTS "
        "to its path."
    )


class FacenetBackbone:
    name = "facenet-vggface2"
    licence = "MIT code and weights as published by facenet-pytorch"
    embedding_size = 512
    input_size = INPUT_SIZE
    normalized = True
    calibration = UNCALIBRATED
    alignment = ALIGNMENT

    def __init__(self, weights: Path, device: torch.device, half: bool = False) -> None:
        self.device = device
        self.version = "vggface2-" + hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # The classifier over VGGFace2's 8631 training identities is not needed.
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        model = InceptionResnetV1(pretrained=None, classify=False)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelUnavailable(
                f"{weights} is not an InceptionResnetV1 state dict "
                f"(missing {len(missing)} keys, unexpected {len(unexpected)})"
            )
        self.half = half and device.type == "cuda"
        self.model = model.eval().to(device)
        if self.half:
            self.model = self.model.half()

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(list(chips))))
        with torch.inference_mode():
            x = batch.to(self.device).permute(0, 3, 1, 2).float()
            x = (x - 127.5) / 128.0  # facenet-pytorch's fixed_image_standardization
            if self.half:
                x = x.half()
            out = self.model(x).float()
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)


def load_facenet_vggface2(options: BackboneOptions) -> FacenetBackbone:
    return FacenetBackbone(
        find_weights(options), resolve_device(options.device), options.half_precision
    )
