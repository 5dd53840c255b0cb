"""Service subcommands: `serve`, `db upgrade`, `keys create|list|revoke`, `reembed`."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.cli.exit_codes import BAD_INPUT, OK, USAGE
from app.core.access import Scope
from app.core.command_line import (
    model_options,
    pipeline_from_args,
    progress_bar,
    ready_engine,
    settings_of,
    with_session,
)

# No SQLAlchemy, no model here at import: `facesvc keys --help` starts at once
# (app/cli/parser.py); the commands import what they use.

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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
        action="extend",  # `--scope enroll --scope verify` keeps both
        required=True,
        choices=[s.value for s in Scope],
        help="admin (everything), enroll (enroll, add faces, rename; includes read), "
        "delete (delete identities and faces; includes read), read (list "
        "and get identities, rejected 1:N candidates), verify (verify/recognize/detect/"
        "models/style jobs), metrics (/metrics when FACESVC_METRICS=key); "
        "docs/service.md has the table",
    )
    create.add_argument(
        "--collection",
        action="append",
        metavar="NAME",
        help="bind the key to this collection (repeat for several); without it the key "
        "may use every collection. It gets 403 for any other (docs/service.md, Collections)",
    )
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument(
        "--expires-in",
        dest="expires_at",
        type=expires_in,
        metavar="DURATION",
        help="the key stops working after this long: 90m, 12h, 30d, 8w (default: never)",
    )
    expiry.add_argument(
        "--expires-at",
        dest="expires_at",
        type=expires_at,
        metavar="ISO-DATE",
        help="the key stops working at this time: 2027-01-31 (00:00 UTC) or "
        "2027-01-31T18:00+01:00 (no zone: UTC)",
    )
    create.set_defaults(func=_keys_create)
    listing = key_sub.add_parser(
        "list", help="list keys (never the secrets): scopes, created, expires, last used"
    )
    listing.set_defaults(func=_keys_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(func=_keys_revoke)

    reembed = sub.add_parser(
        "reembed",
        help="re-embed the gallery with another model from the stored face crops",
    )
    model_options(reembed)
    reembed.add_argument(
        "--skip-missing",
        action="store_true",
        help="re-embed what can be; leave faces whose photos were not kept",
    )
    reembed.add_argument("--dry-run", action="store_true", help="report counts, change nothing")
    reembed.set_defaults(func=_reembed)

    # `facesvc export` / `facesvc import` (app/cli/backup.py, docs/service.md "Backup")
    export = sub.add_parser(
        "export", help="write collections, identities, embeddings and crops as JSON lines"
    )
    export.add_argument("--output", "-o", type=Path, required=True, help="file to write")
    export.add_argument(
        "--collection", action="append", metavar="NAME", help="only this one (repeatable)"
    )
    export.set_defaults(func=_export)
    load = sub.add_parser("import", help="add the contents of a `facesvc export` file")
    model_options(load)
    load.add_argument("file", type=Path)
    load.add_argument(
        "--any-model",
        action="store_true",
        help="take faces of another model than the active one (then `facesvc reembed`)",
    )
    load.set_defaults(func=_import)


def _serve(args: argparse.Namespace) -> int:
    """One pool server per machine (unless FACESVC_INFERENCE_BACKEND=thread), warm
    before the API processes start, and every process's metrics in one directory
    (docs/architecture.md)."""
    settings = settings_of(args)
    # In a private runtime directory: the pool socket speaks pickles to its own user only.
    runtime = Path(tempfile.mkdtemp(prefix="facesvc-", dir=os.environ.get("XDG_RUNTIME_DIR")))
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # before prometheus_client loads
        (runtime / "metrics").mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(runtime / "metrics")
    import uvicorn

    from app.core import logs
    from app.core.store import db

    logs.configure(settings.log_level, settings.log_format)  # this process's lines too
    if settings.migrate_on_start:
        db.upgrade(settings.database_url)
        os.environ["FACESVC_AUTO_MIGRATE"] = "false"  # done once here, not per worker
    pool = None
    try:
        if settings.inference_backend != "thread":
            from app.core.serving.supervisor import Supervisor

            # Read by the API processes: they send their jobs there.
            os.environ["FACESVC_INFERENCE_POOL_SOCKET"] = str(runtime / "pool.sock")
            pool = Supervisor(runtime / "pool.sock")
            print("facesvc: waiting for the inference workers to warm up", file=sys.stderr)
            if not pool.start(timeout=600.0):
                print("facesvc: the inference pool did not become ready", file=sys.stderr)
                return USAGE  # the model or device: a setup problem
        try:
            uvicorn.run(
                "app.main:app_from_env",
                factory=True,
                host=args.host or settings.host,
                port=args.port or settings.port,
                workers=args.workers or settings.workers,
                log_level=settings.log_level.lower(),
                # uvicorn's loggers (access log included) in the service's format, in
                # every worker process from its start
                log_config=logs.dict_config(settings.log_level, settings.log_format),
                timeout_keep_alive=settings.keep_alive_s,
            )
        except SystemExit as exit_:  # uvicorn exits 1 when it cannot bind or start the app
            if exit_.code not in (None, 0):
                print("facesvc: the server did not start (see above)", file=sys.stderr)
                return USAGE
    finally:
        if pool is not None:
            pool.stop()
        shutil.rmtree(runtime, ignore_errors=True)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from app.core.store import db

    settings = settings_of(args)
    db.upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def expires_in(text: str, now: datetime | None = None) -> datetime:
    """`--expires-in 30d`: now plus a number of minutes, hours, days or weeks."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a positive number and a unit, m, h, d or w (e.g. 30d)"
        )
    try:
        return (now or datetime.now(UTC)) + timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r}: too far ahead") from None


