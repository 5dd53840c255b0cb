"""Creating, listing, revoking and checking API keys.

A key looks like `fsk_<prefix>_<secret>`: the prefix is its public id (shown by
`facesvc keys list`, used for lookup), the secret 256 random bits. Only the SHA-256 of
the whole key is stored; with that much entropy a slow hash adds nothing. What a key's
scopes allow is `app.core.access`.

A key may expire (`expires_at`); after that it gets 401 saying so. Its `last_used_at`
is written at most once per `LAST_USED_EVERY`, not on every request: a write per
request would serialise a busy door's requests on SQLite's one write lock (and on the
key's row lock in Postgres, leaving a dead row version per request), while "used in the
last minute" is all an operator needs to tell a live key from a forgotten one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.access import Principal, Scope
from app.core.errors import NotFound, Unauthorized, ValidationFailed
from app.core.store.repos import audit
from app.core.store.repos.collections import ids_of, names_of
from app.core.store.rows.keys import ApiKey

log = logging.getLogger(__name__)

LAST_USED_EVERY = timedelta(minutes=1)


def as_utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they are stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "fsk" or not parts[1] or not parts[2]:
        return None
    return parts[1]


async def create_key(
    session: AsyncSession,
    name: str,
    scopes: list[str],
    collections: list[str] | None = None,
    *,
    expires_at: datetime | None = None,
    actor: Principal = audit.CLI,
) -> tuple[ApiKey, str]:
    """A new key row and the plain key (shown once); audited as `actor`'s.
    `collections`: the names of the collections it may use (None: all); each must exist,
    and is stored by id. `expires_at`: None never expires."""
    if expires_at is not None:
        expires_at = as_utc(expires_at)
        if expires_at <= datetime.now(UTC):
            raise ValidationFailed(f"the expiry {expires_at.isoformat()} is in the past")
    bound = await _collection_ids(session, collections)
    try:
        wanted = sorted({Scope(s).value for s in scopes})
    except ValueError as exc:
        raise ValidationFailed(f"unknown scope; choose from {[s.value for s in Scope]}") from exc
    if not wanted:
        raise ValidationFailed("a key needs at least one scope")
    prefix = secrets.token_hex(6)
    key = f"fsk_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}"
    row = ApiKey(
        prefix=prefix,
        key_hash=hash_key(key),
        name=name,
        scopes=wanted,
        collections=bound,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await audit.record(session, actor, "key.create", {"key": prefix, "name": name})
    return row, key


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.id))).all())


async def revoke_key(session: AsyncSession, prefix: str, *, actor: Principal = audit.CLI) -> ApiKey:
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
        await audit.record(session, actor, "key.revoke", {"key": prefix, "name": row.name})
    return row


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    """The key's caller; None for an unknown or revoked key, `Unauthorized` for an
    expired one. Records the use (`LAST_USED_EVERY`) in a short transaction of its own,
    so the session holds no connection when this returns."""
    prefix = _split(key)
    if prefix is None:
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    now = datetime.now(UTC)
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        raise Unauthorized(
            f"this API key expired at {as_utc(row.expires_at):%Y-%m-%dT%H:%M:%SZ}; "
            "ask for a new one (`facesvc keys create`)"
        )
    # a deleted collection drops out: its id is never reused (sqlite_autoincrement)
    bound = None if row.collections is None else await names_of(session, row.collections)
    if row.last_used_at is None or now - as_utc(row.last_used_at) >= LAST_USED_EVERY:
        await _record_use(session, row.id, now)
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


async def _record_use(session: AsyncSession, key_id: int, now: datetime) -> None:
    """Best effort: a key still works when its use cannot be recorded.

    The read's transaction ends first: on SQLite a read transaction that turns into a
    write fails at once when another request recorded the same key in between. The
    WHERE makes concurrent requests (other workers too) write it once."""
    await session.commit()
    try:
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_EVERY),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    except OperationalError as error:  # e.g. SQLite's write lock held past busy_timeout
        await session.rollback()
        log.warning("could not record the use of API key %d: %s", key_id, error)
