"""The byte format of a stored embedding (the `faces.embedding` column): float32,
little-endian, `dim` values, nothing else. Existing databases hold exactly these bytes,
so the format never changes; a new one would need a migration."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from app.core.store.vector_index import Vectors

_DTYPE = "<f4"


class EncodedEmbedding(NamedTuple):
    data: bytes
    dim: int  # the number of values (the `faces.dim` column)


def embedding_to_bytes(embedding: np.ndarray) -> EncodedEmbedding:
    vector = np.ascontiguousarray(embedding, dtype=_DTYPE).reshape(-1)
    return EncodedEmbedding(vector.tobytes(), int(vector.size))


def embedding_from_bytes(data: bytes, dim: int) -> Vectors:
    """The stored vector; ValueError when it does not hold `dim` values."""
    vector = np.frombuffer(data, dtype=_DTYPE)
    if vector.shape != (dim,):
        raise ValueError(f"stored embedding has {vector.size} values, expected {dim}")
    return vector.astype(np.float32)
