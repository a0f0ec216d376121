"""ServerConfig: every field is a flag and an env var; flags beat env vars beat defaults."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from turborank.errors import InputError
from turborank.server.config import ServerConfig, add_arguments, from_sources


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_every_field_has_a_flag():
    args = parse([])
    assert set(vars(args)) == {f.name for f in dataclasses.fields(ServerConfig)}


def test_precedence_flag_env_default():
    env = {"TURBORANK_PORT": "9000", "TURBORANK_HOST": "0.0.0.0", "TURBORANK_AUTO_TRUNCATE": "false"}
    config = from_sources(parse(["--port", "9100", "--model", "a=/x", "--model", "b=/y"]), env)
    assert config.port == 9100 and config.host == "0.0.0.0" and config.auto_truncate is False
    assert config.model == ["a=/x", "b=/y"]
    assert config.request_timeout == ServerConfig().request_timeout


def test_env_types():
    env = {
        "TURBORANK_MODEL": "turbo=/m/turbo, tiny=/m/tiny",
        "TURBORANK_REQUEST_TIMEOUT": "2.5",
        "TURBORANK_PUBLIC_METRICS": "no",
        "TURBORANK_MAX_TOKENS_PER_DOC": "",
    }
    config = from_sources(None, env)
    assert config.model == ["turbo=/m/turbo", "tiny=/m/tiny"]
    assert (
        config.request_timeout == 2.5 and config.public_metrics is False and config.max_tokens_per_doc is None
    )
    assert not parse(["--no-public-health"]).public_health
    with pytest.raises(InputError, match="TURBORANK_PORT"):
        from_sources(None, {"TURBORANK_PORT": "eighty"})
    with pytest.raises(InputError, match="TURBORANK_AUTO_TRUNCATE"):
        from_sources(None, {"TURBORANK_AUTO_TRUNCATE": "maybe"})


def test_model_specs_and_keys(tmp_path):
    assert ServerConfig().model_specs() == [("default", None)]
    assert ServerConfig(model=["t=/a/b", "/models/tiny/"]).model_specs() == [
        ("t", "/a/b"),
        ("tiny", "/models/tiny/"),
    ]
    with pytest.raises(InputError, match="share a name"):
        ServerConfig(model=["x=/a", "x=/b"]).model_specs()
    with pytest.raises(InputError, match="api-keys-file"):
        ServerConfig(api_keys_file=str(tmp_path / "absent")).api_keys()
    assert ServerConfig(api_key="secret").redacted()["api_key"] == "***"


def test_invalid_settings_are_named():
    with pytest.raises(InputError, match="--long-documents"):
        ServerConfig(long_documents="split")
    with pytest.raises(InputError, match="--max-queue-tokens"):
        from_sources(None, {"TURBORANK_MAX_QUEUE_TOKENS": "0"})
