"""What the model code reads of the settings, and nothing else: backbones get
`BackboneOptions`, detectors `DetectorOptions`, the pipeline `ModelOptions` (both, plus
decoding and embedding choices). Made from `Settings` here, in one place; field names
are the settings' own (FACESVC_<NAME>)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.config import Settings, settings_subset


@dataclass(frozen=True)
class BackboneOptions:
    device: str
    half_precision: bool
    torch_threads: int
    cache_dir: Path  # converted weights
    facenet_weights: Path | None
    arcface_onnx: Path | None
    projection_head: Path | None

    @classmethod
    def of(cls, source: Settings | BackboneOptions) -> BackboneOptions:
        return source if isinstance(source, BackboneOptions) else settings_subset(cls, source)


@dataclass(frozen=True)
class DetectorOptions:
    detector: Literal["mtcnn", "scrfd"]
    device: str
    torch_threads: int
    min_face_size: int
    detection_threshold: float
    detection_upsample_below: int
    detection_max_side: int
    detect_impl: Literal["batched", "facenet"]
    scrfd_onnx: Path | None
    scrfd_input_size: int

    @classmethod
    def of(cls, source: Settings | DetectorOptions) -> DetectorOptions:
        return source if isinstance(source, DetectorOptions) else settings_subset(cls, source)


@dataclass(frozen=True)
class ModelOptions:
    model: str  # the default backbone's name
    backbone: BackboneOptions
    detector: DetectorOptions
    max_image_bytes: int
    max_image_pixels: int
    decode_pixels_in_flight: int
    decode_on_device: bool | None
    landmarks: Literal["mtcnn", "dlib5"]
    flip_fusion: bool
    normalise_embeddings: bool  # the backbone's L2 variant (backbones/normalised.py)

    @classmethod
    def of(cls, source: Settings | ModelOptions) -> ModelOptions:
        if isinstance(source, ModelOptions):
            return source
        parts = {"backbone": BackboneOptions.of(source), "detector": DetectorOptions.of(source)}
        return settings_subset(cls, source, **parts)

    @property
    def device(self) -> str:
        return self.backbone.device

    @property
    def cache_dir(self) -> Path:
        return self.backbone.cache_dir
