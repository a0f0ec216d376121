"""Server logging: one JSON object per line (timestamp, level, logger, message), uvicorn's lines included.

``create_app`` calls ``configure_logging``, so every host of the app (``turborank serve``, Ray Serve, a
plain ``uvicorn turborank...`` run) logs the same way. The handler goes on the ``turborank`` and
``uvicorn`` loggers rather than the root logger, so a host's own logging setup is left alone.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # what uvicorn and logging both accept
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(JsonFormatter):
    """JSON lines with ``timestamp``, ``level``, ``logger`` and ``message``.

    turborank's event lines are already JSON objects (``{"event": "request", ...}``); their fields are
    merged into the line instead of being nested as an escaped string.
    """

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,  # ISO 8601 in UTC
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data.pop("color_message", None)  # uvicorn's copy of the message with terminal colour codes
        message = log_data.get("message")
        if isinstance(message, str) and message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                return log_data
            if isinstance(fields, dict):
                del log_data["message"]
                log_data.update({k: v for k, v in fields.items() if k not in log_data})
        return log_data


class _Handler(logging.StreamHandler):
    """Marks the handler this module installed, so a second call replaces it instead of doubling lines."""


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """Send turborank's and uvicorn's loggers to stderr in one format, at ``level``.

    Raises:
        ValueError: an unknown format or level.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    handler = _Handler(sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    turborank, uvicorn, access = (
        logging.getLogger(name) for name in ("turborank", "uvicorn", "uvicorn.access")
    )
    access_on = bool(
        access.handlers
    )  # uvicorn's access log, if the host turned it on (turborank serve does not)
    for logger in (turborank, uvicorn, logging.getLogger("uvicorn.error"), access):
        for old in [h for h in logger.handlers if isinstance(h, _Handler) or logger is not turborank]:
            logger.removeHandler(old)
        logger.setLevel(level.upper())
    # uvicorn.error propagates to "uvicorn", which stops there so a host's root handler does not print
    # uvicorn's lines twice; turborank's lines still reach the root (pytest's caplog).
    turborank.addHandler(handler)
    uvicorn.addHandler(handler)
    uvicorn.propagate = False
    if access_on:
        access.addHandler(handler)
