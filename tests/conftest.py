"""Fixtures shared across the tree: the service's (a real app on SQLite and PostgreSQL,
keys, photos) live in tests/support/service.py."""

pytest_plugins = ["tests.support.service"]
