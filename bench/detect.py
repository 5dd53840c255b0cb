"""Face detection (MTCNN) throughput: the batched implementation against facenet-pytorch's.

    python -m bench.detect [--device cpu|cuda] [--impl batched facenet]
                           [--batch-sizes 1 8 32] [--sets lfw mixed] [--repeats 3]
                           [--threads 1] [--images 32] [--decode] [--clock wall|cpu]
                           [--scrfd FILE.onnx]

Both go through `FaceDetector.detect_many`, the service's path (scaling for detection,
the fallback pass, ranking). Images: real LFW photos from tests/data/faces, as they are
("lfw": 250x250 each) and rescaled to 14 sizes from 170 to 640 px a side ("mixed").
Per repeat, each implementation detects the same --images images, split into batches of
the given size; implementations take turns within a repeat, so background load hits them
alike. The table shows median images/s. Implementations:

- batched: app/core/model/mtcnn_batched.py as the service runs it (on the CPU only same-size
  images share a canvas, on CUDA all are padded into one);
- batched-pad: the same, every batch padded into one canvas;
- batched-split: the same, only same-size images share a canvas;
- facenet: facenet-pytorch's own detect (same-size images batched, boxes cropped one
  by one), the service's implementation before the batched one.

--decode adds JPEG decoding: PIL (app/core/model/decode.py, one image at a time) against
torchvision's batched decoder on --device (app/core/model/gpu_decode.py; nvjpeg on CUDA).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.core.model.decode import DecodeLimits, decode_image
from app.core.model.detect import DetectorConfig, FaceDetector
from app.core.model.gpu_decode import DeviceDecoder
from app.core.model.pipeline import Detector

FACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
IMPLS = ("batched", "batched-pad", "batched-split", "facenet")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def lfw_photos(count: int) -> list[np.ndarray]:
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(FACES.glob("*.jpg"))]
    return [photos[i % len(photos)] for i in range(count)]


def mixed_sizes(photos: list[np.ndarray]) -> list[np.ndarray]:
    """The photos at 14 sizes (170 to 640 px a side, mixed aspect ratios), in turn."""
    sides = [(170, 200), (250, 250), (320, 240), (240, 320), (300, 300), (400, 300),
             (360, 480), (480, 360), (512, 512), (640, 480), (480, 640), (200, 260),
             (280, 210), (600, 600)]  # fmt: skip
    return [
        np.asarray(Image.fromarray(photo).resize(sides[i % len(sides)], Image.Resampling.BILINEAR))
        for i, photo in enumerate(photos)
    ]


def detector(impl: str, device: torch.device) -> FaceDetector:
    config = DetectorConfig(impl="facenet" if impl == "facenet" else "batched")
    found = FaceDetector(config, device)
    if found._batched is not None and impl != "batched":
        found._batched.bucket_slack = float("inf") if impl == "batched-pad" else 0.0
    return found


def images_per_second(
    run: Callable[[list], object], items: list, batch: int, clock: Callable[[], float]
) -> float:
    """Images per second of `clock`: wall time, or this process's CPU time, which on a
    host shared with other jobs counts only our own work (one torch thread)."""
    start = clock()
    for i in range(0, len(items), batch):
        run(items[i : i + batch])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(items) / (clock() - start)


def table(
    title: str, rates: dict[tuple[str, int], list[float]], names: list[str], batches: list[int]
) -> None:
    """Median images/s; the last column compares the first column with the one named
    `facenet` (detection) or the last one (decoding)."""
    base = names.index("facenet") if "facenet" in names else len(names) - 1
    compare = base != 0
    print(f"\n{title}\n")
    ratio = f" {names[0]} / {names[base]} |" if compare else ""
    print("| batch | " + " | ".join(f"{name} img/s" for name in names) + f" |{ratio}")
    print("|---:|" + "---:|" * (len(names) + compare))
    for batch in batches:
        cells = [statistics.median(rates[(name, batch)]) for name in names]
        extra = f" {cells[0] / cells[base]:.2f}x |" if compare else ""
        print(f"| {batch} | " + " | ".join(f"{c:.1f}" for c in cells) + f" |{extra}")


def bench_detection(args: argparse.Namespace, device: torch.device) -> None:
    photos = lfw_photos(args.images)
    sets = {"lfw": photos, "mixed": mixed_sizes(photos)}
    detectors: dict[str, Detector] = {impl: detector(impl, device) for impl in args.impl}
    clock = CLOCKS[args.clock]
    if args.scrfd:
        from app.core.model.scrfd import ScrfdDetector

        detectors["scrfd"] = ScrfdDetector(args.scrfd, threads=args.threads)
    for found in detectors.values():
        found.detect_many(photos[:2])  # warm-up
    for name in args.sets:
        images = sets[name]
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for batch in args.batch_sizes:
                for impl, found in detectors.items():
                    rate = images_per_second(found.detect_many, images, batch, clock)
                    rates.setdefault((impl, batch), []).append(rate)
        title = f"{name}: median of {args.repeats} repeats, {len(images)} images, {device}"
        table(f"{title}, per {args.clock} second", rates, list(detectors), args.batch_sizes)


def bench_decode(args: argparse.Namespace, device: torch.device) -> None:
    def jpeg(photo: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    blobs = [jpeg(photo) for photo in mixed_sizes(lfw_photos(args.images))]
    limits = DecodeLimits()
    on_device = DeviceDecoder(device, limits)
    runs: dict[str, Callable[[list], object]] = {
        f"torchvision on {device}": on_device.decode_many,
        "PIL": lambda chunk: [decode_image(blob, limits) for blob in chunk],
    }
    for run in runs.values():
        run(blobs[:2])
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for batch in args.batch_sizes:
            for name, run in runs.items():
                rate = images_per_second(run, blobs, batch, CLOCKS[args.clock])
                rates.setdefault((name, batch), []).append(rate)
    title = f"JPEG decode (mixed sizes, to host RGB arrays): median of {args.repeats}"
    table(title, rates, list(runs), args.batch_sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=["batched", "facenet"])
    parser.add_argument("--sets", nargs="+", choices=("lfw", "mixed"), default=["lfw", "mixed"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decode", action="store_true", help="also time JPEG decoding")
    parser.add_argument(
        "--clock", choices=list(CLOCKS), default="wall", help="cpu: this process's CPU time"
    )
    parser.add_argument("--scrfd", type=Path, help="SCRFD ONNX file: adds its column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, device {device}")
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    bench_detection(args, device)
    if args.decode:
        bench_decode(args, device)
    print("\nload average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
