"""`arcface-onnx`: any ArcFace-family recognizer exported to ONNX, supplied by the operator.

The common packs (InsightFace's buffalo_*, antelopev2) are licensed for non-commercial
research only, so none is bundled or fetched: the operator points FACESVC_ARCFACE_ONNX
(or `--model-file`) at a file they may use. Standard ArcFace preprocessing is assumed
(112x112 RGB, the ArcFace five-point template, (x - 127.5) / 127.5, NCHW); a sidecar
`<model stem>.json` next to the file overrides it and may carry the thresholds measured
for that very file, since the product cannot know which model it was given.

onnxruntime rather than a torch conversion (onnx2torch), chosen without a speed race: it
runs any exported graph as the exporter meant it (no operator coverage gaps, no parity
question to re-check per model), its session is thread-safe for the shared worker pool,
and it takes CUDA through an execution provider. Speed: docs/performance.md.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.core.errors import ModelUnavailable
from app.core.model.align import Alignment
from app.core.model.backbones.base import Calibration
from app.core.model.device import resolve_device
from app.core.model.options import BackboneOptions
from app.core.model.templates import ARCFACE_112
from app.core.model.types import Embedding, RGBImage

MODEL_NAME = "arcface-onnx"
LICENCE = (
    "operator-supplied; check the model's licence "
    "(InsightFace's packs are non-commercial research only)"
)
# Unit vectors: squared distance = 2 - 2 cos. These are the cosine thresholds commonly
# used with ArcFace models (0.4 for 1:1, 0.5 for 1:N), NOT measured for the model at
# hand; the sidecar should carry measured ones (docs/accuracy.md).
UNCALIBRATED = Calibration(
    tau_verify=1.2,
    far_verify=float("nan"),
    tar_verify=float("nan"),
    tau_identify=1.0,
    fpir_identify=float("nan"),
    fnir_identify=float("nan"),
    gallery_size=0,
    source="not calibrated: generic ArcFace thresholds; measure this model with "
    "`facesvc eval` and put tau_verify / tau_identify in its sidecar JSON",
)


class ModelConfig(BaseModel):
    """The sidecar `<model stem>.json`; every field is optional (standard values)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key must not pass silently

    mean: float | tuple[float, float, float] = 127.5
    std: float | tuple[float, float, float] = 127.5
    input_size: int = Field(112, gt=0)
    color_order: Literal["RGB", "BGR"] = "RGB"
    # Five (x, y) points in input pixels, MTCNN order; default: ArcFace's, scaled.
    template: tuple[tuple[float, float], ...] | None = Field(None, min_length=5, max_length=5)
    # Thresholds measured for this model file (squared distance on unit vectors).
    tau_verify: float | None = Field(None, gt=0)
    far_verify: float | None = None
    tar_verify: float | None = None
    tau_identify: float | None = Field(None, gt=0)
    fpir_identify: float | None = None
    fnir_identify: float | None = None
    gallery_size: int = 0
    calibration_source: str | None = None

    def alignment(self) -> Alignment:
        if self.template is not None:
            return Alignment(size=self.input_size, template=np.array(self.template))
        scale = self.input_size / ARCFACE_112.size
        return Alignment(size=self.input_size, template=ARCFACE_112.template * scale)

    def calibration(self, sidecar: Path) -> Calibration:
        if self.tau_verify is None or self.tau_identify is None:
            return UNCALIBRATED

        def known(value: float | None) -> float:
            return math.nan if value is None else value

        return Calibration(
            tau_verify=self.tau_verify,
            far_verify=known(self.far_verify),
            tar_verify=known(self.tar_verify),
            tau_identify=self.tau_identify,
            fpir_identify=known(self.fpir_identify),
            fnir_identify=known(self.fnir_identify),
            gallery_size=self.gallery_size,
            source=self.calibration_source or f"operator-supplied in {sidecar.name}",
        )

    def preprocessing_key(self) -> str:
        """Everything here that changes an embedding (thresholds do not)."""
        fields = self.model_dump(include={"mean", "std", "input_size", "color_order", "template"})
        return json.dumps(fields, sort_keys=True)


def sidecar_path(model_file: Path) -> Path:
    return model_file.with_suffix(".json")


def read_config(model_file: Path) -> ModelConfig:
    path = sidecar_path(model_file)
    if not path.is_file():
        return ModelConfig()
    try:
        return ModelConfig.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise ModelUnavailable(f"{path}: invalid arcface-onnx sidecar: {exc}") from exc


def find_model_file(options: BackboneOptions) -> Path:
    path = options.arcface_onnx
    if path is None:
        raise ModelUnavailable(
            "arcface-onnx needs an ArcFace-family model in ONNX: set FACESVC_ARCFACE_ONNX "
            "(or pass --model-file) to its path. None is bundled: check the licence of the "
            "model you supply (InsightFace's packs are non-commercial research only)."
        )
    if not path.is_file():
        raise ModelUnavailable(f"arcface-onnx model file not found: {path}")
    return path


