"""The exit status of every `facesvc` command, decided here and nowhere else.

    0  success; for `compare`: the same person
    1  `compare`: different people (nothing else exits 1)
    2  bad input: an image without a face, an unreadable image, a value out of range,
       an unknown key prefix (every `FacesvcError` not listed below)
    3  usage, file or setup: bad arguments, a missing or unreadable file, bad settings,
       a database that is unreachable or not migrated, model files missing
    4  an unexpected failure (a bug): the traceback is printed
  130  interrupted (Ctrl-C)

The README's "Command line" section shows the same table.
"""

from __future__ import annotations

import sys

from app.core.errors import DatabaseNotReady, FacesvcError, ModelUnavailable

SAME = OK = 0
DIFFERENT = 1
BAD_INPUT = 2
USAGE = 3
FAILURE = 4
INTERRUPTED = 130

EPILOG = (
    "exit status: 0 success (compare: same person), 1 compare: different people, "
    "2 bad input or no face, 3 usage, file or setup error (missing file, database not "
    "migrated), 4 unexpected failure"
)

# Core errors that mean "fix the setup", not "fix the input".
_SETUP_ERRORS: tuple[type[FacesvcError], ...] = (DatabaseNotReady, ModelUnavailable)


def exit_code_of(error: BaseException) -> tuple[int, str]:
    """The exit status for an exception a command raised, and the one line to print."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(error, FacesvcError):
        code = USAGE if isinstance(error, _SETUP_ERRORS) else BAD_INPUT
        return code, f"{error.code}: {error.detail}"
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return USAGE, f"{where}{error.strerror or error}"
    if _is_database_unreachable(error):
        return USAGE, f"cannot use the database: {_first_line(error)}"
    if _is_alembic_command_error(error):  # `db upgrade --revision` unknown, and the like
        return USAGE, f"migrations: {error}"
    if _is_pydantic_validation(error):
        return BAD_INPUT, f"validation_error: {error}"
    return FAILURE, f"unexpected {type(error).__name__}: {error}"


def _is_database_unreachable(error: BaseException) -> bool:
    # Only when SQLAlchemy is loaded already: this module must not import it.
    exc = sys.modules.get("sqlalchemy.exc")
    return exc is not None and isinstance(error, exc.OperationalError | exc.InterfaceError)


def _is_alembic_command_error(error: BaseException) -> bool:
    util = sys.modules.get("alembic.util.exc")
    return util is not None and isinstance(error, util.CommandError)


def _is_pydantic_validation(error: BaseException) -> bool:
    core = sys.modules.get("pydantic_core")
    return core is not None and isinstance(error, core.ValidationError)


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
