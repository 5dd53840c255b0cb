"""Service subcommands: `serve`, `db upgrade`, `keys create|list|revoke`, `reembed`."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from app.core.access import Scope
from app.core.command_line import model_options, pipeline_from_args, settings_of, with_session
from app.core.store import db
from app.core.store.repos import keys as keys

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
        help="admin (everything), enroll (manage identities; includes read), read (list "
        "and get identities, rejected 1:N candidates), verify (verify/recognize/detect/"
        "models/style jobs), metrics (/metrics when FACESVC_METRICS=key); "
        "docs/service.md has the table",
    )
    create.set_defaults(func=_keys_create)
    listing = key_sub.add_parser("list", help="list keys (never the secrets)")
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
                return 1
        uvicorn.run(
            "app.main:app_from_env",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers or settings.workers,
            log_level=settings.log_level.lower(),
            # uvicorn's loggers (access log included) in the service's format, in every
            # worker process from its start
            log_config=logs.dict_config(settings.log_level, settings.log_format),
            timeout_keep_alive=settings.keep_alive_s,
        )
    finally:
        if pool is not None:
            pool.stop()
        shutil.rmtree(runtime, ignore_errors=True)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    db.upgrade(settings.database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    row, key = with_session(settings_of(args), lambda s: keys.create_key(s, args.name, args.scope))
    print(f"created key {row.prefix} ({row.name}) with scopes {', '.join(row.scopes)}")
    print("store it now; it is shown only once:")
    print(key)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    rows = with_session(settings_of(args), keys.list_keys)
    print(f"{'prefix':<14} {'scopes':<22} {'created':<20} {'revoked':<20} name")
    for row in rows:
        revoked = f"{row.revoked_at:%Y-%m-%d %H:%M:%S}" if row.revoked_at else "-"
        print(
            f"{row.prefix:<14} {','.join(row.scopes):<22} "
            f"{row.created_at:%Y-%m-%d %H:%M:%S}  {revoked:<20} {row.name}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    row = with_session(settings_of(args), lambda s: keys.revoke_key(s, args.prefix))
    print(f"revoked key {row.prefix} ({row.name})")
    return 0


def _reembed(args: argparse.Namespace) -> int:
    from app.domains.identities.reembed import reembed, stale_faces

    pipeline = pipeline_from_args(args)
    model = pipeline.model
    target = f"{model[0]} {model[1]}"
    settings = settings_of(args)
    if settings.migrate_on_start:
        db.upgrade(settings.database_url)

    async def run() -> int:
        engine = db.create_engine(settings.database_url)
        try:
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
                return 2
            result = await reembed(sessions, pipeline, with_crop)
        finally:
            await engine.dispose()
        for face_id, why in result.failed.items():
            print(f"face {face_id}: not re-embedded: {why}", file=sys.stderr)
        print(
            f"re-embedded {len(result.done)} faces with {target}; "
            f"{len(missing)} left without a stored photo, {len(result.failed)} failed"
        )
        return 1 if result.failed else 0

    return asyncio.run(run())
