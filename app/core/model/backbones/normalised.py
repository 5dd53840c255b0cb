"""The L2-normalised variant of a backbone that does not normalise its own embeddings.

On by default (FACESVC_NORMALISE_EMBEDDINGS): the pipeline divides each final (flip-fused)
embedding by its norm, so squared distances lie in [0, 4] and a face's embedding length
no longer weighs in its distances (docs/accuracy.md: on lfw_dev FNIR at FPIR 1e-2 falls
by about a quarter, TAR at FAR 1e-3 rises). It is a model version of its own,
`<base version>+l2`, under the base's name: a gallery enrolled without it is never
searched with it (409) until `facesvc reembed` re-embeds it, and setting the option off
serves the base version, bit for bit, in the meantime.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from app.core.model.align import Alignment
from app.core.model.backbones.base import Backbone, Calibration, unit_vector_placeholder
from app.core.model.types import Embedding, RGBImage

VERSION_SUFFIX = "+l2"

# Used only for a base without a measured L2 calibration (none of the built-in ones).
UNCALIBRATED = unit_vector_placeholder(
    "not calibrated: no L2 calibration was measured for this model"
)


def l2_normalised(embeddings: npt.NDArray[np.float32]) -> Embedding:
    """Each row divided by its norm (float32)."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.ascontiguousarray(embeddings / norms, dtype=np.float32)


def normalised_calibration(base: Backbone) -> Calibration:
    """The built-in thresholds of `base`'s L2 variant, measured like the base's own."""
    from app.core.model.backbones import dlib_resnet

    known = {dlib_resnet.MODEL_NAME: dlib_resnet.CALIBRATION_L2}
    return known.get(base.name, UNCALIBRATED)


class NormalisedBackbone:
    """`base` with L2-normalised outputs. `embed` normalises each crop's embedding; the
    pipeline fuses the base's raw embeddings of a crop and its mirror image first and
    normalises the mean (`FacePipeline.embed_chips`)."""

    normalized = True

    def __init__(self, base: Backbone) -> None:
        self.base = base
        self.name = base.name
        self.version = f"{base.version}{VERSION_SUFFIX}"
        self.licence = base.licence
        self.embedding_size = base.embedding_size
        self.input_size = base.input_size
        self.calibration = normalised_calibration(base)
        self.device: torch.device = base.device
        self.alignment: Alignment = base.alignment

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        return l2_normalised(self.base.embed(chips))


def with_normalisation(stored_version: str) -> str:
    """The L2 version of a stored (pipeline) version `<backbone version>.<settings digest>`."""
    backbone_version, _, digest = stored_version.rpartition(".")
    return f"{backbone_version}{VERSION_SUFFIX}.{digest}"


def differ_only_in_normalisation(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Whether two stored (name, version) tags are one network, alignment and settings,
    one of them L2-normalised: a face crop of one is a face crop of the other."""
    if a[0] != b[0]:
        return False
    return with_normalisation(a[1]) == b[1] or with_normalisation(b[1]) == a[1]


def unnormalised(backbone: Backbone) -> Backbone:
    """The network beneath the L2 variant; any other backbone as it is."""
    return backbone.base if isinstance(backbone, NormalisedBackbone) else backbone


def embedding_backbone(backbone: Backbone, normalise: bool) -> Backbone:
    """What the pipeline embeds with: the L2 variant when `normalise` asks for it and the
    backbone does not normalise itself; else the plain backbone (a variant unwrapped)."""
    plain = unnormalised(backbone)
    if normalise and not plain.normalized:
        return NormalisedBackbone(plain)
    return plain