def _providers(device: torch.device) -> list[Any]:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class ArcFaceOnnxBackbone:
    name = MODEL_NAME
    licence = LICENCE
    normalized = True

    def __init__(
        self, model_file: Path, config: ModelConfig, device: torch.device, threads: int = 0
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelUnavailable(
                "arcface-onnx needs onnxruntime: pip install 'facesvc[arcface]'"
            ) from None
        data = model_file.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        self.sha256 = sha256
        self.model_file = model_file
        self.config = config
        # Default preprocessing: the version is the sha prefix; otherwise it changes too.
        extra = hashlib.sha256(config.preprocessing_key().encode()).hexdigest()[:8]
        standard = config.preprocessing_key() == ModelConfig().preprocessing_key()
        self.version = sha256[:12] if standard else f"{sha256[:12]}+{extra}"
        self.input_size = config.input_size
        self.alignment = config.alignment()
        self.calibration = config.calibration(sidecar_path(model_file))
        options = ort.SessionOptions()
        # Errors only: many exports declare a batch of 1 on the output (InsightFace's do)
        # and would warn on every batch although the result is right.
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(data, options, providers=_providers(device))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelUnavailable(f"{model_file}: not a loadable ONNX model: {exc}") from exc
        on_gpu = "CUDAExecutionProvider" in self.session.get_providers()
        self.device = device if on_gpu else torch.device("cpu")
        (model_input,) = self.session.get_inputs()
        self._input_name = model_input.name
        expected = [3, config.input_size, config.input_size]
        if all(isinstance(d, int) for d in model_input.shape[1:]) and (
            list(model_input.shape[1:]) != expected
        ):
            raise ModelUnavailable(
                f"{model_file} takes input {model_input.shape}, not NCHW {expected}: "
                f"set input_size (and the rest) in {sidecar_path(model_file).name}"
            )
        # Some exports fix the batch at 1; those are run one crop at a time.
        self._fixed_batch = model_input.shape[0] == 1
        self._mean = np.asarray(config.mean, np.float32)  # scalar or per channel
        self._std = np.asarray(config.std, np.float32)
        self.embedding_size = self._output_size()

    def _output_size(self) -> int:
        size = self.session.get_outputs()[0].shape[-1]
        if isinstance(size, int):
            return size
        probe = np.zeros((1, self.input_size, self.input_size, 3), np.uint8)
        return int(self._run(probe).shape[-1])  # symbolic: ask the model

    def _run(self, batch: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        pixels = batch[..., ::-1] if self.config.color_order == "BGR" else batch
        x = (pixels.astype(np.float32) - self._mean) / self._std
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        if self._fixed_batch:
            outs = [
                self.session.run(None, {self._input_name: x[i : i + 1]})[0] for i in range(len(x))
            ]
            return np.concatenate(outs).astype(np.float32)
        return np.asarray(self.session.run(None, {self._input_name: x})[0], np.float32)

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        if len(chips) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        batch = np.stack(list(chips)) if isinstance(chips, list) else np.asarray(chips)
        size = self.input_size
        if batch.ndim != 4 or batch.shape[1:] != (size, size, 3) or batch.dtype != np.uint8:
            raise ValueError(
                f"expected (n, {size}, {size}, 3) uint8 chips, got {batch.shape} {batch.dtype}"
            )
        out = self._run(batch).reshape(len(batch), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def load_arcface_onnx(options: BackboneOptions) -> ArcFaceOnnxBackbone:
    path = find_model_file(options)
    if options.torch_threads > 0:
        # The detector still runs in torch; on a shared CPU one thread each avoids
        # oversubscription (MTCNN went from 2.3 s to 0.14 s per photo on a busy host).
        torch.set_num_threads(options.torch_threads)
    return ArcFaceOnnxBackbone(
        path, read_config(path), resolve_device(options.device), options.torch_threads
    )


@functools.lru_cache(maxsize=4)
def _describe(path: Path, stamps: tuple[int, int]) -> ArcFaceOnnxBackbone:
    return ArcFaceOnnxBackbone(path, read_config(path), torch.device("cpu"), threads=1)


def describe_arcface_onnx(options: BackboneOptions) -> ArcFaceOnnxBackbone:
    """A CPU instance for listing (GET /v1/models), loaded again only when the model
    file or its sidecar changes."""
    path = find_model_file(options)
    sidecar = sidecar_path(path)
    stamps = (path.stat().st_mtime_ns, sidecar.stat().st_mtime_ns if sidecar.is_file() else 0)
    return _describe(path, stamps)
