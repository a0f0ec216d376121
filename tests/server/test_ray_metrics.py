"""Merging replicas' metrics for /metrics under ``serve --ray`` (no Ray cluster needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from turborank.server.ray_metrics import ReplicaMetrics  # noqa: E402


def samples(text: bytes, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if s.name == name
    }


def test_a_replica_renders_its_own_and_the_others_metrics_labelled_by_replica():
    first, second = ReplicaMetrics("r1"), ReplicaMetrics("r2")
    first.requests.labels("/v1/rerank", "200").inc(3)
    second.requests.labels("/v1/rerank", "200").inc(5)
    second.queue_tokens.labels("small").set(7)
    first.others = {"r2": second.own_text()}
    rendered = first.render()
    route = (("route", "/v1/rerank"), ("status", "200"))
    assert samples(rendered, "turborank_requests_total") == {
        (("replica", "r1"), *route): 3.0,
        (("replica", "r2"), *route): 5.0,
    }
    assert samples(rendered, "turborank_queue_tokens")[(("model", "small"), ("replica", "r2"))] == 7.0
    first.requests.labels("/v1/rerank", "200").inc()  # its own numbers are always current
    assert samples(first.render(), "turborank_requests_total")[(("replica", "r1"), *route)] == 4.0
