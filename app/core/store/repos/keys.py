"""Creating, listing, revoking and checking API keys.

A key looks like `fsk_<prefix>_<secret>`: the prefix is its public id (shown by
`facesvc keys list`, used for lookup), the secret 256 random bits. Only the SHA-256 of
the whole key is stored; with that much entropy a slow hash adds nothing. What a key's
scopes allow is `app.core.access`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.access import Principal, Scope
from app.core.errors import NotFound, ValidationFailed
from app.core.store.repos.collections import ids_of, names_of
from app.core.store.rows.keys import ApiKey


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "fsk" or not parts[1] or not parts[2]:
        return None
    return parts[1]


async def create_key(
    session: AsyncSession, name: str, scopes: list[str], collections: list[str] | None = None
) -> tuple[ApiKey, str]:
    """A new key row and the plain key (shown once). `collections`: the names of the
    collections it may use (None: all); each must exist, and is stored by id."""
    bound = await _collection_ids(session, collections)
    try:
        wanted = sorted({Scope(s).value for s in scopes})
    except ValueError as exc:
        raise ValidationFailed(f"unknown scope; choose from {[s.value for s in Scope]}") from exc
    if not wanted:
        raise ValidationFailed("a key needs at least one scope")
    prefix = secrets.token_hex(6)
    key = f"fsk_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}"
    row = ApiKey(prefix=prefix, key_hash=hash_key(key), name=name, scopes=wanted, collections=bound)
    session.add(row)
    await session.flush()
    return row, key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_key(session: AsyncSession, prefix: str) -> ApiKey:
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return row


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    prefix = _split(key)
    if prefix is None:
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    # a deleted collection drops out: its id is never reused (sqlite_autoincrement)
    bound = None if row.collections is None else await names_of(session, row.collections)
    return Principal(
        name=row.name,
        scopes=frozenset(row.scopes),
        prefix=row.prefix,
        collections=None if bound is None else frozenset(bound),
    )


async def _collection_ids(session: AsyncSession, names: list[str] | None) -> list[int] | None:
    if names is None:
        return None
    found = await ids_of(session, names)
    missing = sorted(set(names) - found.keys())
    if missing:
        raise NotFound(f"no collection named {', '.join(map(repr, missing))}")
    if not found:
        raise ValidationFailed("a key bound to collections needs at least one")
    return sorted(set(found.values()))


async def collection_names(session: AsyncSession, row: ApiKey) -> list[str] | None:
    """The names of the collections a key is bound to (None: all), for listings."""
    if row.collections is None:
        return None
    return sorted(await names_of(session, row.collections))
