"""Fixtures shared across the tree: the service's (a real app on SQLite and PostgreSQL,
keys, photos) live in tests/support/service.py."""

from pathlib import Path

import pytest

from tests.support.factories import labelled_set

pytest_plugins = ["tests.support.service"]


@pytest.fixture(scope="session")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/data/faces as a labelled face set: 12 people, 2 LFW photos each."""
    return labelled_set(tmp_path_factory.mktemp("sets") / "small")
