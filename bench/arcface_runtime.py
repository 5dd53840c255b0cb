"""onnxruntime or onnx2torch for arcface-onnx: speed and parity, measured in one run.

    python -m bench.arcface_runtime --model-file PATH.onnx [--threads 2] [--repeats 7]

Both run the same ONNX file on the same real chips (tests/data/chips, resized to the
model's input, repeated to fill a batch of 32), fp32 on the CPU. Needs `pip install
onnx2torch` (not a dependency: this script exists to justify that choice).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx2torch import convert
from PIL import Image

CHIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "chips"


def chips_batch(size: int, batch: int) -> np.ndarray:
    images = [
        np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        for p in sorted(CHIPS.glob("*.png"))
    ]
    rgb = np.stack([images[i % len(images)] for i in range(batch)]).astype(np.float32)
    return np.ascontiguousarray(((rgb - 127.5) / 127.5).transpose(0, 3, 1, 2))


def median_rate(run: object, x: np.ndarray, repeats: int) -> float:
    assert callable(run)
    run(x)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-file", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3  # the model declares batch 1 and warns at every call
    session = ort.InferenceSession(str(args.model_file), options, ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    torch.set_num_threads(args.threads)
    module = convert(onnx.load(str(args.model_file))).eval()

    x = chips_batch(112, args.batch)

    def run_ort(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch})[0])

    def run_torch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    diff = float(np.abs(run_ort(x) - run_torch(x)).max())
    ort_rate = median_rate(run_ort, x, args.repeats)
    torch_rate = median_rate(run_torch, x, args.repeats)
    print(f"threads {args.threads}, batch {args.batch}, median of {args.repeats}")
    print("| runtime | faces/s |")
    print("|---|---:|")
    print(f"| onnxruntime {ort.__version__} | {ort_rate:.1f} |")
    print(f"| onnx2torch + torch {torch.__version__} | {torch_rate:.1f} |")
    print(f"max |onnxruntime - onnx2torch| per element (raw, before L2): {diff:.2e}")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
