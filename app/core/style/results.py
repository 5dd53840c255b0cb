"""Where finished images are kept: files in a directory, or the job's row."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

from app.core.config import Settings
from app.core.style.config import StyleConfig


class ResultStore:
    def __init__(self, config: StyleConfig | Settings) -> None:
        config = StyleConfig.of(config)
        self.in_database = config.stylize_storage == "database"
        self.directory = config.stylize_results_dir

    def put(self, job_id: uuid.UUID, png: bytes) -> tuple[str | None, bytes | None]:
        """(result_path, result_png) for the job's row: one of them is set."""
        if self.in_database:
            return None, png
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{job_id}.png"
        fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(png)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return str(path), None

    @staticmethod
    def read(path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def remove(path: str | None) -> None:
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
