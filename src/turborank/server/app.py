"""The FastAPI app: ``create_app(config)`` builds it, the lifespan loads models and starts schedulers."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from ..api import Reranker
from ..errors import TurborankError
from . import cohere, infinity_vllm, jina, tei
from .auth import require_api_key
from .config import ServerConfig
from .connections import MAX_HEAD_BYTES, guarded_protocol
from .errors import (
    FRAMEWORK_STATUS,
    InternalError,
    InvalidBody,
    JinaError,
    ServerError,
    as_server_error,
    openapi_responses,
    render,
    validation_error,
)
from .health import OPERATIONS_ONLY, Readiness, health_router
from .logs import configure_logging
from .metrics import CONTENT_TYPE, Metrics
from .middleware import RequestContext, ShutdownTally
from .scheduler import Scheduler
from .service import RerankService, ServedModel, Service
from .wire import is_json_content_type, require_portable_json

log = logging.getLogger("turborank.server")

Loader = Callable[[ServerConfig], dict[str, Reranker]]


def load_models(config: ServerConfig) -> dict[str, Reranker]:
    """Load every ``--model`` (the shipped model when none is given), keyed by served name.

    Raises:
        TurborankError: a model is missing, unreadable or unfit to serve, or a setting does not suit it.
    """
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
        reranker.require_single_logit("turborank serve")
        config.check_length_limit(name, reranker.max_positions)
        reranker.engine.max_batch_size = config.max_batch_size
        log.info("warmed up %s on pairs of %s tokens", name, reranker.warm_up())
        models[name] = reranker
    return models


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    owned_by: str = "turborank"
    max_length: int
    root: str  # the served model this name answers with (itself, or an alias's target)
    aliases: list[str] = []


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


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
    configure_logging(config.log_level, config.log_format)
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Again at startup: a host that started uvicorn with its default log_config has just replaced
        # the handlers on uvicorn's loggers.
        configure_logging(config.log_level, config.log_format)
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
            app.state.service.close()
            if app.state.shutdown.cut:
                log.warning(json.dumps({"event": "requests_cut", "count": app.state.shutdown.cut}))
            log.info(json.dumps({"event": "stopped"}))

    # FastAPIOffline serves /docs and /redoc with assets from the package: no CDN, works offline.
    app = FastAPIOffline(
        title="turborank",
        summary="Cross-encoder reranking with Jina, Cohere and TEI compatible APIs",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.api_keys = [k.encode("utf-8") for k in config.api_keys()]
    app.state.metrics = metrics
    app.state.readiness = Readiness(config.health_cache_seconds)
    app.state.shutdown = ShutdownTally()
    if not app.state.api_keys:
        reason = "--no-auth" if config.auth is False else f"no API key, loopback host {config.host}"
        log.warning(json.dumps({"event": "auth_off", "reason": reason}))

    def render_error(exc: ServerError, scope: Scope) -> Response:
        dialect = "tei" if scope.get("path") in tei.PATHS else "jina"
        return render(exc, scope.get("state", {}).get("request_id", ""), dialect)

    _add_exception_handlers(app, render_error)
    app.add_middleware(
        RequestContext,
        metrics=metrics,
        max_body_bytes=config.max_body_bytes,
        render_error=render_error,
        read_timeout=config.read_timeout,
        shutdown=app.state.shutdown,
    )
    # Auth only when keys are set, so the OpenAPI declares the bearer scheme only when it applies.
    auth = [Depends(require_api_key)] if app.state.api_keys else []
    for router in (jina.router, cohere.router, tei.router, infinity_vllm.router):
        app.include_router(router, dependencies=[*auth, Depends(require_portable_json)])
    _add_operational_routes(app, config, metrics, auth)
    app.include_router(health_router([] if config.public_health else auth))
    return app


def _add_exception_handlers(app: FastAPI, render_error: Callable[[ServerError, Scope], Response]) -> None:
    async def on_error(request: Request, exc: Exception) -> Response:
        content_type = request.headers.get("content-type")
        if isinstance(exc, RequestValidationError) and not is_json_content_type(content_type):
            error = InvalidBody(
                f"the body was sent with Content-Type {content_type or '(none)'}; send JSON with the header "
                "'Content-Type: application/json'"
            )
        elif isinstance(exc, RequestValidationError):
            error = validation_error(list(exc.errors()))
        elif isinstance(exc, StarletteHTTPException):
            kind = FRAMEWORK_STATUS.get(exc.status_code, InternalError)
            if kind is InvalidBody:  # FastAPI's only 400: a body its JSON parser gave up on
                error = _unparsable_body(exc.__cause__)
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


def _unparsable_body(cause: BaseException | None) -> InvalidBody:
    """Why FastAPI could not parse a body, from the exception its 400 was raised from."""
    if isinstance(cause, RecursionError):
        # Valid JSON, but Python's parser recurses once per level and stops near its recursion limit.
        return InvalidBody(
            "body: JSON nested too deeply to parse (the parser stops short of "
            f"{sys.getrecursionlimit()} levels of arrays and objects inside one another); send a flatter "
            "JSON object"
        )
    if isinstance(cause, UnicodeDecodeError):
        return InvalidBody(
            f"body: not UTF-8 text (byte {cause.object[cause.start]:#04x} at offset {cause.start}); send "
            "a JSON object encoded as UTF-8"
        )
    return InvalidBody("body: not valid JSON text; send a JSON object encoded as UTF-8")


def _add_operational_routes(app: FastAPI, config: ServerConfig, metrics: Metrics, auth: list) -> None:
    metrics_deps = [] if config.public_metrics else auth

    @app.get(
        "/v1/models",
        response_model=ModelList,
        responses=openapi_responses(JinaError, exclude=OPERATIONS_ONLY),
        dependencies=auth,
        tags=["operations"],
    )
    async def list_models(service: Service) -> ModelList:
        """The served models, then each alias (its ``root`` is the model it answers with); the first
        model answers requests without ``model``."""
        cards = [
            ModelCard(
                id=name,
                max_length=served.reranker.max_length,
                root=name,
                aliases=[alias for alias, target in service.aliases.items() if target == name],
            )
            for name, served in service.models.items()
        ]
        cards += [
            ModelCard(id=alias, max_length=service.models[target].reranker.max_length, root=target)
            for alias, target in service.aliases.items()
        ]
        return ModelList(data=cards)

    @app.get("/metrics", dependencies=metrics_deps, tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, documents and tokens, batches, queue depth."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)


def run(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn stops accepting, finishes in-flight requests, then exits.

    Raises:
        TurborankError: a setting or a model is unusable; raised before uvicorn starts, so ``turborank
            serve`` reports it as one error line (exit 2), not as a traceback in uvicorn's startup log.
    """
    import uvicorn

    models: dict[str, Reranker] = {}
    app = create_app(config, loader=lambda _: models)  # checks the auth settings and sets up logging
    models.update(load_models(config))  # outside uvicorn's lifespan, which would swallow the error
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        access_log=False,  # RequestContext logs one JSON line per request instead
        log_level=config.log_level,
        log_config=None,  # create_app's configure_logging formats uvicorn's lines too
        **connection_options(config),
    )


def connection_options(config: ServerConfig) -> dict[str, Any]:
    """uvicorn settings that bound what one client can hold: head deadline and size, open connections,
    idle keep-alive, and the graceful shutdown window (tests start their servers with these too)."""
    return {
        "http": guarded_protocol(config.read_timeout, config.max_connections),
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_keep_alive": config.keep_alive_timeout,
        "timeout_graceful_shutdown": config.graceful_timeout,
    }
