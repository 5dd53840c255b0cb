"""Embedding throughput of the dlib-resnet-v1 torch port against dlib itself.

    python bench/embed.py [--repeats 7] [--batch-sizes 1 8 32 64] [--threads N] [--device D]

Real face chips from tests/data/chips, repeated to fill each batch. Per batch size, every
repeat embeds at least --faces-per-repeat faces; the table shows the median faces/second
over the repeats, all measured in this one run. Needs dlib-bin (a dev dependency).

Columns: our port in fp32 and under bf16 autocast; dlib-bin's own
`compute_face_descriptor` (always on the CPU: the wheel has no CUDA); facenet-pytorch's
InceptionResnetV1 at its own 160x160 input, compute only (random weights, since its
VGGFace2 weights are not here: the speed of the network, not of a face pipeline).
`--device cuda` runs our port and InceptionResnetV1 on the GPU with the same code; for
batches of 64 to 1024 in fp16/bf16 there, see bench/embed_gpu.py.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dlib
import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from app.core.config import Settings
from app.core.model.backbones.dlib_resnet import (
    DlibResNet,
    DlibResNetBackbone,
    find_model_file,
    load_dlib_resnet,
)
from app.core.model.options import BackboneOptions

CHIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "chips"

Embedder = Callable[[np.ndarray], np.ndarray]


def load_chips(count: int) -> np.ndarray:
    chips = np.stack(
        [np.asarray(Image.open(p).convert("RGB")) for p in sorted(CHIPS.glob("*.png"))]
    )
    return np.ascontiguousarray(np.resize(chips, (count, *chips.shape[1:])))


def ours_bf16(backbone: DlibResNetBackbone) -> Embedder:
    """Same path as embed(), with the network under CPU bfloat16 autocast."""

    device = backbone.device

    def embed(chips: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16):
            pixels = torch.from_numpy(chips).to(device).permute(0, 3, 1, 2).float()
            return backbone.model(pixels).float().cpu().numpy()

    return embed


def facenet_compute(device: torch.device) -> Embedder:
    """InceptionResnetV1 on pre-made 160x160 tensors: the network's cost alone."""
    from facenet_pytorch import InceptionResnetV1

    net = InceptionResnetV1(pretrained=None).eval().to(device)
    inputs: dict[int, torch.Tensor] = {}

    def embed(chips: np.ndarray) -> np.ndarray:
        n = len(chips)
        if n not in inputs:
            inputs[n] = torch.rand(n, 3, 160, 160, device=device) * 2 - 1
        with torch.inference_mode():
            return net(inputs[n]).cpu().numpy()  # .cpu() waits for a GPU to finish

    return embed


def dlib_batch(net: dlib.face_recognition_model_v1) -> Embedder:
    """dlib's list-of-chips overload, which runs the chips through the net in batches."""

    def embed(chips: np.ndarray) -> np.ndarray:
        return np.array(net.compute_face_descriptor(list(chips), num_jitters=0))

    return embed


def faces_per_second(
    embedders: dict[str, Embedder], chips: np.ndarray, batch: int, args: argparse.Namespace
) -> dict[str, float]:
    """Median faces/s per embedder. The embedders take turns within each repeat, so a
    burst of load from other processes hits all of them alike."""
    calls = max(1, math.ceil(args.faces_per_repeat / batch))
    for embed in embedders.values():
        embed(chips[:batch])  # warm-up: allocations, thread pools
    rates: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(args.repeats):
        for name, embed in embedders.items():
            start = time.perf_counter()
            for _ in range(calls):
                embed(chips[:batch])
            rates[name].append(calls * batch / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def flops_per_face(model: DlibResNet) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 150, 150))
    return int(counter.get_total_flops())


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--faces-per-repeat", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: default")
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:N]' (ours, facenet)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as cache:
        backbone = load_dlib_resnet(
            BackboneOptions.of(Settings(cache_dir=Path(cache), device=args.device))
        )
    net = dlib.face_recognition_model_v1(str(find_model_file()))
    chips = load_chips(max(args.batch_sizes))
    embedders = {
        "ours fp32": backbone.embed,
        "ours bf16": ours_bf16(backbone),
        "dlib": dlib_batch(net),
        "facenet": facenet_compute(backbone.device),
    }

    reference = embedders["dlib"](chips[:3])
    fp32 = backbone.embed(chips[:3])
    print(f"CPU: {cpu_model()}, nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}")
    if backbone.device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(backbone.device)} (ours, facenet); dlib: CPU")
    print(f"torch {torch.__version__}, dlib {dlib.__version__}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    flops = flops_per_face(backbone.model)
    print(f"model: {flops / 2e9:.3f} GMAC = {flops / 1e9:.3f} GFLOP per face (conv + fc)")
    print(f"max |ours fp32 - dlib| on the real chips: {np.abs(fp32 - reference).max():.2e}")
    drift = np.abs(embedders["ours bf16"](chips[:3]) - fp32).max()
    print(f"max |ours bf16 - ours fp32| on the real chips: {drift:.2e}")
    print(f"median of {args.repeats} repeats, >= {args.faces_per_repeat} faces each\n")

    print(
        "| batch | ours fp32 faces/s | ours bf16 faces/s | dlib faces/s | fp32 / dlib "
        "| facenet 160px faces/s (compute) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch_sizes:
        rate = faces_per_second(embedders, chips, batch, args)
        ratio = rate["ours fp32"] / rate["dlib"]
        print(
            f"| {batch} | {rate['ours fp32']:.1f} | {rate['ours bf16']:.1f} | "
            f"{rate['dlib']:.1f} | {ratio:.2f}x | {rate['facenet']:.1f} |"
        )
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
