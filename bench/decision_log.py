"""What recording a decision (FACESVC_RECORD_DECISIONS=true) adds to a verify: one
`DecisionLog.record` call, its own short transaction after the answer is decided.

    python bench/decision_log.py [--writes 300] [--postgres postgresql+psycopg://...]

Median and p99 of one record call on a SQLite file (WAL, as the service opens it) and,
with --postgres, on that database (its `decisions` table is cleared before and after).
The first write of a log also prunes (retention); the figures exclude it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import delete

from app.core.store import db
from app.core.store.audit_trail import DecisionLog
from app.core.store.repos.audit import CLI, Decision
from app.core.store.rows.audit import DecisionRecord


async def measure(url: str, writes: int) -> list[float]:
    db.upgrade(url)
    engine = db.create_engine(url)
    sessions = db.create_sessionmaker(engine)
    log = DecisionLog(sessions, enabled=True, retention_days=30)
    decision = [Decision("verify", "match", uuid.uuid4(), 0.123, 0.2842)]
    async with sessions() as session, session.begin():
        await session.execute(delete(DecisionRecord))
    await log.record(CLI, decision)  # the first write prunes: not counted
    seconds = []
    for _ in range(writes):
        start = time.perf_counter()
        await log.record(CLI, decision)
        seconds.append(time.perf_counter() - start)
    async with sessions() as session, session.begin():
        await session.execute(delete(DecisionRecord))
    await engine.dispose()
    return seconds


def report(name: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:<10} median {statistics.median(ms):.2f} ms  p99 {p99:.2f} ms  ({len(ms)} writes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--postgres", help="a Postgres URL to measure too")
    args = parser.parse_args()
    print("load average:", " ".join(f"{v:.2f}" for v in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        report("sqlite", asyncio.run(measure(url, args.writes)))
    if args.postgres:
        report("postgres", asyncio.run(measure(args.postgres, args.writes)))


if __name__ == "__main__":
    main()
