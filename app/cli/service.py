"""Service subcommands: `serve`, `db upgrade`, `keys create|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app import db
from app.config import Settings
from app.keys import service as keys
from app.keys.service import Scope

T = TypeVar("T")


def register(sub: Any) -> None:  # argparse's _SubParsersAction is private
    serve = sub.add_parser("serve", help="run the REST service")
    serve.add_argument("--host", help="bind address (default FACESVC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default FACESVC_PORT or 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(func=_serve)

    database = sub.add_parser("db", help="database migrations")
    db_sub = database.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations (to head)")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(func=_db_upgrade)

    key = sub.add_parser("keys", help="API keys")
    key_sub = key.add_subparsers(dest="keys_command", required=True)
    create = key_sub.add_parser("create", help="create a key; it is printed once, last")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        nargs="+",
        required=True,
        choices=[s.value for s in Scope],
        help="admin (everything), enroll (manage identities), verify (verify/recognize)",
    )
    create.set_defaults(func=_keys_create)
    listing = key_sub.add_parser("list", help="list keys (never the secrets)")
    listing.set_defaults(func=_keys_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(func=_keys_revoke)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    if settings.migrate_on_start:
        db.upgrade(settings.database_url)
        os.environ["FACESVC_AUTO_MIGRATE"] = "false"  # done once here, not per worker
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level.lower(),
    )
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = Settings()
    db.upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = Settings()
    if settings.migrate_on_start:
        db.upgrade(settings.database_url)

    async def run() -> T:
        engine = db.create_engine(settings.database_url)
        try:
            async with db.create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _keys_create(args: argparse.Namespace) -> int:
    row, key = _with_session(lambda s: keys.create_key(s, args.name, args.scope))
    print(f"created key {row.prefix} ({row.name}) with scopes {', '.join(row.scopes)}")
    print("store it now; it is shown only once:")
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    rows = _with_session(keys.list_keys)
    print(f"{'prefix':<14} {'scopes':<22} {'created':<20} {'revoked':<20} name")
    for row in rows:
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M:%S}" if row.revoked_at else "-"
        print(
            f"{row.prefix:<14} {','.join(row.scopes):<22} "
            f"{row.created_at:%Y-%m-%d %H:%M:%S}  {revoked:<20} {row.name}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    row = _with_session(lambda s: keys.revoke_key(s, args.prefix))
    print(f"revoked key {row.prefix} ({row.name})")
    return 0
