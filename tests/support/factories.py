"""Real face photos for the service tests, and images built from them.

tests/data/faces holds two LFW photos (byte copies from ../shared/faces/lfw_dev: deep-funneled,
250x250 JPEG, file names as in LFW) of each of the people below. They were chosen so that
the real pipeline finds exactly one face in every photo and the model's thresholds
separate people with a margin: with dlib-resnet-v1 (tau 0.36) the two photos of one
person are at most 0.25 apart, photos of two different people at least 0.50.
`test_real_faces.py::test_the_photo_set` checks this against the active model's thresholds.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

DATA_FACES = Path(__file__).resolve().parents[1] / "data" / "faces"

PEOPLE = (
    "Aaron_Sorkin",
    "Abdullah_Gul",
    "LeAnn_Rimes",
    "Kathy_Winters",
    "Scott_McClellan",
    "Johnson_Panjaitan",
    "Vince_Carter",
    "William_Macy",
    "Adel_Al-Jubeir",
    "Pamela_Anderson",
    "Tony_Bennett",
    "Megawati_Sukarnoputri",
)
PHOTOS_PER_PERSON = 2
TILE = 250  # LFW photos are 250x250
GREY = (128, 128, 128)


def people(count: int | None = None) -> tuple[str, ...]:
    """Distinct people with photos here, in a fixed order (the first `count`)."""
    if count is not None and count > len(PEOPLE):
        raise ValueError(f"only {len(PEOPLE)} people have photos in {DATA_FACES}")
    return PEOPLE if count is None else PEOPLE[:count]


def photo_path(person: str, n: int = 1) -> Path:
    """The n-th (1-based) of the person's photos in name order (LFW numbering may skip)."""
    return sorted(DATA_FACES.glob(f"{person}_[0-9][0-9][0-9][0-9].jpg"))[n - 1]


def photo(person: str, n: int = 1) -> bytes:
    """The n-th (1-based) photo of `person`: the original JPEG bytes."""
    return photo_path(person, n).read_bytes()


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return out.getvalue()


def side_by_side(
    *tiles: bytes | None, scales: Sequence[float] | None = None, fmt: str = "JPEG"
) -> bytes:
    """Photos pasted left to right on a grey 250-px-high strip, one 250x250 slot each.

    A photo is scaled by its entry in `scales` (1.0 by default) and centred in its slot;
    a None tile leaves the slot empty (no face there).
    """
    scales = list(scales) if scales is not None else [1.0] * len(tiles)
    if len(scales) != len(tiles):
        raise ValueError("one scale per tile")
    canvas = Image.new("RGB", (TILE * max(1, len(tiles)), TILE), GREY)
    for i, (data, scale) in enumerate(zip(tiles, scales, strict=True)):
        if data is None:
            continue
        image = Image.open(io.BytesIO(data)).convert("RGB")
        side = round(TILE * scale)
        image = image.resize((side, side), Image.Resampling.BICUBIC)
        offset = (TILE - side) // 2
        canvas.paste(image, (TILE * i + offset, offset))
    return _encode(canvas, fmt)


def slot_of(box: Sequence[float]) -> int:
    """Which slot of a `side_by_side` strip the centre of a face box lies in."""
    return int((box[0] + box[2]) / 2 // TILE)


def no_face(size: tuple[int, int] = (200, 200), fmt: str = "PNG") -> bytes:
    """A flat grey picture: a valid image with no face in it."""
    return _encode(Image.new("RGB", size, GREY), fmt)


def blank_png(size: tuple[int, int]) -> bytes:
    """A white greyscale PNG, a few hundred bytes even when huge (a decompression bomb)."""
    out = io.BytesIO()
    Image.new("L", size, 255).save(out, format="PNG", optimize=True)
    return out.getvalue()


def upload(data: bytes, name: str = "photo") -> tuple[str, bytes, str]:
    """A multipart file tuple with a content type matching the bytes."""
    if data.startswith(b"\xff\xd8"):
        return f"{name}.jpg", data, "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return f"{name}.png", data, "image/png"
    return name, data, "application/octet-stream"


def labelled_set(root: Path) -> Path:
    """tests/data/faces copied as a face set (a folder per person), as `facesvc eval` and
    `calibrate` read one."""
    for path in sorted(DATA_FACES.glob("*.jpg")):
        person = path.stem.rsplit("_", 1)[0]
        (root / person).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, root / person / path.name)
    return root
