"""Helpers every `facesvc` command shares, the service's and the lab's: the command's
settings, model options, the pipeline they ask for, and a database session for one
piece of work."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.core.store import db

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
    settings = getattr(args, "settings", None)
    if not isinstance(settings, Settings):
        raise TypeError("the command's arguments carry no settings (run it through app.cli.main)")
    return settings


def pipeline_from_args(args: argparse.Namespace) -> FacePipeline:
    settings = settings_of(args)
    if args.device:
        settings = settings.model_copy(update={"device": args.device})
    model = args.model
    if args.model_file:
        settings = settings.model_copy(update={"arcface_onnx": args.model_file})
        model = model or "arcface-onnx"
    return FacePipeline.load(settings, model)


def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
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
