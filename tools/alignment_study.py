"""Compare landmark sources and flip fusion on one pass over a face set.

Detects once per image (MTCNN), then embeds the largest face four ways: MTCNN landmarks
or dlib's 5-point predictor, each with and without horizontal-flip fusion, and runs the
shared protocol on each. With --weights, instead compares weightings of the five MTCNN
landmarks in the similarity fit (flip fusion on). Results go to docs/accuracy.md.

    python tools/alignment_study.py --data ../shared/faces/lfw_dev --out /tmp/study-lfw.json
    python tools/alignment_study.py --data ../shared/faces/lfw_dev --out /tmp/w.json \
        --weights 1,1,1,1,1 2,2,1,1,1 1,1,1,0.25,0.25 3,3,2,1,1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from app.core.config import Settings
from app.core.errors import FacesvcError
from app.core.model.align import align_face, similarity_transform, warp_chip
from app.core.model.dlib_landmarks import DlibFivePointAligner
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.dataset import load_face_set
from app.lab.evaluation.protocol import evaluate

VARIANTS = ("mtcnn", "mtcnn+flip", "dlib5", "dlib5+flip")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", nargs="+", help="landmark weightings, e.g. 1,1,1,0.25,0.25")
    args = parser.parse_args()
    if args.weights:
        weighting_study(args.data, args.out, args.weights)
        return

    pipeline = FacePipeline.load(Settings(flip_fusion=False))
    backbone = pipeline.backbone
    dlib5 = DlibFivePointAligner(backbone.alignment.size)
    face_set = load_face_set(args.data)
    embeddings: dict[str, dict[Path, np.ndarray | None]] = {v: {} for v in VARIANTS}
    for path in tqdm(face_set.images, desc="images"):
        image, detections = _decode_and_detect(pipeline, path)
        if not detections:
            for variant in VARIANTS:
                embeddings[variant][path] = None
            continue
        chips = np.stack(
            [
                align_face(image, detections[0], backbone.alignment).chip,
                dlib5.align(image, detections[0]).chip,
            ]
        )
        plain, flipped = np.split(backbone.embed(np.concatenate([chips, chips[:, :, ::-1]])), 2)
        fused = (plain + flipped) / 2
        embeddings["mtcnn"][path], embeddings["dlib5"][path] = plain[0], plain[1]
        embeddings["mtcnn+flip"][path], embeddings["dlib5+flip"][path] = fused[0], fused[1]
    reports = {
        variant: evaluate(
            face_set, found, model=backbone.name, default_tau=backbone.calibration.tau_identify
        )
        for variant, found in embeddings.items()
    }
    args.out.write_text(json.dumps(reports, indent=2))
    for variant, report in reports.items():
        print(
            variant,
            {k: report[k] for k in ("lfw_accuracy_mean", "roc_auc", "rank1", "failed_images")},
            "TAR@1e-3",
            report["tar_at_far"] and report["tar_at_far"]["0.001"],
            "FNIR@FPIR1e-2",
            report["fnir_at_fpir"] and report["fnir_at_fpir"]["0.01"],
        )


def _decode_and_detect(pipeline: FacePipeline, path: Path) -> tuple[np.ndarray, list]:
    """The image and its faces, largest first; no faces when it cannot be decoded."""
    try:
        image = pipeline.decode(path.read_bytes())
    except FacesvcError:
        return np.zeros((0, 0, 3), np.uint8), []
    return image, pipeline.detect(image)


def weighting_study(data: Path, out: Path, weightings: list[str]) -> None:
    pipeline = FacePipeline.load(Settings(flip_fusion=True))
    backbone = pipeline.backbone
    template = backbone.alignment.template
    face_set = load_face_set(data)
    embeddings: dict[str, dict[Path, np.ndarray | None]] = {w: {} for w in weightings}
    for path in tqdm(face_set.images, desc="images"):
        image, detections = _decode_and_detect(pipeline, path)
        for weighting in weightings:
            if not detections:
                embeddings[weighting][path] = None
                continue
            weights = [float(w) for w in weighting.split(",")]
            matrix = similarity_transform(detections[0].landmarks, template, weights)
            chip = warp_chip(image, matrix, backbone.alignment.size)
            embeddings[weighting][path] = pipeline.embed_chips([chip])[0]
    reports = {
        w: evaluate(face_set, found, model=backbone.name, default_tau=0.0)
        for w, found in embeddings.items()
    }
    out.write_text(json.dumps(reports, indent=2))
    for weighting, report in reports.items():
        print(weighting, _summary(report))


def _summary(report: dict) -> str:
    tar = report["tar_at_far"] and report["tar_at_far"]["0.001"]["tar"]
    fnir = report["fnir_at_fpir"] and report["fnir_at_fpir"]["0.01"]["fnir"]
    return (
        f"lfw_acc={report['lfw_accuracy_mean']} rank1={report['rank1']:.4f} "
        f"tar@far1e-3={tar:.4f} fnir@fpir1e-2={fnir:.4f} failed={report['failed_images']}"
    )


if __name__ == "__main__":
    main()
