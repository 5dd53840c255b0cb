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
from app.core.store.repos import audit
from app.core.store.rows.keys import ApiKey


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != "fsk" or not parts[1] or not parts[2]:
        return None
    return parts[1]


async def create_key(
    session: AsyncSession, name: str, scopes: list[str], *, actor: Principal = audit.CLI
) -> tuple[ApiKey, str]:
    """A new key row and the plain key (shown once); audited as `actor`'s."""
    try:
        wanted = sorted({Scope(s).value for s in scopes})
    except ValueError as exc:
        raise ValidationFailed(f"unknown scope; choose from {[s.value for s in Scope]}") from exc
    if not wanted:
        raise ValidationFailed("a key needs at least one scope")
    prefix = secrets.token_hex(6)
    key = f"fsk_{prefix}_{secrets.token_urlsafe(32).replace('_', '-')}"
    row = ApiKey(prefix=prefix, key_hash=hash_key(key), name=name, scopes=wanted)
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
    prefix = _split(key)
    if prefix is None:
        return None
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return Principal(name=row.name, scopes=frozenset(row.scopes), prefix=row.prefix)
