"""One object that runs decode -> detect -> align -> embed, loaded once per process.
The order of the stages, and the choice among the faces, are in `app.core.model.stages`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from app.core.config import Settings
from app.core.errors import FacesvcError, ModelUnavailable
from app.core.model.align import align_face
from app.core.model.backbones import load_backbone
from app.core.model.backbones.base import Backbone
from app.core.model.backbones.normalised import embedding_backbone, l2_normalised, unnormalised
from app.core.model.decode import (
    DecodeLimits,
    decode_image,
    image_scale,
    return_freed_images_to_the_system,
    scale_detection,
)
from app.core.model.decode_budget import PixelBudget
from app.core.model.detect import DetectorConfig, FaceDetector
from app.core.model.device import resolve_device
from app.core.model.gpu_decode import DeviceDecoder
from app.core.model.options import DetectorOptions, ModelOptions
from app.core.model.stages import (
    Outcome,
    analyze_batch,
    analyze_decoded,
    choose_faces,
    results_of,
)
from app.core.model.types import (
    AlignedFace,
    Detection,
    Embedding,
    FaceResult,
    FaceSelection,
    RGBImage,
)

__all__ = ["FacePipeline", "FaceResult", "FaceSelection", "load_detector"]


class Detector(Protocol):
    name: str

    @property
    def version(self) -> str: ...

    def detect(self, image: RGBImage) -> list[Detection]: ...

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]: ...


def load_detector(source: DetectorOptions | Settings) -> Detector:
    options = DetectorOptions.of(source)
    device = resolve_device(options.device)
    if options.detector == "scrfd":
        from app.core.model.scrfd import ScrfdDetector

        if options.scrfd_onnx is None:
            raise ModelUnavailable("FACESVC_DETECTOR=scrfd needs FACESVC_SCRFD_ONNX (a file)")
        return ScrfdDetector(
            options.scrfd_onnx,
            input_size=options.scrfd_input_size,
            device=device,
            threads=options.torch_threads,
        )
    config = DetectorConfig(
        min_face_size=options.min_face_size,
        score_threshold=options.detection_threshold,
        upsample_below=options.detection_upsample_below,
        max_side=options.detection_max_side,
        impl=options.detect_impl,
    )
    return FaceDetector(config, device)


class FacePipeline:
    """`options`: what it reads of the settings (`ModelOptions`; `Settings` are narrowed)."""

    def __init__(
        self, options: ModelOptions | Settings, detector: Detector, backbone: Backbone
    ) -> None:
        self.options = options = ModelOptions.of(options)
        self.detector = detector
        self.backbone = embedding_backbone(backbone, options.normalise_embeddings)
        # Large images are decoded only as large as detection looks at them (its
        # downscaled copy); boxes are mapped back to the sent image's pixels.
        return_freed_images_to_the_system()
        self.limits = DecodeLimits(
            options.max_image_bytes,
            options.max_image_pixels,
            work_side=options.detector.detection_max_side,
            budget=PixelBudget(options.decode_pixels_in_flight),
        )
        device = resolve_device(options.device)
        on_device = options.decode_on_device
        if on_device is None:  # nvjpeg on CUDA; on the CPU it is libjpeg-turbo, like PIL
            on_device = device.type == "cuda"
        self._device_decoder = DeviceDecoder(device, self.limits) if on_device else None
        self._dlib_aligner = None
        if options.landmarks == "dlib5":
            from app.core.model.dlib_landmarks import DlibFivePointAligner

            self._dlib_aligner = DlibFivePointAligner(backbone.alignment.size)

    @classmethod
    def load(cls, source: ModelOptions | Settings, model: str | None = None) -> FacePipeline:
        options = ModelOptions.of(source)
        return cls(
            options,
            load_detector(options.detector),
            load_backbone(model or options.model, options.backbone),
        )

    @property
    def model(self) -> tuple[str, str]:
        """(name, version) stored with every embedding: the backbone's version plus a
        digest of the settings that change its embeddings, so that a gallery enrolled
        with flip fusion, say, is never searched without it."""
        s, alignment = self.options, self.backbone.alignment
        parts = [
            np.asarray(alignment.template).round(4).tobytes().hex(),
            repr(alignment.weights),
            f"{s.flip_fusion}/{s.landmarks}",
        ]
        if self.detector.name != "mtcnn":  # other landmarks: other embeddings
            parts.append(self.detector.version)
        digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]
        return self.backbone.name, f"{self.backbone.version}.{digest}"

    def fingerprint(self) -> str:
        """A digest of everything that changes an embedding or which face is embedded,
        so evaluation caches never go stale."""
        s = self.options.detector
        parts = [
            *self.model,
            f"{s.min_face_size}/{s.detection_threshold}/{s.detection_upsample_below}",
            f"{s.detection_max_side}",
        ]
        if s.detector == "mtcnn" and s.detect_impl != "facenet":  # within 1e-4 px, not bit for bit
            parts.append(s.detect_impl)
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def decode(self, data: bytes) -> RGBImage:
        """The image, possibly reduced (`app.core.model.decode.DecodedImage`): `detect` and
        `select` take it as it is and speak in the original image's pixels."""
        return decode_image(data, self.limits)

    def decode_many(self, blobs: Sequence[bytes]) -> list[RGBImage | FacesvcError]:
        """`decode` for a batch, each image or its error; JPEGs decoded together on the
        device when FACESVC_DECODE_ON_DEVICE is on (by default on CUDA)."""
        if self._device_decoder is not None:
            return self._device_decoder.decode_many(blobs)
        results: list[RGBImage | FacesvcError] = []
        for blob in blobs:
            try:
                results.append(self.decode(blob))
            except FacesvcError as exc:
                results.append(exc)
        return results

    def detect(self, image: RGBImage) -> list[Detection]:
        """All faces, largest first, in the original image's pixels; [] when none."""
        return self.detect_many([image])[0]

    def detect_many(self, images: Sequence[RGBImage]) -> list[list[Detection]]:
        """`detect` for several images, batching those of the same size."""
        found: list[list[Detection]] = [[] for _ in images]
        for batch in self._detection_batches(images):
            faces = self.detector.detect_many([np.asarray(images[i]) for i in batch])
            for i, image_faces in zip(batch, faces, strict=True):
                sx, sy = image_scale(images[i])
                found[i] = [scale_detection(face, sx, sy) for face in image_faces]
        return found

    def _detection_batches(self, images: Sequence[RGBImage]) -> list[list[int]]:
        """Indices of `images`, same sizes side by side, in batches of at most one
        detection_max_side-square of pixels as MTCNN sees them: its memory grows with a
        batch's pixels (eight 1600-px images at once took 1 GB), while small images
        still share their passes. SCRFD runs every image at its fixed input size."""
        if self.detector.name != "mtcnn":
            return [list(range(len(images)))] if images else []
        side = self.options.detector.detection_max_side
        batches: list[list[int]] = []
        used = float(side * side)
        for i in sorted(range(len(images)), key=lambda i: images[i].shape[:2]):
            height, width = images[i].shape[:2]
            pixels = height * width * min(1.0, side / max(height, width)) ** 2
            if used + pixels > side * side:
                batches.append([])
                used = 0.0
            batches[-1].append(i)
            used += pixels
        return batches

    def align(self, image: RGBImage, detection: Detection) -> AlignedFace:
        if self._dlib_aligner is not None:
            return self._dlib_aligner.align(image, detection)
        return align_face(image, detection, self.backbone.alignment)

    def embed_chips(self, chips: Sequence[RGBImage] | np.ndarray) -> Embedding:
        """(n, size, size, 3) aligned crops -> (n, d) embeddings.

        With flip fusion the embedding is the mean of the crop's and its mirror image's,
        re-normalised when the backbone normalises (measured in docs/accuracy.md). The L2
        variant (FACESVC_NORMALISE_EMBEDDINGS) is normalised here, once, after fusion.
        """
        batch = np.ascontiguousarray(np.stack(list(chips)))
        variant = self.backbone
        network = unnormalised(variant)
        if not self.options.flip_fusion:
            plain = network.embed(batch)
            return l2_normalised(plain) if network is not variant else plain
        both = network.embed(np.concatenate([batch, batch[:, :, ::-1]]))
        fused = (both[: len(batch)] + both[len(batch) :]) / 2
        if variant.normalized:
            fused /= np.linalg.norm(fused, axis=1, keepdims=True)
        return fused.astype(np.float32)

    def analyze(self, data: bytes, *, faces: FaceSelection = "single") -> list[FaceResult]:
        """The chosen faces of an encoded image, by the service's own stages."""
        return results_of(analyze_batch(self, [data], [faces])[0])

    def analyze_image(
        self, image: RGBImage, *, faces: FaceSelection = "single"
    ) -> list[FaceResult]:
        """`analyze` for an image already decoded."""
        outcomes: list[Outcome] = [(None, None, {})]
        analyze_decoded(self, {0: image}, [faces], outcomes)
        return results_of(outcomes[0])

    def locate(self, image: RGBImage, *, faces: FaceSelection = "single") -> list[AlignedFace]:
        """Detect, choose (`faces`) and align: everything before the embedding."""
        return self.select(image, self.detect(image), faces=faces)

    def select(
        self, image: RGBImage, detections: list[Detection], *, faces: FaceSelection = "single"
    ) -> list[AlignedFace]:
        """Choose among `detect`'s faces (`faces`) and align them."""
        return self.align_all(image, choose_faces(detections, faces))

    def align_all(self, image: RGBImage, detections: Sequence[Detection]) -> list[AlignedFace]:
        """Align each of `detect`'s faces (in the original image's pixels) in `image`,
        which may be the reduced copy that `decode` gave."""
        sx, sy = image_scale(image)
        if sx == 1.0 and sy == 1.0:
            return [self.align(image, detection) for detection in detections]
        pixels = np.asarray(image)
        return [  # align in this image's pixels, report in the original's
            replace(self.align(pixels, scale_detection(d, 1 / sx, 1 / sy)), detection=d)
            for d in detections
        ]
