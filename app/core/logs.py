"""Log lines an operator can use: ISO 8601 UTC time, level, logger, request id, message;
as text or one JSON object per line (FACESVC_LOG_FORMAT). The standard library only:
`logging` formats, a `contextvars` variable carries the request id (set by
`app.api.request_id`), so every line a request causes, uvicorn's access log included,
names it without passing it around.

`configure` is called once at service start (`facesvc serve`, the uvicorn factory, the
pool server), never at import: tests and the lab keep their own logging.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("facesvc_request_id", default=None)

NO_REQUEST = "-"
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Loggers that keep no handler of their own: their lines reach the root's one format.
SERVICE_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "facesvc", "app")

# What a LogRecord carries by itself; anything else came in `extra=` and goes into JSON
# (but not uvicorn's `color_message`, the message again with terminal colour codes).
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


def current_request_id() -> str | None:
    return request_id.get()


def iso_utc(created: float) -> str:
    """2026-12-01T03:25:18.123Z: milliseconds, always UTC."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (the current request's, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or NO_REQUEST
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_utc(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and the
    record's `extra=` fields (the audit log's `audit` object, for one)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", None) or request_id.get(),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.name == "uvicorn.access":
            line.update(_access_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if line["request_id"] == NO_REQUEST:
            line["request_id"] = None
        return json.dumps(line, default=str, ensure_ascii=False)


def _access_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Uvicorn's access record has the arguments (client, method, path, version, status)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5:
        client, method, path, _, status = args
        return {"client": client, "method": method, "path": path, "status": status}
    return {}


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def dict_config(level: str, log_format: LogFormat) -> dict[str, Any]:
    """One handler on the root logger, with the request-id filter and our format; the
    service's and uvicorn's loggers propagate to it. Also uvicorn's `log_config`, so its
    worker processes are configured the same way before they log anything."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"facesvc": {"()": formatter, "log_format": log_format}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "filters": ["request_id"],
                "formatter": "facesvc",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            **{
                name: {"level": level.upper(), "handlers": [], "propagate": True}
                for name in SERVICE_LOGGERS
            },
            # alembic announces each of its autogenerate plugins at INFO on every start
            # (migrations run at start-up); what it migrates still shows.
            "alembic.runtime.plugins": {"level": "WARNING", "handlers": [], "propagate": True},
        },
    }


def configure(level: str, log_format: LogFormat) -> None:
    """Set the service's logging (idempotent: replaces what an earlier call set)."""
    logging.config.dictConfig(dict_config(level, log_format))
