"""Log lines: one JSON object each (timestamp, level, logger), uvicorn's included, set up by create_app."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from turborank.server.app import create_app
from turborank.server.config import ServerConfig
from turborank.server.logs import configure_logging

from .conftest import SMALL, serve


@pytest.fixture(autouse=True)
def restore_logging():
    """configure_logging changes process-wide loggers; put back what the next tests expect."""
    loggers = [
        logging.getLogger(name) for name in ("turborank", "uvicorn", "uvicorn.error", "uvicorn.access")
    ]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def json_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        assert {"timestamp", "level", "logger"} <= set(line)
        assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None
    return lines


def test_json_lines_merge_event_fields(capsys):
    configure_logging("info", "json")
    logging.getLogger("turborank.server.access").info(json.dumps({"event": "request", "status": 200}))
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("turborank.server").debug("below the level")
    access, uvicorn = json_lines(capsys.readouterr().err)
    assert access["logger"] == "turborank.server.access" and access["level"] == "INFO"
    assert access["event"] == "request" and access["status"] == 200 and "message" not in access
    assert uvicorn["logger"] == "uvicorn.error" and uvicorn["message"] == "Started server process [42]"


def test_configuring_twice_does_not_double_lines(capsys):
    configure_logging("info", "json")
    configure_logging("warning", "text")
    logging.getLogger("uvicorn.error").warning("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING uvicorn.error: once")


def test_app_factory_configures_logging(capsys):
    # Ray Serve and other hosts build the app with create_app and never call run().
    create_app(ServerConfig(model=[f"small={SMALL}"], log_level="debug"))
    logging.getLogger("uvicorn.error").debug("from a host's uvicorn")
    lines = json_lines(capsys.readouterr().err)
    (line,) = [line for line in lines if line["logger"] == "uvicorn.error"]
    assert line["message"] == "from a host's uvicorn" and line["level"] == "DEBUG"
    # The app's own lines (here the warning that no API key is set) come out as JSON too.
    assert any(line["logger"] == "turborank.server" and line["event"] == "auth_off" for line in lines)


def test_log_format_is_checked():
    from turborank.errors import InputError

    with pytest.raises(InputError, match=r"--log-format \(env TURBORANK_LOG_FORMAT\) must be one of"):
        ServerConfig(log_format="xml")


def test_uvicorn_lines_stay_json_under_a_host_with_its_own_log_config(capsys):
    # conftest's serve() starts uvicorn with its default log_config, which replaces the handlers on
    # uvicorn's loggers after create_app ran; the app's startup puts the JSON handler back.
    with serve(ServerConfig(model=[f"small={SMALL}"], device="cpu")):
        capsys.readouterr()
        logging.getLogger("uvicorn.error").warning("under a host's uvicorn")
        (line,) = json_lines(capsys.readouterr().err)
    assert line["logger"] == "uvicorn.error" and line["message"] == "under a host's uvicorn"


def test_access_log_follows_the_host(capsys):
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False  # what uvicorn's access_log=False leaves (turborank serve: one line of its own)
    configure_logging("info", "json")
    access.info("dropped")
    access.addHandler(logging.StreamHandler())  # a host's dictConfig that wants uvicorn's access log
    configure_logging("info", "json")
    access.info('127.0.0.1:5000 - "POST /rerank HTTP/1.1" 200')
    (line,) = json_lines(capsys.readouterr().err)
    assert line["logger"] == "uvicorn.access" and "POST /rerank" in line["message"]
