"""A real ``turborank serve`` process: the README's curl lines work as pasted, and every log line is JSON."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import SMALL, free_port

README = Path(__file__).resolve().parents[2] / "README.md"
STARTUP_SECONDS = 120


def readme_curl_commands() -> list[str]:
    """Every curl command in the README's bash blocks, with backslash-continued lines joined."""
    commands, in_bash, pending = [], False, ""
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_bash = line.strip() == "```bash"
            continue
        if not in_bash:
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if pending.startswith("curl "):
                commands.append(pending.split("  #")[0])
            pending = ""
    return commands


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``turborank serve`` as the README starts it (model "turbo", key SECRET): (port, process, log)."""
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    port = free_port()
    command = [sys.executable, "-m", "turborank.cli", "serve", "--model", f"turbo={SMALL}"]
    command += ["--api-key", "SECRET", "--port", str(port), "--device", "cpu"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"turborank serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer SECRET"})
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"turborank serve did not answer within {STARTUP_SECONDS} s:\n{log.read_text()}")
            time.sleep(0.2)
    yield port, process, log
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_lines_work_as_pasted(served):
    port, _, _ = served
    commands = readme_curl_commands()
    assert len(commands) >= 5, commands
    for command in commands:
        # As pasted, plus a last line with the status; the body, headers and key are the README's.
        runnable = command.replace("localhost:8080", f"127.0.0.1:{port}") + " -sS -w '\\n%{http_code}'"
        done = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr)
        body, status = done.stdout.rsplit("\n", 1)
        assert status == "200", (command, body)
        json.loads(body)


def test_every_log_line_is_json_uvicorn_included(served):
    port, process, log = served
    httpx.post(
        f"http://127.0.0.1:{port}/v1/rerank",
        headers={"Authorization": "Bearer SECRET"},
        json={"query": "capital of France?", "documents": ["Paris is the capital."]},
    )
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger"} <= set(line) for line in lines)
    messages = {(line["logger"], line.get("message", line.get("event"))) for line in lines}
    assert ("uvicorn.error", f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)") in messages
    assert ("uvicorn.error", "Shutting down") in messages
    assert ("turborank.server.access", "request") in messages
    assert ("turborank.server", "ready") in messages
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]  # one line per request: ours
    assert not [line for line in lines if "color_message" in line]
