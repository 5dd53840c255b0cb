"""Uvicorn's access log without query strings: `?external_id=emp-42` names a person.

Uvicorn logs each request on the "uvicorn.access" logger with the arguments
(client, method, path with query string, HTTP version, status); the filter cuts the
path at "?" before any handler formats the record. `install` is idempotent.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class DropQueryString(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            record.args = (args[0], args[1], path, args[3], args[4])
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, DropQueryString) for f in logger.filters):
        logger.addFilter(DropQueryString())
