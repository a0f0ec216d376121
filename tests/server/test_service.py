"""RerankService.plan_options: how request and server limits become the planner's pair length."""

from types import SimpleNamespace

import pytest

from turborank.server.config import ServerConfig
from turborank.server.service import RerankRequest, RerankService

# Like the shipped default model: tuned for 384 tokens per pair, position table of 512.
RERANKER = SimpleNamespace(max_length=384, max_positions=512, long_documents="truncate")


def pair_length(server_limit: int | None, requested: int | None) -> int:
    service = RerankService(ServerConfig(max_tokens_per_doc=server_limit), {"m": object()}, metrics=None)
    request = RerankRequest(query="q", documents=["d"], max_tokens_per_doc=requested)
    return service.plan_options(request, RERANKER)["max_length"]


@pytest.mark.parametrize(
    ("server_limit", "requested", "expected"),
    [
        (None, None, 384),  # the model's default length
        (None, 64, 64),  # a request may ask for less
        (None, 512, 512),  # ... or for more, up to the model's positions
        (None, 4096, 512),  # Cohere's default 4,096 stops at the position limit
        (256, None, 256),  # the operator's setting is the default
        (256, 512, 256),  # ... and the ceiling
        (8192, None, 512),  # never past the model's positions, whatever the operator sets
    ],
)
def test_pair_length_from_request_server_and_model(server_limit, requested, expected):
    assert pair_length(server_limit, requested) == expected
