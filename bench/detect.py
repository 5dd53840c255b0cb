"""Face detection (MTCNN) throughput: one image at a time against batches of same-size
images, in facenet-pytorch's default memory layout and in channels-last (ours).

    python bench/detect.py [--repeats 5] [--batch-sizes 1 4 8 16 32] [--threads 1]
                           [--scrfd scrfd_500m_bnkps.onnx]

Real 250x250 LFW photos from tests/data/faces. Per repeat, each configuration detects
the same 32 images, split into batches of the given size; configurations take turns
within a repeat so background load hits them alike. The table shows median images/s.
With --scrfd, the operator-supplied SCRFD detector (app/face/scrfd.py) takes turns too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from app.face.detect import DetectorConfig, FaceDetector
from app.face.pipeline import Detector
from app.face.scrfd import ScrfdDetector

FACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"


def lfw_photos(count: int) -> list[np.ndarray]:
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(FACES.glob("*.jpg"))]
    return [photos[i % len(photos)] for i in range(count)]


def contiguous_layout(detector: FaceDetector) -> FaceDetector:
    """The same detector with facenet-pytorch's default (NCHW-contiguous) weights."""
    for mtcnn in (detector._standard, detector._fallback):
        for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet):
            net.to(memory_format=torch.contiguous_format)
    return detector


def images_per_second(detector: Detector, photos: list[np.ndarray], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(photos), batch):
        detector.detect_many(photos[i : i + batch])
    return len(photos) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scrfd", type=Path, help="SCRFD ONNX file: adds its column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}")
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))

    photos = lfw_photos(32)
    detectors: dict[str, Detector] = {
        "channels-last": FaceDetector(DetectorConfig(), torch.device("cpu")),
        "default layout": contiguous_layout(FaceDetector(DetectorConfig(), torch.device("cpu"))),
    }
    if args.scrfd:
        detectors["scrfd"] = ScrfdDetector(args.scrfd, threads=args.threads)
    for detector in detectors.values():
        detector.detect_many(photos[:2])  # warm-up
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for batch in args.batch_sizes:
            for name, detector in detectors.items():
                rate = images_per_second(detector, photos, batch)
                rates.setdefault((name, batch), []).append(rate)

    base = statistics.median(rates[("default layout", args.batch_sizes[0])])
    print(f"median of {args.repeats} repeats, 32 images of 250x250 each\n")
    scrfd = " scrfd img/s |" if args.scrfd else ""
    print(
        "| batch | MTCNN default layout img/s | MTCNN channels-last img/s "
        f"| channels-last / default@1 |{scrfd}"
    )
    print("|---:|---:|---:|---:|" + ("---:|" if args.scrfd else ""))
    for batch in args.batch_sizes:
        default = statistics.median(rates[("default layout", batch)])
        ours = statistics.median(rates[("channels-last", batch)])
        extra = f" {statistics.median(rates[('scrfd', batch)]):.1f} |" if args.scrfd else ""
        print(f"| {batch} | {default:.1f} | {ours:.1f} | {ours / base:.2f}x |{extra}")
    print("\nload average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
