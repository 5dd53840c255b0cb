"""Measure where MTCNN's five landmarks fall inside dlib's 150x150 / 0.25 face chip.

dlib's face-recognition network was trained on chips made by `dlib.get_face_chip` from
its 5-point shape predictor (eye corners and nose). MTCNN gives other points (eye
centres, nose tip, mouth corners). To feed the network what it was trained on from
MTCNN's points, we map them through dlib's own chip transform on many faces and take
the per-point median: that is the template `app.core.model.align` targets.

    python tools/derive_alignment_template.py --data ../shared/faces/lfw_dev --limit 600
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dlib
import numpy as np
import torch

from app.core.model.decode import decode_image
from app.core.model.detect import DetectorConfig, FaceDetector
from app.core.model.dlib_landmarks import dlib_chip_transform, dlib_models_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=600)
    args = parser.parse_args()

    models = dlib_models_dir()
    hog = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    detector = FaceDetector(DetectorConfig(), torch.device("cpu"))

    files = sorted(args.data.glob("*/*.jpg"))
    step = max(1, len(files) // args.limit)
    mtcnn_in_chip, dlib_in_chip = [], []
    for path in files[::step][: args.limit]:
        image = decode_image(path.read_bytes())
        rects = hog(image, 1)
        faces = detector.detect(image)
        if len(rects) != 1 or not faces:
            continue  # only faces both pipelines agree on, one per image
        rect = rects[0]
        centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
        # the MTCNN face that is the same face as dlib's (nearest box centre)
        face = min(faces, key=lambda f: np.hypot(*(np.reshape(f.box, (2, 2)).mean(0) - centre)))
        shape = predictor(image, rect)
        to_chip = dlib_chip_transform(dlib.get_face_chip_details(shape, 150, 0.25))
        dlib_points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        mtcnn_in_chip.append(face.landmarks @ to_chip[:, :2].T + to_chip[:, 2])
        dlib_in_chip.append(dlib_points @ to_chip[:, :2].T + to_chip[:, 2])
    mtcnn = np.median(np.stack(mtcnn_in_chip), axis=0)
    spread = np.median(np.abs(np.stack(mtcnn_in_chip) - mtcnn), axis=0)
    print(f"faces used: {len(mtcnn_in_chip)}")
    print("MTCNN template (x, y) in the 150 px chip:", json.dumps(np.round(mtcnn, 4).tolist()))
    print("per-point median absolute deviation (px):", json.dumps(np.round(spread, 2).tolist()))
    print(
        "dlib 5-point template:",
        json.dumps(np.round(np.median(np.stack(dlib_in_chip), axis=0), 4).tolist()),
    )


if __name__ == "__main__":
    main()
