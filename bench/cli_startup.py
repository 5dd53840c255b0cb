"""Start-up time of the `facesvc` command line: each command run in a fresh process.

    python -m bench.cli_startup [--runs 15] [--before DIR] [--command='--help' ...]

A run is what the `facesvc` console script does (`from app.cli import main`), in a new
Python process with PYTHONPATH at a checkout, timed from spawn to exit (interpreter
start-up included). `--before DIR` times another checkout's code too (e.g. the commit
before the lazy imports); the two take turns, run by run, so background load hits both
alike. Prints the median, fastest and slowest of --runs runs per command and checkout,
and each command's exit status. Goal (issue 13): `facesvc --help` at most 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COMMANDS = ["--help", "--version", "compare --help", "keys create --help"]
ENTRY = "import sys; from app.cli import main; sys.exit(main())"  # the console script


def time_once(checkout: Path, argv: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *argv],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", type=Path, help="another checkout to time as well")
    parser.add_argument(
        "--command",
        dest="commands",
        action="append",
        help="a command line to time, repeatable: --command='--help' (default: "
        + ", ".join(DEFAULT_COMMANDS)
        + ")",
    )
    args = parser.parse_args()
    args.commands = args.commands or DEFAULT_COMMANDS
    checkouts = {"this": ROOT}
    if args.before is not None:
        checkouts = {"before": args.before.resolve(), **checkouts}
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, {os.cpu_count()} CPUs")
    print(f"{'command':<30} {'code':<7} {'median s':>9} {'min s':>7} {'max s':>7}  exit")
    for command in args.commands:
        argv = shlex.split(command)
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        codes: dict[str, set[int]] = {name: set() for name in checkouts}
        for _ in range(args.runs):
            for name, checkout in checkouts.items():  # take turns
                seconds, code = time_once(checkout, argv)
                times[name].append(seconds)
                codes[name].add(code)
        for name in checkouts:
            row = times[name]
            print(
                f"facesvc {command:<22} {name:<7} {statistics.median(row):>9.3f} "
                f"{min(row):>7.3f} {max(row):>7.3f}  {','.join(map(str, sorted(codes[name])))}"
            )


if __name__ == "__main__":
    main()
