"""Embedding throughput of the arcface-onnx backbone (onnxruntime, CPU).

    python -m bench.embed_arcface --model-file PATH.onnx [--batch-sizes 1 8 32] [--threads N]

(run as a module from the repository root)

The model is operator-supplied, so its file is an argument. Real face chips from
tests/data/chips, resized to the model's input and repeated to fill each batch; the
median faces/second over the repeats. Embedding only: no detection, no flip fusion.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.config import Settings
from app.core.model.backbones.arcface import load_arcface_onnx
from app.core.model.options import BackboneOptions

CHIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "chips"


def load_chips(count: int, size: int) -> np.ndarray:
    images = [
        Image.open(p).convert("RGB").resize((size, size)) for p in sorted(CHIPS.glob("*.png"))
    ]
    chips = np.stack([np.asarray(image) for image in images])
    return np.ascontiguousarray(np.resize(chips, (count, size, size, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-file", type=Path, required=True)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--faces-per-repeat", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads; 0: default")
    args = parser.parse_args()

    import onnxruntime

    settings = Settings(arcface_onnx=args.model_file, device="cpu", torch_threads=args.threads)
    backbone = load_arcface_onnx(BackboneOptions.of(settings))
    chips = load_chips(max(args.batch_sizes), backbone.input_size)
    print(f"model {args.model_file.name} ({backbone.version}), {backbone.embedding_size}-d")
    print(f"onnxruntime {onnxruntime.__version__}, nproc {os.cpu_count()}, threads {args.threads}")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print("| batch | faces/s |\n|---:|---:|")
    for batch in args.batch_sizes:
        calls = max(1, math.ceil(args.faces_per_repeat / batch))
        backbone.embed(chips[:batch])  # warm-up
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(calls):
                backbone.embed(chips[:batch])
            rates.append(calls * batch / (time.perf_counter() - start))
        print(f"| {batch} | {statistics.median(rates):.1f} |")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
