"""Health routes for load balancers and Kubernetes probes.

``/health/live`` (liveness) costs no inference: the event loop answers and every model's batching worker
is alive. ``/health/ready`` (readiness) and ``/health`` run a one-pair inference per model, ahead of the
queue, but reuse the result for ``--health-cache-seconds`` and share one probe among concurrent callers,
so a flood of probes costs at most one inference per model per period.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from .errors import JinaError, NotReady, openapi_responses
from .service import RerankService, Service

log = logging.getLogger("turborank.server")

HEALTH_QUERY, HEALTH_DOCUMENT = "health check", "a one-pair inference proves the model answers"
OPERATIONS_ONLY = (400, 408, 413, 422, 429, 499, 504)  # statuses a probe never answers


class Liveness(BaseModel):
    status: str


class Health(BaseModel):
    status: str
    models: dict[str, str] = Field(description="'ok' or 'failed' per served model")
    auth: bool = Field(description="whether the API routes need a key (false: started with --no-auth)")
    checked_seconds_ago: float = Field(description="age of the inference result (cached for a short while)")


class Readiness:
    """The cached, single-flight readiness probe of one app (lives in ``app.state.readiness``)."""

    def __init__(self, cache_seconds: float):
        self.cache_seconds = cache_seconds
        self.checked_at = -float("inf")
        self.states: dict[str, str] = {}
        self._probe: asyncio.Future | None = None

    async def check(self, service: RerankService) -> dict[str, str]:
        """Per-model states, from a probe at most ``cache_seconds`` old."""
        if time.monotonic() - self.checked_at <= self.cache_seconds:
            return self.states
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._run(service))
        # shield: a probe caller that disconnects must not cancel the probe the others wait for.
        return await asyncio.shield(self._probe)

    async def _run(self, service: RerankService) -> dict[str, str]:
        states = {}
        for name, served in service.models.items():
            try:
                plan = served.reranker.plan(HEALTH_QUERY, [HEALTH_DOCUMENT])
                deadline = time.monotonic() + service.config.request_timeout
                await service.score(served, plan, None, deadline, front=True)
                states[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is logged
                log.error("health probe of model %s failed: %r", name, exc)
                states[name] = "failed"
        self.states, self.checked_at = states, time.monotonic()
        return states


def health_router(dependencies: list) -> APIRouter:
    """The three probe routes; ``dependencies`` is the auth dependency unless health is public."""
    router = APIRouter(tags=["operations"], dependencies=dependencies)
    responses = openapi_responses(JinaError, exclude=OPERATIONS_ONLY)

    @router.get("/health/live", response_model=Liveness, responses=responses)
    async def live(service: Service) -> Liveness:
        """Liveness (no inference): the server answers and every model's batching worker runs."""
        stopped = [name for name, m in service.models.items() if not m.scheduler.running]
        if stopped:
            raise NotReady(f"the batching worker of {stopped} has stopped: restart the server")
        return Liveness(status="ok")

    async def ready(request: Request, service: Service) -> Health:
        readiness: Readiness = request.app.state.readiness
        states = await readiness.check(service)
        if any(state != "ok" for state in states.values()):
            raise NotReady(f"model health probes failed: {states}")
        return Health(
            status="ok",
            models=states,
            auth=bool(request.app.state.api_keys),
            checked_seconds_ago=round(time.monotonic() - readiness.checked_at, 3),
        )

    summary = "Readiness: a one-pair inference per model, reused for --health-cache-seconds"
    router.add_api_route("/health/ready", ready, response_model=Health, responses=responses, summary=summary)
    router.add_api_route("/health", ready, response_model=Health, responses=responses, summary=summary)
    return router
