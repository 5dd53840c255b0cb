"""`facesvc` command line. Each module in this package registers its own subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.core.config import Settings
from app.core.errors import FacesvcError


def build_parser() -> argparse.ArgumentParser:
    from app.cli import face, service, stylize
    from app.lab.cli import calibrate, evaluate, explain, learning

    parser = argparse.ArgumentParser(prog="facesvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    face.register(sub)
    evaluate.register(sub)
    service.register(sub)
    learning.register(sub)
    calibrate.register(sub)
    explain.register(sub)
    stylize.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Read once here and handed down (`app.core.command_line.settings_of`).
    args.settings = Settings()
    try:
        return int(args.func(args) or 0)
    except FacesvcError as exc:
        print(f"error: {exc.code}: {exc.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
