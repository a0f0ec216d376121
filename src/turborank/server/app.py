"""The FastAPI app: ``create_app(config)`` builds it, the lifespan loads models and starts schedulers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from ..api import Reranker
from ..errors import TurborankError
from . import cohere, jina, tei
from .auth import require_api_key
from .config import ServerConfig
from .errors import (
    FRAMEWORK_STATUS,
    InternalError,
    InvalidBody,
    JinaError,
    NotReady,
    ServerError,
    as_server_error,
    openapi_responses,
    render,
    validation_error,
)
from .metrics import CONTENT_TYPE, Metrics
from .middleware import RequestContext
from .scheduler import Scheduler
from .service import RerankService, ServedModel, Service

log = logging.getLogger("turborank.server")

Loader = Callable[[ServerConfig], dict[str, Reranker]]
HEALTH_QUERY, HEALTH_DOCUMENT = "health check", "a one-pair inference proves the model answers"


def load_models(config: ServerConfig) -> dict[str, Reranker]:
    """Load every ``--model`` (the shipped model when none is given), keyed by served name."""
    models = {}
    for name, source in config.model_specs():
        reranker = Reranker.from_pretrained(
            source,
            device=config.device,
            dtype=config.dtype,
            num_threads=config.threads,
            max_batch_tokens=config.max_batch_tokens,
            backend=config.backend,
        )
        reranker.engine.max_batch_size = config.max_batch_size
        log.info("warmed up %s on pairs of %s tokens", name, reranker.warm_up())
        models[name] = reranker
    return models


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    owned_by: str = "turborank"
    max_length: int


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: str
    models: dict[str, str]


def create_app(config: ServerConfig, loader: Loader = load_models, metrics: Metrics | None = None) -> FastAPI:
    """Build the server app; models load when it starts (lifespan), not here.

    Args:
        config: resolved server settings.
        loader: returns {served name: Reranker}; tests pass one that wraps a fake or slow backend.
        metrics: where the app counts (default: its own registry); ``serve --ray`` passes one that
            also renders the other replicas'.

    Returns:
        The FastAPI app, ready for uvicorn.

    Example:
        >>> app = create_app(ServerConfig(model=["turbo=tests/fixtures/small"]))
        >>> uvicorn.run(app, port=8080)  # doctest: +SKIP
    """
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rerankers = await asyncio.to_thread(loader, config)
        models = {
            name: ServedModel(name, r, Scheduler(name, r.engine, config.max_queue_tokens, metrics))
            for name, r in rerankers.items()
        }
        for served in models.values():
            served.scheduler.start()
        app.state.service = RerankService(config, models, metrics)
        log.info(json.dumps({"event": "ready", "models": list(models), "config": config.redacted()}))
        try:
            yield
        finally:
            # uvicorn has already waited for in-flight requests; this drains anything still queued.
            for served in models.values():
                await served.scheduler.close()
            log.info(json.dumps({"event": "stopped"}))

    app = FastAPI(
        title="turborank",
        summary="Cross-encoder reranking with Jina, Cohere and TEI compatible APIs",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.api_keys = [k.encode("utf-8") for k in config.api_keys()]
    app.state.metrics = metrics

    def render_error(exc: ServerError, scope: Scope) -> Response:
        dialect = "tei" if scope.get("path") in tei.PATHS else "jina"
        return render(exc, scope.get("state", {}).get("request_id", ""), dialect)

    _add_exception_handlers(app, render_error)
    app.add_middleware(
        RequestContext, metrics=metrics, max_body_bytes=config.max_body_bytes, render_error=render_error
    )
    # Auth only when keys are set, so the OpenAPI declares the bearer scheme only when it applies.
    auth = [Depends(require_api_key)] if app.state.api_keys else []
    for router in (jina.router, cohere.router, tei.router):
        app.include_router(router, dependencies=auth)
    _add_operational_routes(app, config, metrics, auth)
    return app


def _add_exception_handlers(app: FastAPI, render_error: Callable[[ServerError, Scope], Response]) -> None:
    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestValidationError):
            error = validation_error(list(exc.errors()))
        elif isinstance(exc, StarletteHTTPException):
            kind = FRAMEWORK_STATUS.get(exc.status_code, InternalError)
            if kind is InvalidBody:  # FastAPI's only 400: a body that is not UTF-8 JSON
                error = kind("body: not valid JSON text; send a JSON object encoded as UTF-8")
            else:
                error = kind(f"{exc.detail} ({request.method} {request.url.path})")
            error.headers = exc.headers  # e.g. 405's Allow
        else:
            error = as_server_error(exc)
        if isinstance(error, InternalError):
            log.error("internal error in %s: %r", request.state.request_id, exc)
        return render_error(error, request.scope)

    for kind in (ServerError, TurborankError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, on_error)


def _add_operational_routes(app: FastAPI, config: ServerConfig, metrics: Metrics, auth: list) -> None:
    health_deps = [] if config.public_health else auth
    metrics_deps = [] if config.public_metrics else auth

    @app.get(
        "/v1/models",
        response_model=ModelList,
        responses=openapi_responses(JinaError, exclude=(400, 413, 422, 429, 499, 504)),
        dependencies=auth,
        tags=["operations"],
    )
    async def list_models(service: Service) -> ModelList:
        """The served models; the first one answers requests without ``model``."""
        return ModelList(
            data=[ModelCard(id=name, max_length=m.reranker.max_length) for name, m in service.models.items()]
        )

    @app.get(
        "/health",
        response_model=Health,
        responses=openapi_responses(JinaError, exclude=(400, 413, 422, 429, 499, 504)),
        dependencies=health_deps,
        tags=["operations"],
    )
    async def health(request: Request, service: Service) -> Health:
        """Readiness: a real one-pair inference per model, ahead of the queue."""
        states = {}
        for name, served in service.models.items():
            try:
                plan = served.reranker.plan(HEALTH_QUERY, [HEALTH_DOCUMENT])
                deadline = time.monotonic() + config.request_timeout
                await service.score(served, plan, None, deadline, front=True)
                states[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is logged
                log.error("health probe of model %s failed: %r", name, exc)
                states[name] = "failed"
        if any(state != "ok" for state in states.values()):
            raise NotReady(f"model health probes failed: {states}")
        return Health(status="ok", models=states)

    @app.get("/metrics", dependencies=metrics_deps, tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, documents and tokens, batches, queue depth."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)


def run(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn stops accepting, finishes in-flight requests, then exits."""
    import uvicorn

    logging.basicConfig(level=config.log_level.upper(), format="%(message)s")
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        access_log=False,  # RequestContext logs one JSON line per request instead
        log_level=config.log_level,
        timeout_graceful_shutdown=config.graceful_timeout,
    )
