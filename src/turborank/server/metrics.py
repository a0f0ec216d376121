"""Prometheus metrics, kept in a registry per app so that several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

PAIR_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000)
TOKEN_BUCKETS = tuple(2**k for k in range(6, 21))
SECOND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Request, batch and queue metrics for one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "turborank_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "turborank_request_duration_seconds",
            "time from request start to response, by route",
            ["route"],
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.documents = Histogram(
            "turborank_request_documents",
            "documents per rerank request",
            ["model"],
            buckets=PAIR_BUCKETS,
            registry=r,
        )
        self.tokens = Histogram(
            "turborank_request_tokens",
            "tokens scored per rerank request",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "turborank_batch_size", "pairs per forward pass", ["model"], buckets=PAIR_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "turborank_batch_tokens",
            "real tokens per forward pass",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "turborank_batch_duration_seconds",
            "time of one forward pass",
            ["model"],
            buckets=SECOND_BUCKETS,
            registry=r,
        )
        self.queue_tokens = Gauge(
            "turborank_queue_tokens", "tokens waiting to be scored", ["model"], registry=r
        )
        self.queue_entries = Gauge(
            "turborank_queue_entries", "pairs waiting to be scored", ["model"], registry=r
        )

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
