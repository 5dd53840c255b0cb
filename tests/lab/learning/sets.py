"""A labelled set folder built from the real photos in tests/data/faces."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.factories import PEOPLE, photo_path


def make_photo_set(root: Path) -> Path:
    """<root>/<person>/<photo>: the two photos of each of the 12 people."""
    for person in PEOPLE:
        (root / person).mkdir(parents=True)
        for n in (1, 2):
            source = photo_path(person, n)
            shutil.copy(source, root / person / source.name)
    return root
