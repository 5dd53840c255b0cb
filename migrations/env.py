"""Alembic environment: the URL comes from Settings (FACESVC_DATABASE_URL)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from app.core.config import Settings
from app.core.store.base import Base
from app.core.store.db import sync_url
from app.core.store.rows import audit as _audit  # noqa: F401
from app.core.store.rows import calibrations as _calibrations  # noqa: F401
from app.core.store.rows import collections as _collections  # noqa: F401
from app.core.store.rows import identities as _identities  # noqa: F401  (registers tables)
from app.core.store.rows import index_changes as _index_changes  # noqa: F401
from app.core.store.rows import jobs as _stylize  # noqa: F401
from app.core.store.rows import keys as _keys  # noqa: F401

config = context.config
if config.config_file_name is not None and "database_url" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else sync_url(Settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
