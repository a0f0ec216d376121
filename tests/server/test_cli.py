"""`turborank serve` as a real process: settings from env vars, and SIGTERM finishes in-flight work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import MINI, SMALL, free_port, wait_ready


def test_serve_from_env_and_sigterm_drains(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "TURBORANK_MODEL": f"small={SMALL},mini={MINI}",
        "TURBORANK_PORT": str(port),
        "TURBORANK_DEVICE": "cpu",
        "TURBORANK_MAX_BATCH_TOKENS": "512",  # many small batches: the request below stays in flight a while
    }
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "turborank.cli", "serve", "--threads", "1"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, tmp_path / "server.log", seconds=60)
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["small", "mini"]
        documents = [f"document {i} " + "word " * 40 for i in range(400)]
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(
                httpx.post, url + "/v1/rerank", json={"query": "q", "documents": documents}, timeout=60
            )
            time.sleep(0.5)  # the request is being scored when SIGTERM arrives
            process.send_signal(signal.SIGTERM)
            response = future.result()
        assert response.status_code == 200 and len(response.json()["results"]) == 400
        # uvicorn re-raises the captured SIGTERM once shutdown is complete, so the status says "SIGTERM".
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    lines = (tmp_path / "server.log").read_text().splitlines()
    request_lines = [line for line in lines if '"event": "request"' in line]
    assert any('"path": "/v1/rerank"' in line and '"status": 200' in line for line in request_lines)
    assert all('"request_id": "' in line for line in request_lines)
    events = [json.loads(line).get("event") if line.startswith("{") else None for line in lines]
    stopped = events.index("stopped")
    assert stopped > max(lines.index(line) for line in request_lines)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "/nonexistent"], "no checkpoint directory at '/nonexistent'"),
        (["--model", f"small={SMALL}", "--dtype", "foo"], "dtype must be one of"),
        (["--model", f"small={SMALL}", "--port", "70000"], "--port (env TURBORANK_PORT)"),
    ],
)
def test_serve_startup_failure_is_one_error_line(flags, message):
    # These used to start uvicorn, print a traceback inside its JSON log and exit 3 ("Application startup
    # failed"); like every other subcommand, serve now says what is wrong in one line and exits 2.
    port = ["--port", str(free_port())] if "--port" not in flags else []
    result = subprocess.run(
        [sys.executable, "-m", "turborank.cli", "serve", "--threads", "1", "--device", "cpu", *port, *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith("turborank: error: "), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
