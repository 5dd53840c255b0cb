"""The stored embedding format: existing databases hold these exact bytes."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.store.codec import embedding_from_bytes, embedding_to_bytes


def test_bytes_are_float32_little_endian_values_only() -> None:
    encoded = embedding_to_bytes(np.array([[1.0, -2.0, 0.5]], dtype=np.float64))
    assert encoded.dim == 3
    assert encoded.data == bytes.fromhex("0000803f000000c00000003f")


def test_round_trip_gives_a_writable_float32_vector() -> None:
    vector = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    decoded = embedding_from_bytes(embedding_to_bytes(vector).data, 512)
    assert decoded.dtype == np.float32 and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, vector)


def test_a_stored_vector_of_another_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="stored embedding has 3 values, expected 4"):
        embedding_from_bytes(embedding_to_bytes(np.ones(3)).data, 4)
