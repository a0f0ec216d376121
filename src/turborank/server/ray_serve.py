"""``turborank serve --ray``: the server's own FastAPI app, as Ray Serve replicas behind Ray's proxy.

Each replica builds the app with ``create_app`` (every route, dialect, error, auth, limit and metric) and
keeps turborank's token-budget scheduler, which packs batches across requests better than
``@serve.batch``. Ray adds the replicas, the proxy, autoscaling and the replacement of crashed replicas.
``build_app`` is also the ``import_path`` target for KubeRay's RayService (see deploy/).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from typing import Any

import httpx
from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InputError
from ..ray_cluster import connect
from .app import create_app
from .config import ServerConfig, from_sources
from .logs import configure_logging
from .ray_metrics import ReplicaMetrics

log = logging.getLogger("turborank.server")

APP_NAME = "turborank"
HEALTH_PERIOD_S = 10.0  # Ray's default: how often each replica's health check runs


def replica_config(config: ServerConfig) -> ServerConfig:
    """The config a replica runs: torch threads default to its CPUs, so replicas never oversubscribe."""
    threads = config.threads or max(1, round(config.num_cpus))
    return dataclasses.replace(config, threads=threads)


def deployment_options(config: ServerConfig) -> dict[str, Any]:
    """Ray Serve deployment options from the server flags.

    Raises:
        InputError: inconsistent replica counts.
    """
    threads = replica_config(config).threads
    options: dict[str, Any] = {
        "ray_actor_options": {
            "num_cpus": config.num_cpus,
            "num_gpus": config.num_gpus,
            # Ray sets OMP_NUM_THREADS to the actor's CPUs; keep it equal to torch's threads.
            "runtime_env": {"env_vars": {"OMP_NUM_THREADS": str(threads)}},
        },
        "max_ongoing_requests": config.max_ongoing_requests,
        "graceful_shutdown_timeout_s": config.graceful_timeout,
        "health_check_period_s": HEALTH_PERIOD_S,
        # A health check runs a real inference ahead of the queue, but behind the batch on the CPU.
        "health_check_timeout_s": max(30.0, config.request_timeout),
    }
    if config.max_replicas is None:
        if config.min_replicas is not None:
            raise InputError("--min-replicas needs --max-replicas (autoscaling between the two)")
        options["num_replicas"] = config.replicas
        return options
    low = 1 if config.min_replicas is None else config.min_replicas
    if not 0 <= low <= config.max_replicas or config.max_replicas < 1:
        raise InputError(
            f"need 0 <= --min-replicas ({low}) <= --max-replicas ({config.max_replicas}) and a maximum of 1+"
        )
    options["autoscaling_config"] = {
        "min_replicas": low,
        "max_replicas": config.max_replicas,
        "initial_replicas": max(low, 1),
        "target_ongoing_requests": config.target_ongoing_requests,
    }
    return options


class DropRequestIdHeader:
    """Leave X-Request-Id to Ray's proxy, which adds the same id (the app took it from the proxy's request
    header); without this, clients get the header twice."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_without_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                del MutableHeaders(scope=message)["x-request-id"]
            await send(message)

        await self.app(scope, receive, send_without_id)


def replica_app(config: ServerConfig, metrics: ReplicaMetrics) -> FastAPI:
    """The app one replica serves; Ray calls this on the replica, so models load there, not in the driver."""
    app = create_app(config, metrics=metrics)
    app.add_middleware(DropRequestIdHeader)
    return app


@serve.ingress()
class TurborankReplica:
    """One replica: the app from ``replica_app``, plus a health check that runs the app's /health."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        keys = config.api_keys()
        self.health_headers = (
            {} if config.public_health or not keys else {"Authorization": f"Bearer {keys[0]}"}
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        self.metrics = ReplicaMetrics(serve.get_replica_context().replica_id.unique_id)
        return replica_app(self.config, self.metrics)

    async def check_health(self) -> None:
        """Ray's own check only sees the process alive; /health runs a real inference per model.

        It also swaps metrics with the other replicas, so any one of them can answer /metrics for all.
        """
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            response = await client.get("/health", headers=self.health_headers)
        if response.status_code != 200:
            raise RuntimeError(f"/health answered {response.status_code}: {response.text[:200]}")
        await self.metrics.exchange()


def build_deployment(config: ServerConfig) -> Application:
    """The Ray Serve application: ``create_app`` behind ``serve.ingress``, one app per replica."""
    config = replica_config(config)
    return serve.deployment(TurborankReplica, name=APP_NAME, **deployment_options(config)).bind(config)


def build_app(args: dict[str, Any]) -> Application:
    """RayService / ``serve run`` entry point: ``args`` are ServerConfig fields, else TURBORANK_* env vars."""
    unknown = set(args) - {f.name for f in dataclasses.fields(ServerConfig)}
    if unknown:
        raise InputError(f"unknown turborank settings {sorted(unknown)}: use ServerConfig field names")
    # Ray's proxy binds the port, not this config, and on a cluster it listens beyond the machine: the
    # auth rule for a non-loopback host applies (a key, or auth=false on purpose) unless args say otherwise.
    config = dataclasses.replace(from_sources(), **{"host": "0.0.0.0", **args})
    return build_deployment(config)


def run(config: ServerConfig) -> None:
    """Deploy on Ray (joining ``--ray-address`` or starting a local Ray) and serve until SIGINT/SIGTERM."""
    import ray

    configure_logging(config.log_level, config.log_format)
    started_here = connect(config.ray_address)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(build_deployment(config), name=APP_NAME, route_prefix="/")
        log.info('{"event": "ray_serve_ready", "url": "http://%s:%d"}', config.host, config.port)
        stop.wait()
        # Replicas stop taking requests, finish in-flight ones (up to --graceful-timeout) and drain.
        serve.delete(APP_NAME)
    finally:
        if started_here:
            serve.shutdown()
            ray.shutdown()
