"""The `facesvc` argument parser, built for the one subcommand that runs.

A subcommand's module imports torch, numpy or SQLAlchemy (seconds); `facesvc --help`
and `--version` need none of them. `COMMANDS` names each subcommand's module and its
one-line help, so the top-level parser lists every subcommand without importing any,
and only the module of the subcommand on the command line is imported and registers
its parsers (tests/cli/test_cli_startup.py checks that the table matches them).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.cli.exit_codes import EPILOG, USAGE


class Command:
    def __init__(self, module: str, help: str) -> None:
        self.module = module
        self.help = help


# In the order `facesvc --help` lists them. A module registers all its commands.
COMMANDS: dict[str, Command] = {
    "compare": Command("app.cli.face", "verify whether two photos show the same person"),
    "embed": Command("app.cli.face", "print the embedding of the largest face of each photo"),
    "eval": Command("app.lab.cli.evaluate", "accuracy on a labelled set (shared PROTOCOL.md)"),
    "serve": Command("app.cli.service", "run the REST service"),
    "db": Command("app.cli.service", "database migrations"),
    "keys": Command("app.cli.service", "API keys"),
    "reembed": Command(
        "app.cli.service", "re-embed the gallery with another model from the stored face crops"
    ),
    "export": Command(
        "app.cli.service", "write collections, identities, embeddings and crops as JSON lines"
    ),
    "import": Command("app.cli.service", "add the contents of a `facesvc export` file"),
    "train-triplet": Command(
        "app.lab.cli.learning",
        "train a projection head (or the backbone's last blocks) with the triplet loss",
    ),
    "train-verifier": Command(
        "app.lab.cli.learning",
        "learn P(same person) from pair features; compare it with the distance",
    ),
    "calibrate": Command(
        "app.lab.cli.calibrate",
        "choose tau for a target FAR (1:1) and FPIR (1:N) and store it for the service",
    ),
    "explain-units": Command(
        "app.lab.cli.explain",
        "draw the image patches (receptive fields) that activate units of a layer most",
    ),
    "stylize": Command("app.cli.stylize", "neural style transfer (Gatys et al.) of a photo"),
}


class FacesvcParser(argparse.ArgumentParser):
    """Usage errors exit with `USAGE` (argparse's own 2 is our "bad input"), and every
    parser, subcommands' included, takes -q/--quiet (no progress bars)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand's default must not undo `facesvc -q <command>`.
        self.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="no progress bars (they are also off when stderr is not a terminal)",
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _version() -> str:
    import app

    return f"facesvc {app.__version__} (Python {sys.version.split()[0]})"


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand on the command line: the first word that is not an option (the
    top-level parser has no option that takes a value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for `argv`: every subcommand listed, the chosen one's module imported.
    A subcommand missing from `COMMANDS` still works: then every module registers."""
    parser = FacesvcParser(
        prog="facesvc",
        description="Face verification (1:1) and recognition (1:N): the REST service, "
        "its database and keys, and the offline tools.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = chosen_command(argv)
    if chosen is not None and chosen not in COMMANDS:
        for every in dict.fromkeys(c.module for c in COMMANDS.values()):
            importlib.import_module(every).register(sub)
        return parser
    module = COMMANDS[chosen].module if chosen is not None else None
    registered = False
    for name, command in COMMANDS.items():
        if command.module != module:
            sub.add_parser(name, help=command.help)
        elif not registered:
            importlib.import_module(command.module).register(sub)
            registered = True
    return parser
