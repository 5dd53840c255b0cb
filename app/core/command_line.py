"""Helpers every `facesvc` command shares, the service's and the lab's: the command's
settings, model options, the pipeline they ask for, progress bars, and a database
session for one piece of work.

Imported when a command's parser is built, so it imports nothing heavy at the top:
`facesvc <command> --help` must not wait for torch or SQLAlchemy."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
    from tqdm import tqdm

    from app.core.config import Settings
    from app.core.model.pipeline import FacePipeline

T = TypeVar("T")


def model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="embedding backbone (default: settings)")
    parser.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument(
        "--model-file",
        type=Path,
        help="ONNX file for arcface-onnx (sets FACESVC_ARCFACE_ONNX; implies that model)",
    )


def settings_of(args: argparse.Namespace) -> Settings:
    """The command's settings: read from the environment once per process, by
    `app.cli.main`, and handed down on its arguments."""
    from app.core.config import Settings

    settings = getattr(args, "settings", None)
    if not isinstance(settings, Settings):
        raise TypeError("the command's arguments carry no settings (run it through app.cli.main)")
    return settings


def pipeline_from_args(args: argparse.Namespace) -> FacePipeline:
    from app.core.model.pipeline import FacePipeline

    settings = settings_of(args)
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    model = args.model
    if args.model_file:
        settings = settings.model_copy(update={"arcface_onnx": args.model_file})
        model = model or "arcface-onnx"
    return FacePipeline.load(settings, model)


def shows_progress(args: argparse.Namespace) -> bool:
    """False with -q/--quiet (`app.cli.parser` puts it on every command)."""
    return not getattr(args, "quiet", False)


def progress_bar(
    args: argparse.Namespace | bool,
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
) -> tqdm[T]:
    """A tqdm bar on stderr (stdout stays clean for --json), off with --quiet and
    whenever stderr is not a terminal (tqdm's `disable=None`)."""
    from tqdm import tqdm

    show = args if isinstance(args, bool) else shows_progress(args)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if show else True,
        dynamic_ncols=True,
    )


def ready_engine(settings: Settings) -> AsyncEngine:
    """An engine on the configured database, migrated first when the settings say so
    (SQLite by default). Check it with `db.check_migrated` before the first query."""
    from app.core.store import db

    if settings.migrate_on_start:
        db.upgrade(settings.database_url)
    return db.create_engine(settings.database_url)


def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    import asyncio  # here, not at the top: `--help` starts at once

    from app.core.store import db

    async def run() -> T:
        engine = ready_engine(settings)
        try:
            await db.check_migrated(engine)
            async with db.create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())
