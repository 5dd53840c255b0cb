"""`facesvc` starts at once and exits with the documented status (app/cli/exit_codes.py).

Start-up is checked by what a fresh process imports (deterministic on a loaded machine);
bench/cli_startup.py measures the time (docs/performance.md)."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import exit_codes, main
from app.cli.parser import COMMANDS, build_parser
from app.core.errors import (
    DatabaseNotReady,
    FacesvcError,
    ModelUnavailable,
    MultipleFaces,
    NoFaceFound,
    NotFound,
    ValidationFailed,
)

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / "tests" / "data" / "faces"
HEAVY = ("torch", "numpy", "sqlalchemy", "fastapi", "pydantic_settings", "PIL", "alembic")


def _imports_of(*argv: str) -> tuple[list[str], str]:
    """The heavy modules a fresh `facesvc ARGV` process had imported when it exited,
    and what it printed."""
    script = (
        "import json, sys\n"
        "from app.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED"), done.stdout + done.stderr
    loaded: list[str] = json.loads(last.removeprefix("LOADED "))
    return loaded, done.stdout


def test_help_and_version_import_nothing_heavy() -> None:
    loaded, out = _imports_of("--help")
    assert loaded == []
    for name, command in COMMANDS.items():  # every command listed with its help
        assert name in out and command.help.split()[0] in out
    assert "exit status" in out
    loaded, out = _imports_of("--version")
    assert loaded == [] and out.startswith("facesvc 0.1.0")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_commands_help_loads_no_model_and_no_database(command: str) -> None:
    """`facesvc <command> --help` imports its own module only: no torch, no SQLAlchemy."""
    loaded, out = _imports_of(command, "--help")
    assert "torch" not in loaded and "sqlalchemy" not in loaded, loaded
    assert out.startswith(f"usage: facesvc {command}")


def test_the_table_of_commands_matches_what_the_modules_register() -> None:
    """Each module registers exactly the commands `COMMANDS` gives it, with that help:
    `facesvc --help` (which imports none of them) shows what the modules define."""
    for module in dict.fromkeys(c.module for c in COMMANDS.values()):
        import importlib

        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        registered = {action.dest: action.help for action in sub._choices_actions}
        expected = {n: c.help for n, c in COMMANDS.items() if c.module == module}
        assert registered == expected, module


def test_an_unlisted_command_still_runs_through_every_module() -> None:
    parser = build_parser(["no-such-command"])
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["no-such-command"])
    assert exit_.value.code == exit_codes.USAGE


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NoFaceFound("x"), 2),
        (MultipleFaces("x"), 2),
        (ValidationFailed("x"), 2),
        (NotFound("x"), 2),
        (FacesvcError("x"), 2),
        (DatabaseNotReady("x"), 3),
        (ModelUnavailable("x"), 3),
        (FileNotFoundError(2, "No such file or directory", "a.jpg"), 3),
        (IsADirectoryError(21, "Is a directory", "dir"), 3),
        (RuntimeError("a bug"), 4),
        (KeyboardInterrupt(), 130),
    ],
)
def test_one_place_maps_errors_to_exit_codes(error: BaseException, code: int) -> None:
    assert exit_codes.exit_code_of(error)[0] == code


def test_a_missing_file_is_a_usage_error_not_different_people(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.jpg"
    assert main(["compare", str(missing), str(FACES / "Aaron_Sorkin_0001.jpg")]) == 3
    err = capsys.readouterr().err
    assert str(missing) in err and "No such file" in err and "Traceback" not in err
    assert main(["embed", str(tmp_path)]) == 3  # a folder
    assert "Is a directory" in capsys.readouterr().err
    assert main(["eval", "--data", str(missing)]) == 3
    assert "not a set folder" in capsys.readouterr().err


def test_bad_arguments_exit_with_the_usage_status(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["compare", "only-one.jpg"], ["no-such-command"], [], ["keys"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 3, argv
    assert "usage: facesvc" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_go_to_a_terminals_stderr_and_never_to_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    images = [str(FACES / "Aaron_Sorkin_0001.jpg"), str(FACES / "Aaron_Sorkin_0002.jpg")]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["embed", *images, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2  # stdout: the JSON alone
    assert "embedding" in terminal.getvalue() and "2/2" in terminal.getvalue()

    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main(["embed", *images, "--json", "--quiet"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert quiet.getvalue() == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.core.command_line import progress_bar

    for _ in progress_bar(True, range(3), desc="counting"):
        pass
    assert capsys.readouterr().err == ""  # pytest's capture is not a terminal


@pytest.mark.slow
def test_serve_on_a_port_in_use_exits_with_the_setup_status(tmp_path: Path) -> None:
    """uvicorn itself exits 1 when it cannot bind: that must not read as "different"."""
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **os.environ,
            "FACESVC_INFERENCE_BACKEND": "thread",
            "FACESVC_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(taken.getsockname()[1])],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=280,
        )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "address already in use" in done.stderr
    assert "the server did not start" in done.stderr
