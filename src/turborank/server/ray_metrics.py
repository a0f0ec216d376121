"""turborank's metrics across Ray Serve replicas, so that /metrics through the proxy shows them all.

Ray's proxy sends each scrape to one replica, which on its own would show only its own counts. Each replica
publishes its registry to a small hub actor on every health check (every ``HEALTH_PERIOD_S``) and keeps
the others' latest copies; its /metrics renders its own current metrics and those copies, each sample
labelled with the replica it came from. Copies older than ``STALE_AFTER_S`` (a replica that died) drop out.
"""

from __future__ import annotations

import logging
import time

import ray
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from .metrics import Metrics

log = logging.getLogger("turborank.server")

HUB_NAME = "turborank-metrics-hub"
STALE_AFTER_S = 60.0
REPLICA_LABEL = "replica"


@ray.remote(num_cpus=0)
class MetricsHub:
    """The latest metrics text of each replica, with the time it arrived."""

    def __init__(self) -> None:
        self.latest: dict[str, tuple[float, str]] = {}

    def publish(self, replica: str, text: str) -> dict[str, str]:
        """Store one replica's metrics; return every other live replica's."""
        now = time.monotonic()
        self.latest[replica] = (now, text)
        self.latest = {r: (t, m) for r, (t, m) in self.latest.items() if now - t < STALE_AFTER_S}
        return {r: m for r, (_, m) in self.latest.items() if r != replica}


class ReplicaMetrics(Metrics):
    """This replica's metrics, rendered together with the other replicas' latest copies."""

    def __init__(self, replica: str) -> None:
        super().__init__()
        self.replica = replica
        self.others: dict[str, str] = {}

    def own_text(self) -> str:
        return super().render().decode("utf-8")

    async def exchange(self) -> None:
        """Publish this replica's metrics and fetch the others' (the hub is created by the first caller).

        A failure only leaves the copies as they were: metrics must never fail the health check.
        """
        try:
            hub = MetricsHub.options(name=HUB_NAME, get_if_exists=True).remote()
            self.others = await hub.publish.remote(self.replica, self.own_text())
        except ray.exceptions.RayError as exc:
            log.warning("could not swap metrics with the other replicas: %r", exc)

    def render(self) -> bytes:
        return merged({self.replica: self.own_text(), **self.others})


class _Families:
    """A collector that yields already-parsed metric families (the merge of several registries)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def merged(texts: dict[str, str]) -> bytes:
    """Prometheus texts of several replicas as one exposition, each sample labelled with its replica."""
    families: dict[str, Metric] = {}
    for replica, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            into = families.setdefault(
                family.name, Metric(family.name, family.documentation, family.type, family.unit)
            )
            into.samples += [s._replace(labels={**s.labels, REPLICA_LABEL: replica}) for s in family.samples]
    registry = CollectorRegistry()
    registry.register(_Families(list(families.values())))
    return generate_latest(registry)
