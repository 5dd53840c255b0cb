"""Embedding throughput on a GPU at large batches: dlib-resnet-v1 in fp32, fp16 and bf16.

    python bench/embed_gpu.py [--device cuda] [--batch-sizes 64 128 256 512 1024]

The same backbone class the service runs (`DlibResNetBackbone`), the same real chips as
bench/embed.py, pixels already on the device so that the figures are the network's.
For each dtype it prints faces/second (median of --repeats timed calls, each closed by
a device synchronise) and the largest deviation from fp32 on the real chips. fp32 is
measured with TF32 off (torch's default for matmul, set explicitly for convolutions) so
that it is the parity reference. `--device cpu` runs the same code on the CPU (that is
how the tests exercise it on machines without a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.core.config import Settings
from app.core.model.backbones.dlib_resnet import DlibResNetBackbone, load_dlib_resnet
from app.core.model.options import BackboneOptions

CHIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "chips"
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def real_chips(count: int) -> np.ndarray:
    """The real 150x150 chips of tests/data/chips, repeated to `count`."""
    chips = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(CHIPS.glob("*.png"))]
    return np.resize(np.stack(chips), (count, *chips[0].shape))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward(
    backbone: DlibResNetBackbone, pixels: torch.Tensor, dtype: torch.dtype | None
) -> torch.Tensor:
    """NCHW float pixels on the device -> embeddings, under autocast to `dtype`."""
    device = backbone.device
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        return backbone.model(pixels.contiguous(memory_format=torch.channels_last)).float()


def faces_per_second(
    backbone: DlibResNetBackbone, pixels: torch.Tensor, dtype: torch.dtype | None, repeats: int
) -> float:
    forward(backbone, pixels, dtype)  # warm-up: kernel choice, allocations
    synchronize(backbone.device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(backbone, pixels, dtype)
        synchronize(backbone.device)
        rates.append(len(pixels) / (time.perf_counter() - start))
    return statistics.median(rates)


def drift(backbone: DlibResNetBackbone, pixels: torch.Tensor, dtype: torch.dtype | None) -> float:
    reference = forward(backbone, pixels, None)
    return float((forward(backbone, pixels, dtype) - reference).abs().max())


def run(device: str, batch_sizes: list[int], repeats: int) -> list[dict[str, float]]:
    torch.backends.cudnn.allow_tf32 = False  # fp32 stays fp32: the parity reference
    torch.backends.cuda.matmul.allow_tf32 = False
    with tempfile.TemporaryDirectory() as cache:
        backbone = load_dlib_resnet(
            BackboneOptions.of(Settings(cache_dir=Path(cache), device=device))
        )
    chips = real_chips(max(batch_sizes))
    all_pixels = torch.from_numpy(chips).to(backbone.device).permute(0, 3, 1, 2).float()
    rows = []
    for batch in batch_sizes:
        pixels = all_pixels[:batch]
        row: dict[str, float] = {"batch": batch}
        for name, dtype in DTYPES.items():
            row[name] = faces_per_second(backbone, pixels, dtype, repeats)
            row[f"{name} drift"] = drift(backbone, pixels[:16], dtype)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; use --device cpu to run the same code on the CPU")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}, torch {torch.__version__}, TF32 off for fp32")
    print(f"median of {args.repeats} timed calls per cell; drift: max |x - fp32| per element\n")
    print("| batch | fp32 faces/s | fp16 faces/s | bf16 faces/s | fp16 drift | bf16 drift |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in run(args.device, args.batch_sizes, args.repeats):
        print(
            f"| {row['batch']:.0f} | {row['fp32']:.0f} | {row['fp16']:.0f} | {row['bf16']:.0f} "
            f"| {row['fp16 drift']:.1e} | {row['bf16 drift']:.1e} |"
        )


if __name__ == "__main__":
    main()
