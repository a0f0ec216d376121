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


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--port", "-1"),
        ("--port", "70000"),  # was an OverflowError from the socket, after the models had loaded
        ("--log-level", "foo"),
        ("--max-tokens-per-doc", "5"),  # every request then got 422 for a setting the client never sent
        ("--max-chunks-per-doc", "0"),
        ("--request-timeout", "0"),  # every request then got 504 and /health 503
        ("--request-timeout", "-1"),
        ("--request-timeout", "nan"),
        ("--threads", "0"),
        ("--graceful-timeout", "-1"),
    ],
)
def test_out_of_range_settings_name_the_flag_and_its_env_var(flag, value):
    env_var = "TURBORANK_" + flag.removeprefix("--").replace("-", "_").upper()
    named = rf"{flag} \(env {env_var}\)"
    with pytest.raises(InputError, match=named):
        from_sources(parse([flag, value]), {})
    with pytest.raises(InputError, match=named):
        from_sources(None, {env_var: value})


def test_log_level_is_case_insensitive():
    assert ServerConfig(log_level="WARNING").log_level == "warning"  # uvicorn knows only lower case


def test_max_tokens_per_doc_above_a_models_positions_is_refused():
    from turborank.server.app import load_models

    from .conftest import MINI

    # The flag used to be capped at the model's positions (8,192 here) without a word.
    config = ServerConfig(model=[f"mini={MINI}"], device="cpu", threads=1, max_tokens_per_doc=100000)
    with pytest.raises(InputError, match=r"--max-tokens-per-doc .* at most 8192 for model 'mini'"):
        load_models(config)
