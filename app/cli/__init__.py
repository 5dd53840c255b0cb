"""`facesvc` command line. Each module in this package registers its own subcommands;
`app.cli.parser` imports only the one that runs, so that `facesvc --help` starts at once,
and `app.cli.exit_codes` decides every exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.cli.exit_codes import FAILURE, USAGE, exit_code_of
from app.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        _read_settings(args)
    except Exception as exc:  # pydantic's ValidationError: a bad FACESVC_* value
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return USAGE
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:
        code, message = exit_code_of(exc)
        if code == FAILURE:
            import traceback

            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return code


def _read_settings(args: argparse.Namespace) -> None:
    """Read once here and handed down (`app.core.command_line.settings_of`)."""
    from app.core.config import Settings

    args.settings = Settings()


if __name__ == "__main__":
    sys.exit(main())
