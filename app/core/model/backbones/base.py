"""The one small interface every embedding backbone implements."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from app.core.model.align import Alignment
from app.core.model.types import Embedding, RGBImage


@dataclass(frozen=True)
class Calibration:
    """Default thresholds of one backbone and the measurement they came from."""

    tau_verify: float  # 1:1, squared distance
    far_verify: float  # false-accept rate per impostor pair at tau_verify
    tar_verify: float  # true-accept rate at tau_verify
    tau_identify: float  # 1:N, stricter: a stranger gets one chance per enrolled person
    fpir_identify: float  # strangers accepted at tau_identify
    fnir_identify: float  # enrolled people missed at tau_identify
    gallery_size: int  # gallery size the 1:N figures were measured with
    source: str  # data set and command that produced the figures
    # FPIR against gallery size (`app.core.decision.open_set.GalleryModel.as_dict`): with
    # it, tau_identify is re-derived from the live gallery size, as a stored
    # calibration's is; None: tau_identify holds at every size.
    gallery_model: Mapping[str, Any] | None = field(default=None, repr=False)
    # The built-in cohort for 1:N score normalisation (`app.core.decision.cohort.
    # BuiltInCohort.of`): the mixture file, k, and the gallery model of cohort scores;
    # None: this version decides 1:N on the distance.
    cohort: Mapping[str, Any] | None = field(default=None, repr=False)


class Backbone(Protocol):
    name: str  # stable identifier, stored with every embedding
    licence: str  # short note on the weights' licence, shown by GET /v1/models
    version: str  # changes whenever weights or preprocessing change
    embedding_size: int
    input_size: int
    normalized: bool  # whether outputs are L2-normalised
    calibration: Calibration
    device: torch.device
    alignment: Alignment  # where the landmarks land in the input crop

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        """Embed a batch of aligned crops, (n, size, size, 3) uint8 -> (n, d) float32."""
        ...


def unit_vector_placeholder(source: str) -> Calibration:
    """A placeholder operating point for L2-normalised embeddings that were never measured:
    1.1 (1:1) and 0.8 (1:N) in squared distance, the commonly quoted facenet thresholds;
    `source` says why nothing was measured."""
    nan = float("nan")
    return Calibration(
        tau_verify=1.1,
        far_verify=nan,
        tar_verify=nan,
        tau_identify=0.8,
        fpir_identify=nan,
        fnir_identify=nan,
        gallery_size=0,
        source=source,
    )


def built_in_cohort_spec(path: Path) -> dict[str, Any]:
    """A shipped cohort spec (`facesvc calibrate --save-built-in-cohort`), its mixture
    file resolved next to it."""
    spec: dict[str, Any] = json.loads(path.read_text())
    spec["mixture"] = str(path.parent / spec["mixture"])
    return spec