def expires_at(text: str) -> datetime:
    """`--expires-at 2027-01-31` (midnight UTC) or an ISO time; without a zone, UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: not an ISO date or time (e.g. 2027-01-31 or 2027-01-31T18:00+01:00)"
        ) from None


def _keys_create(args: argparse.Namespace) -> int:
    from app.core.store.repos import keys

    row, key = with_session(
        settings_of(args),
        lambda s: keys.create_key(
            s, args.name, args.scope, args.collection, expires_at=args.expires_at
        ),
    )
    expiry = f", expires {_when(row.expires_at)}" if row.expires_at else ""
    print(f"created key {row.prefix} ({row.name}) with scopes {', '.join(row.scopes)}{expiry}")
    if args.collection:
        print(f"bound to the collections {', '.join(sorted(set(args.collection)))}")
    print("store it now; it is shown only once:")
    print(key)
    return 0


def _when(value: datetime | None, none: str = "-") -> str:
    if value is None:
        return none
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M}"


def _keys_list(args: argparse.Namespace) -> int:
    from app.core.store.repos import keys

    async def rows_and_collections(session: Any) -> list[tuple[Any, list[str] | None]]:
        return [
            (row, await keys.collection_names(session, row))
            for row in await keys.list_keys(session)
        ]

    rows = with_session(settings_of(args), rows_and_collections)
    now = datetime.now(UTC)
    # Times in UTC; last used to the minute (`keys.LAST_USED_EVERY`).
    print(
        f"{'prefix':<14} {'scopes':<22} {'created':<17} {'expires':<17} "
        f"{'last used':<17} {'revoked':<17} name (collections)"
    )
    for row, bound in rows:
        expires = _when(row.expires_at, "never")
        if row.expires_at is not None and keys.as_utc(row.expires_at) <= now:
            expires += "!"  # expired
        where = "" if bound is None else f" ({', '.join(bound) or 'none left'})"
        print(
            f"{row.prefix:<14} {','.join(row.scopes):<22} {_when(row.created_at):<17} "
            f"{expires:<17} {_when(row.last_used_at, 'never'):<17} "
            f"{_when(row.revoked_at):<17} {row.name}{where}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from app.core.store.repos import keys

    row = with_session(settings_of(args), lambda s: keys.revoke_key(s, args.prefix))
    print(f"revoked key {row.prefix} ({row.name})")
    return 0


def _reembed(args: argparse.Namespace) -> int:
    import asyncio  # here, not at the top: `--help` starts at once

    from app.core.store import db
    from app.domains.identities.reembed import reembed, stale_faces

    pipeline = pipeline_from_args(args)
    model = pipeline.model
    target = f"{model[0]} {model[1]}"
    settings = settings_of(args)

    async def run() -> int:
        engine = ready_engine(settings)
        try:
            await db.check_migrated(engine)
            sessions = db.create_sessionmaker(engine)
            async with sessions() as session:
                stale = await stale_faces(session, model)
            with_crop = [f.id for f in stale if f.has_crop]
            missing = [f for f in stale if not f.has_crop]
            sources = sorted({f"{f.model[0]} {f.model[1]}" for f in stale})
            print(
                f"{len(stale)} faces are embedded with another model than {target}"
                + (f" ({', '.join(sources)})" if sources else "")
                + f": {len(with_crop)} with a stored crop, {len(missing)} without"
            )
            if missing:
                identities = sorted({str(f.identity_id) for f in missing})
                print(
                    f"{len(missing)} faces of {len(identities)} identities cannot be "
                    "re-embedded: their photos were not kept (FACESVC_KEEP_THUMBNAILS was "
                    "off when they were enrolled); re-enroll them:",
                    file=sys.stderr,
                )
                for identity in identities:
                    print(f"  {identity}", file=sys.stderr)
            if args.dry_run:
                print("dry run: nothing changed")
                return 0
            if missing and not args.skip_missing:
                print(
                    "nothing changed; pass --skip-missing to re-embed the others",
                    file=sys.stderr,
                )
                return BAD_INPUT
            with progress_bar(args, total=len(with_crop), desc="re-embedding", unit="face") as bar:
                result = await reembed(
                    sessions, pipeline, with_crop, progress=lambda n: bar.update(n - bar.n)
                )
        finally:
            await engine.dispose()
        for face_id, why in result.failed.items():
            print(f"face {face_id}: not re-embedded: {why}", file=sys.stderr)
        print(
            f"re-embedded {len(result.done)} faces with {target}; "
            f"{len(missing)} left without a stored photo, {len(result.failed)} failed"
        )
        return BAD_INPUT if result.failed else OK

    return asyncio.run(run())


def _export(args: argparse.Namespace) -> int:
    from app.cli.backup import export

    return export(args)


def _import(args: argparse.Namespace) -> int:
    from app.cli.backup import import_file

    return import_file(args)
