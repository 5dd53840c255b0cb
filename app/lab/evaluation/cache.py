"""An on-disk embedding cache, so that rerunning `facesvc eval` takes seconds.

One `.npz` file per cache key; the caller puts everything that changes an embedding
(model, version, pipeline settings) into the key. Within a file an entry is found by the
image's resolved absolute path and is only valid while the file's size and mtime_ns are
unchanged. The absolute path, not one relative to the set, is used because different
sets can share relative names with equal sizes (every ORL image is 10318 bytes).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from app.lab.evaluation.dataset import FaceSet

log = logging.getLogger(__name__)

Vector = npt.NDArray[Any]
FORMAT_VERSION = 1
SAVE_EVERY = 200  # images embedded between saves, so an interrupted run keeps its work


class _Missing(enum.Enum):
    MISSING = "MISSING"


MISSING: Final = _Missing.MISSING
"""Returned by `EmbeddingCache.get` when nothing valid is cached (None means "no face")."""


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    embedding: Vector | None  # None: the pipeline found no face


def cache_file_name(key: str) -> str:
    """A readable, file-system-safe name that is unique per key."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:80]
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{readable}-{digest}.npz"


def _file_id(path: Path) -> str:
    return Path(path).resolve().as_posix()


class EmbeddingCache:
    """Embeddings (or "no face") per image file, stored under `directory` for one key."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = Path(directory)
        self.key = key
        self.path = self.directory / cache_file_name(key)
        self._entries = self._load()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: Path) -> Vector | Literal[_Missing.MISSING] | None:
        """The cached embedding, None for a cached failure, MISSING if absent or stale."""
        entry = self._entries.get(_file_id(path))
        if entry is None:
            return MISSING
        stat = Path(path).stat()
        if (entry.size, entry.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            return MISSING  # the file changed since it was embedded
        return None if entry.embedding is None else entry.embedding.copy()

    def put(self, path: Path, embedding: npt.ArrayLike | None) -> None:
        vector = None if embedding is None else np.array(embedding).ravel()
        if vector is not None and self._dimension() not in (None, vector.size):
            raise ValueError(f"embedding of size {vector.size}, cache holds {self._dimension()}")
        stat = Path(path).stat()
        self._entries[_file_id(path)] = _Entry(stat.st_size, stat.st_mtime_ns, vector)
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically (temp file + rename); a no-op when nothing changed."""
        if not self._dirty:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(handle, **self._arrays())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._dirty = False

    def _dimension(self) -> int | None:
        for entry in self._entries.values():
            if entry.embedding is not None:
                return int(entry.embedding.size)
        return None

    def _arrays(self) -> dict[str, Any]:  # Any: numpy's savez stub mistypes **arrays
        files = list(self._entries)
        entries = [self._entries[name] for name in files]
        dimension = self._dimension() or 0
        vectors = [e.embedding for e in entries if e.embedding is not None]
        dtype = np.result_type(*vectors) if vectors else np.float32
        embeddings = np.zeros((len(entries), dimension), dtype=dtype)
        for row, entry in enumerate(entries):
            if entry.embedding is not None:
                embeddings[row] = entry.embedding
        return {
            "format": np.array(FORMAT_VERSION),
            "key": np.array(self.key),
            "files": np.array(files, dtype=str),
            "sizes": np.array([e.size for e in entries], dtype=np.int64),
            "mtimes_ns": np.array([e.mtime_ns for e in entries], dtype=np.int64),
            "failed": np.array([e.embedding is None for e in entries], dtype=bool),
            "embeddings": embeddings,
        }

    def _load(self) -> dict[str, _Entry]:
        if not self.path.exists():
            return {}
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if int(data["format"]) != FORMAT_VERSION or str(data["key"]) != self.key:
                    return {}
                rows = zip(
                    data["files"].tolist(),
                    data["sizes"].tolist(),
                    data["mtimes_ns"].tolist(),
                    data["failed"].tolist(),
                    data["embeddings"],
                    strict=True,
                )
                return {
                    name: _Entry(size, mtime, None if failed else vector)
                    for name, size, mtime, failed, vector in rows
                }
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            # A damaged cache only costs a recomputation.
            log.warning("ignoring unreadable embedding cache %s: %s", self.path, error)
            return {}


def embed_face_set(
    face_set: FaceSet,
    embed_one: Callable[[Path], Vector | None],
    cache: EmbeddingCache | None,
    progress: bool,
    save_every: int = SAVE_EVERY,
) -> dict[Path, Vector | None]:
    """Embed every image of the set (None where no face is found), reusing the cache.

    Shows a progress bar on stderr when `progress`; saves the cache every `save_every`
    newly embedded images and at the end, also when interrupted.
    """
    embeddings: dict[Path, Vector | None] = {}
    embedded_since_save = 0
    images = tqdm(
        face_set.images,
        desc=f"embedding {face_set.name}",
        unit="img",
        file=sys.stderr,
        disable=None if progress else True,  # None: off when stderr is not a terminal
    )
    try:
        for path in images:
            cached = cache.get(path) if cache is not None else MISSING
            if cached is not MISSING:
                embeddings[path] = cached
                continue
            embeddings[path] = embed_one(path)
            if cache is not None:
                cache.put(path, embeddings[path])
                embedded_since_save += 1
                if embedded_since_save >= save_every:
                    cache.save()
                    embedded_since_save = 0
    finally:
        if cache is not None:
            cache.save()
    return embeddings
