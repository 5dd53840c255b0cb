"""Face set folders (`<set>/<identity>/<image>`) and the LFW pairs format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
)

Pair = tuple[Path, Path]


@dataclass(frozen=True)
class FaceSet:
    """A labelled set: identities sorted by name, each with its image files sorted by name."""

    root: Path
    name: str
    identities: dict[str, list[Path]]
    pairs_file: Path | None = None

    @property
    def images(self) -> list[Path]:
        """Every image, in identity order then file order."""
        return [path for files in self.identities.values() for path in files]

    def identities_with_at_least(self, count: int) -> list[str]:
        """Names (sorted) of identities that have at least `count` images."""
        return [name for name, files in self.identities.items() if len(files) >= count]

    def relative(self, path: Path) -> str:
        """`identity/file` as a POSIX string, for reports."""
        return path.relative_to(self.root).as_posix()


@dataclass
class Fold:
    """One fold of an LFW pairs file."""

    matched: list[Pair] = field(default_factory=list)
    mismatched: list[Pair] = field(default_factory=list)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _visible_entries(folder: Path) -> Iterator[Path]:
    # Hidden entries (.DS_Store, .ipynb_checkpoints, ...) are never identities or images.
    return (entry for entry in folder.iterdir() if not entry.name.startswith("."))


def load_face_set(root: Path) -> FaceSet:
    """List a set folder. Subdirectories are identities; plain files at set level are metadata.

    Sorting is by Python string order of the names, so the result does not depend on the
    file system's listing order. The pairs file is the set-level file named `pairs*.txt`
    (the first in name order if there are several).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a set folder: {root}")
    entries = sorted(_visible_entries(root), key=lambda entry: entry.name)
    identities = {
        entry.name: sorted(
            (path for path in _visible_entries(entry) if is_image_file(path)),
            key=lambda path: path.name,
        )
        for entry in entries
        if entry.is_dir()
    }
    pairs_files = [
        entry
        for entry in entries
        if entry.is_file() and entry.name.startswith("pairs") and entry.suffix == ".txt"
    ]
    return FaceSet(
        root=root,
        name=root.resolve().name,
        identities=identities,
        pairs_file=pairs_files[0] if pairs_files else None,
    )


def lfw_image_path(face_set: FaceSet, name: str, number: str) -> Path:
    return face_set.root / name / f"{name}_{int(number):04d}.jpg"


def read_lfw_pairs(path: Path, face_set: FaceSet) -> list[Fold]:
    """Parse an LFW pairs file: header `F<TAB>N`, then per fold N matched and N mismatched lines.

    Raises ValueError naming the line number for a malformed line, a missing line, or a
    pair whose image is not in `face_set`.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing blank line is harmless
    if not lines:
        raise ValueError(f"{path}: line 1: empty pairs file")
    fold_count, pairs_per_side = _parse_header(path, lines[0])
    expected_lines = 1 + fold_count * 2 * pairs_per_side
    if len(lines) != expected_lines:
        raise ValueError(
            f"{path}: line {min(len(lines), expected_lines) + 1}: the header announces "
            f"{expected_lines - 1} pair lines but the file has {len(lines) - 1}"
        )
    known_images = set(face_set.images)
    folds = []
    line_number = 1
    for _ in range(fold_count):
        fold = Fold()
        for matched_side in (True, False):
            for _ in range(pairs_per_side):
                line_number += 1
                pair = _parse_pair(
                    path, line_number, lines[line_number - 1], face_set, matched_side
                )
                for image in pair:
                    if image not in known_images:
                        raise ValueError(f"{path}: line {line_number}: missing image {image}")
                (fold.matched if matched_side else fold.mismatched).append(pair)
        folds.append(fold)
    return folds


def _parse_header(path: Path, line: str) -> tuple[int, int]:
    fields = line.split()
    if len(fields) != 2 or not all(value.isdigit() for value in fields):
        raise ValueError(f"{path}: line 1: expected header 'F<TAB>N', got {line!r}")
    return int(fields[0]), int(fields[1])


def _parse_pair(path: Path, line_number: int, line: str, face_set: FaceSet, matched: bool) -> Pair:
    fields = line.split()
    expected = "name i j" if matched else "name1 i name2 j"
    if len(fields) != (3 if matched else 4):
        raise ValueError(f"{path}: line {line_number}: expected '{expected}', got {line!r}")
    names, numbers = (
        ([fields[0], fields[0]], fields[1:]) if matched else (fields[::2], fields[1::2])
    )
    if not all(number.isdigit() and int(number) > 0 for number in numbers):
        raise ValueError(f"{path}: line {line_number}: image numbers must be positive: {line!r}")
    first, second = (lfw_image_path(face_set, n, i) for n, i in zip(names, numbers, strict=True))
    return first, second
