"""What the model code reads of the settings, and nothing else: backbones get
`BackboneOptions`, detectors `DetectorOptions`, the pipeline `ModelOptions` (both, plus
decoding and embedding choices). Made from `Settings` here, in one place; field names
are the settings' own (FACESVC_<NAME>)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.core.config import Settings


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
        if isinstance(source, BackboneOptions):
            return source
        return cls(
            device=source.device,
            half_precision=source.half_precision,
            torch_threads=source.torch_threads,
            cache_dir=source.cache_dir,
            facenet_weights=source.facenet_weights,
            arcface_onnx=source.arcface_onnx,
            projection_head=source.projection_head,
        )


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
        if isinstance(source, DetectorOptions):
            return source
        return cls(
            detector=source.detector,
            device=source.device,
            torch_threads=source.torch_threads,
            min_face_size=source.min_face_size,
            detection_threshold=source.detection_threshold,
            detection_upsample_below=source.detection_upsample_below,
            detection_max_side=source.detection_max_side,
            detect_impl=source.detect_impl,
            scrfd_onnx=source.scrfd_onnx,
            scrfd_input_size=source.scrfd_input_size,
        )


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

    @classmethod
    def of(cls, source: Settings | ModelOptions) -> ModelOptions:
        if isinstance(source, ModelOptions):
            return source
        return cls(
            model=source.model,
            backbone=BackboneOptions.of(source),
            detector=DetectorOptions.of(source),
            max_image_bytes=source.max_image_bytes,
            max_image_pixels=source.max_image_pixels,
            decode_pixels_in_flight=source.decode_pixels_in_flight,
            decode_on_device=source.decode_on_device,
            landmarks=source.landmarks,
            flip_fusion=source.flip_fusion,
        )

    @property
    def device(self) -> str:
        return self.backbone.device

    @property
    def cache_dir(self) -> Path:
        return self.backbone.cache_dir
