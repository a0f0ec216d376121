"""Bearer-key auth: Jina's 401 codes, constant-time matching, open or protected health and metrics."""

from __future__ import annotations

import pytest

from turborank.server.auth import key_matches
from turborank.server.config import ServerConfig

from .conftest import SMALL, serve

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
    payload = {**REQUEST, "model": "small", "texts": ["d"]}
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
