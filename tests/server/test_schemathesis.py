"""Property-based run of the server's own OpenAPI: no 5xx, and every response matches its schema."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from turborank.server.config import ServerConfig  # noqa: E402

from .conftest import SMALL, serve  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


def bounded(examples: int):
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )


def check(case, url: str, **kwargs) -> None:
    # positive_data_acceptance is left out on purpose: schema-valid requests can still break a documented
    # rule (unknown model -> 400 INPUT_MODEL_NOT_FOUND); every other check runs.
    case.call_and_validate(
        base_url=url, excluded_checks=[schemathesis.checks.positive_data_acceptance], **kwargs
    )


@schema.parametrize()
@bounded(30)
def test_openapi_conformance(case, server):
    check(case, server.url)


@pytest.fixture(scope="module")
def secured_server():
    with serve(ServerConfig(model=[f"small={SMALL}"], device="cpu", api_key="schema-key")) as running:
        yield running


@pytest.fixture(scope="module")
def secured_schema(secured_server):
    return schemathesis.openapi.from_url(f"{secured_server.url}/openapi.json")


secured = schemathesis.pytest.from_fixture("secured_schema")


@secured.parametrize()
@bounded(15)
def test_openapi_conformance_with_a_key(case, secured_server):
    """With auth on, schemathesis also checks that requests without the key are refused (ignored_auth)."""
    check(case, secured_server.url, headers={"Authorization": "Bearer schema-key"})
