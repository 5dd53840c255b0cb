"""Landmark templates: where MTCNN's five points must land in each model's crop.

DLIB_CHIP_150 was measured by tools/derive_alignment_template.py on 555 lfw_dev faces:
MTCNN's landmarks mapped through dlib's own get_face_chip(size=150, padding=0.25)
transform (the crop dlib's network was trained on), per-point median. Eye points vary
by about 1 px between faces, nose and mouth by 3-4 px (pose and expression).
"""

from __future__ import annotations

import numpy as np

from app.face.align import Alignment

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
)
