"""Bearer-key auth: Jina's 401 codes, constant-time matching, open or protected health and metrics."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from turborank.errors import InputError
from turborank.server.auth import key_matches
from turborank.server.config import ServerConfig

from .conftest import SMALL, free_port, serve

REQUEST = {"query": "q", "documents": ["d"]}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# team keys\nkey-from-file\n\n")
    config = ServerConfig(
        model=[f"small={SMALL}"], device="cpu", api_key="key-one", api_keys_file=str(keys_file)
    )
    with serve(config) as running, running.client() as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank"])
def test_missing_and_invalid_keys(secured, path):
    payload = {**REQUEST, "model": "small"}
    if path == "/rerank":  # TEI's name for the documents; a body with both is refused
        payload["texts"] = payload.pop("documents")
    missing = secured.post(path, json=payload)
    assert missing.status_code == 401
    wrong = secured.post(path, json=payload, headers={"Authorization": "Bearer nope"})
    basic = secured.post(path, json=payload, headers={"Authorization": "Basic a2V5LW9uZQ=="})
    assert wrong.status_code == 401 and basic.status_code == 401
    if path == "/rerank":
        assert missing.json()["error_type"] == "unauthorized"
    else:
        assert missing.json()["code"] == "AUTH_MISSING_API_KEY"
        assert wrong.json()["code"] == "AUTH_INVALID_API_KEY"
        assert basic.json()["code"] == "AUTH_INVALID_API_KEY"
    for key in ("key-one", "key-from-file"):
        assert secured.post(path, json=payload, headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_health_and_metrics_open_by_default_models_protected(secured):
    assert secured.get("/health").status_code == 200
    assert secured.get("/metrics").status_code == 200
    assert secured.get("/v1/models").status_code == 401


def test_health_and_metrics_can_be_protected():
    config = ServerConfig(
        model=[f"small={SMALL}"], device="cpu", api_key="k", public_health=False, public_metrics=False
    )
    with serve(config) as running, running.client() as client:
        assert client.get("/health").json()["code"] == "AUTH_MISSING_API_KEY"
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200


def test_key_matches():
    keys = [b"alpha", b"beta"]
    assert key_matches("beta", keys) and not key_matches("gamma", keys) and not key_matches("", keys)
    assert not key_matches("alph", keys)


def serve_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`turborank serve` as a real process that is expected to refuse to start (bounded by a timeout)."""
    command = [sys.executable, "-m", "turborank.cli", "serve", "--model", f"small={SMALL}", *args]
    environment = {**os.environ, "TURBORANK_PORT": str(free_port()), **(env or {})}
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("comments", "holds no key"),
        ("blank", "holds no key"),
        ("empty env", "TURBORANK_API_KEY is set but empty"),
        ("empty flag", "--api-key is empty"),
        ("non-ascii", "printable ASCII"),
        ("both", "--no-auth contradicts"),
    ],
)
def test_auth_cannot_switch_off_silently(tmp_path, setup, message):
    keys = tmp_path / "keys.txt"
    keys.write_text({"comments": "# rotate monthly\n# key: see vault\n", "blank": "\n  \n"}.get(setup, "k\n"))
    args, env = {
        "comments": (["--api-keys-file", str(keys)], None),
        "blank": (["--api-keys-file", str(keys)], None),
        "empty env": ([], {"TURBORANK_API_KEY": ""}),
        "empty flag": (["--api-key", ""], None),
        "non-ascii": (["--api-key", "cl\u00e9-secr\u00e8te"], None),
        "both": (["--api-key", "k", "--no-auth"], None),
    }[setup]
    result = serve_process(*args, env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_open_server_needs_a_loopback_host_or_no_auth():
    assert ServerConfig(host="127.0.0.1").api_keys() == []
    assert ServerConfig(host="::1").api_keys() == []
    with pytest.raises(InputError, match="--no-auth"):
        ServerConfig(host="0.0.0.0").api_keys()
    assert ServerConfig(host="0.0.0.0", auth=False).api_keys() == []
    with pytest.raises(InputError, match="--auth needs a key"):
        ServerConfig(auth=True).api_keys()


def test_open_server_is_logged_and_shown(caplog):
    config = ServerConfig(model=[f"small={SMALL}"], device="cpu", auth=False)
    with serve(config) as running, running.client() as client:
        assert client.get("/health").json()["auth"] is False
        assert client.post("/v1/rerank", json=REQUEST).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any('"event": "auth_off"' in w and "--no-auth" in w for w in warnings)


def test_health_shows_auth_on(secured):
    assert secured.get("/health").json()["auth"] is True


@pytest.mark.parametrize("header", [b"Bearer key-on\xc3\xa9", b"Bearer key-on\xe9", b"Bearer \xe9\xe9"])
def test_non_ascii_keys_are_refused_alike(secured, header):
    response = secured.post("/v1/rerank", json=REQUEST, headers={"Authorization": header})
    assert response.status_code == 401 and response.json()["code"] == "AUTH_INVALID_API_KEY"
    assert "ASCII" in response.json()["detail"]
