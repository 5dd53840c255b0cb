"""Landmark templates: where MTCNN's five points must land in each model's crop.

DLIB_CHIP_150 was measured by tools/derive_alignment_template.py on 555 lfw_dev faces:
MTCNN's landmarks mapped through dlib's own get_face_chip(size=150, padding=0.25)
transform (the crop dlib's network was trained on), per-point median. Eye points vary
by about 1 px between faces, nose and mouth by 3-4 px (pose and expression).

The fit weighs the mouth corners a quarter of the other points: they move with
expression, and dlib's own alignment uses no mouth points at all. Measured with
tools/alignment_study.py --weights on lfw_dev, this raised every figure of the protocol
(docs/accuracy.md).

ARCFACE_112 is the standard five-point template of the ArcFace family (InsightFace's
`arcface_dst`, 112x112 crops): the geometry those models were trained on, so it is used
as published, equally weighted, not re-measured.
"""

from __future__ import annotations

import numpy as np

from app.core.model.align import Alignment

# x, y in pixels; MTCNN order: left eye, right eye, nose, left mouth, right mouth.
DLIB_CHIP_150 = Alignment(
    size=150,
    template=np.array(
        [
            [47.9784, 45.9213],
            [102.1751, 45.9129],
            [74.7413, 78.2779],
            [51.3423, 105.6614],
            [98.9354, 105.9132],
        ]
    ),
    weights=(1.0, 1.0, 1.0, 0.25, 0.25),
)

ARCFACE_112 = Alignment(
    size=112,
    template=np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ]
    ),
)
