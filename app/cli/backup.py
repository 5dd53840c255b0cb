"""`facesvc export` and `facesvc import` (the format: app/core/store/backup.py)."""

from __future__ import annotations

import argparse
import sys

from app.core.command_line import pipeline_from_args, settings_of, with_session
from app.core.errors import ValidationFailed
from app.core.store import backup


def export(args: argparse.Namespace) -> int:
    path = args.output
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        counts = with_session(
            settings_of(args), lambda s: backup.export(s, out.write, args.collection)
        )
    partial.replace(path)  # a file named as asked is always a whole export
    models = ", ".join(f"{n} {v} ({c})" for (n, v), c in sorted(counts.models.items()))
    print(
        f"exported {counts.collections} collection(s), {counts.identities} identities, "
        f"{counts.faces} faces{f' of {models}' if models else ''} to {path}"
    )
    return 0


def import_file(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValidationFailed(f"{args.file}: no such file")
    model = None if args.any_model else lambda: pipeline_from_args(args).model
    with args.file.open(encoding="utf-8") as lines:
        counts = with_session(settings_of(args), lambda s: backup.import_(s, lines, model))
    print(
        f"imported {counts.collections} collection(s) (existing names merged into), "
        f"{counts.identities} identities, {counts.faces} faces from {args.file}",
        file=sys.stdout,
    )
    return 0
