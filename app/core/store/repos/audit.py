"""The audit trail (who changed what, when, with what outcome) and recorded decisions.

`record` is the one call every change makes, on the session of the change itself: the
row commits or rolls back with it, so the trail never misses a change nor shows one
that did not happen. Its log line (logger `facesvc.audit`) is written only after the
commit, for the same reason. Rows hold ids, never a key's secret, an image or an
embedding.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.access import Principal, Scope
from app.core.logs import current_request_id
from app.core.store.rows.audit import AuditEvent, DecisionRecord

log = logging.getLogger("facesvc.audit")

# Who acts when the command line changes something (`facesvc keys create`).
CLI = Principal(name="cli", scopes=frozenset({Scope.admin.value}), prefix=None)
OK = "ok"
_LINES = "facesvc.audit_lines"

Target = dict[str, str | int | None]


def actor_of(principal: Principal) -> tuple[str, str]:
    """(actor, actor_name): the key's public prefix (or "cli", "open-mode") and name."""
    return principal.prefix or principal.name, principal.name


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    target: dict[str, Any],
    *,
    outcome: str = OK,
) -> AuditEvent:
    """Add an audit row to the session's transaction; its log line follows the commit.
    `action` is "<thing>.<verb>" (identity.create, face.delete, key.revoke,
    collection.create, ...); `target` the ids it touched."""
    who, name = actor_of(actor)
    row = AuditEvent(
        actor=who,
        actor_name=name,
        action=action,
        target={k: _plain(v) for k, v in target.items()},
        outcome=outcome,
        request_id=current_request_id(),
    )
    session.add(row)
    await session.flush()
    _log_after_commit(session.sync_session, row)
    return row


def _plain(value: Any) -> str | int | None:
    if value is None or isinstance(value, int):
        return value
    return str(value)  # UUIDs and the like


def _log_after_commit(session: Session, row: AuditEvent) -> None:
    lines: list[dict[str, Any]] | None = session.info.get(_LINES)
    if lines is None:
        lines = session.info[_LINES] = []
        event.listen(session, "after_commit", _write_lines)
        event.listen(session, "after_rollback", _drop_lines)
    lines.append(event_fields(row))


def _write_lines(session: Session) -> None:
    lines = session.info.get(_LINES, [])
    for fields in lines:
        log.info(
            "%s by %s (%s): %s %s",
            fields["action"],
            fields["actor"],
            fields["actor_name"],
            fields["outcome"],
            " ".join(f"{k}={v}" for k, v in fields["target"].items()),
            extra={"audit": fields},
        )
    lines.clear()


def _drop_lines(session: Session) -> None:
    session.info.get(_LINES, []).clear()


def event_fields(row: AuditEvent) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at.isoformat() if row.at else None,
        "actor": row.actor,
        "actor_name": row.actor_name,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "request_id": row.request_id,
    }


@dataclass(frozen=True)
class Filters:
    """What a listing may be narrowed to; `before` is the id the previous page ended at."""

    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    actor: str | None = None
    before: int | None = None
    results: tuple[str, ...] = ()  # decisions only: any of these results; () is any
    outcome: str | None = None  # audit only: "ok", or "refused" (any error code)


def _narrowed(
    query: Select[Any], table: type[AuditEvent] | type[DecisionRecord], filters: Filters
) -> Select[Any]:
    if filters.since is not None:
        query = query.where(table.at >= _utc(filters.since))
    if filters.until is not None:
        query = query.where(table.at < _utc(filters.until))
    if filters.action is not None:
        query = query.where(table.action == filters.action)
    if filters.actor is not None:
        query = query.where(table.actor == filters.actor)
    if filters.before is not None:
        query = query.where(table.id < filters.before)
    return query


def _utc(moment: datetime) -> datetime:
    """In UTC, as stored (SQLite keeps the digits, not the offset); naive means UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


async def list_events(session: AsyncSession, filters: Filters, limit: int) -> list[AuditEvent]:
    """Newest first."""
    query = _narrowed(select(AuditEvent), AuditEvent, filters)
    if filters.outcome == OK:
        query = query.where(AuditEvent.outcome == OK)
    elif filters.outcome is not None:  # refused: whatever error refused it
        query = query.where(AuditEvent.outcome != OK)
    rows = await session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))
    return list(rows.all())


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """One verify or recognize answer (one row per face for recognize)."""

    action: str  # "verify" | "recognize"
    result: str  # "match" | "no_match" | "known" | "unknown"
    identity_id: uuid.UUID | None
    distance: float | None
    threshold: float
    collection: str | None = None


async def add_decisions(
    session: AsyncSession, actor: Principal, decisions: Sequence[Decision]
) -> None:
    who, name = actor_of(actor)
    rid = current_request_id()
    session.add_all(
        DecisionRecord(
            actor=who,
            actor_name=name,
            action=d.action,
            result=d.result,
            identity_id=str(d.identity_id) if d.identity_id else None,
            distance=d.distance,
            threshold=d.threshold,
            collection=d.collection,
            request_id=rid,
        )
        for d in decisions
    )
    await session.flush()


async def prune_decisions(session: AsyncSession, older_than: datetime) -> int:
    """Delete the decisions recorded before `older_than`; how many went."""
    result = await session.execute(delete(DecisionRecord).where(DecisionRecord.at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


async def list_decisions(
    session: AsyncSession, filters: Filters, limit: int
) -> list[DecisionRecord]:
    """Newest first."""
    query = _narrowed(select(DecisionRecord), DecisionRecord, filters)
    if filters.results:
        query = query.where(DecisionRecord.result.in_(filters.results))
    rows = await session.scalars(query.order_by(DecisionRecord.id.desc()).limit(limit))
    return list(rows.all())
