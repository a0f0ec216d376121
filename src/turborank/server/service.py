"""The dialect-free rerank service: every route translates to ``RerankRequest`` and back.

``plan`` (tokenize, validate) -> ``Scheduler`` (shared batches) -> ``finish`` (rank), the same three
steps as ``Reranker.rerank``, so scores over HTTP equal the library's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Depends
from pydantic import Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from ..api import Reranker, RerankResult, ScoringPlan
from ..chunking import LongDocuments, resolve_long_documents
from ..tokenization import MIN_TOKENS_PER_PAIR
from .config import ServerConfig
from .errors import (
    ClientClosed,
    EmptyInput,
    InputTooLong,
    InvalidInput,
    RequestTimeout,
    TooManyDocuments,
    UnknownModel,
)
from .metrics import Metrics
from .scheduler import Scheduler

# What ``validate`` enforces (400 INPUT_EMPTY, TEI's "empty"), declared in the OpenAPI schema so clients and
# schema-driven tests know it; the check itself stays in ``validate`` so every dialect answers it alike.
NonEmptyText = Annotated[str, WithJsonSchema({"type": "string", "minLength": 1, "pattern": r"\S"})]
NON_EMPTY_LIST = Field(json_schema_extra={"minItems": 1})


def one_name_each(*synonyms: tuple[str, str]) -> Callable[[Any], Any]:
    """A before-validator of bodies, refusing a body that sends two names for one input (vLLM's ``text_1`` and
    ``queries``; TEI's ``texts`` and Infinity's ``documents``): answering with either one would silently
    drop the other."""

    def check(body: Any) -> Any:
        for first, second in synonyms:
            if isinstance(body, dict) and first in body and second in body:
                raise PydanticCustomError(
                    "conflicting_fields",
                    f"{first} and {second} are two names for the same input; send one of them, not both",
                )
        return body

    return check


@dataclass
class RerankRequest:
    """One rerank call, whatever dialect it came in."""

    query: str
    documents: list[str]
    model: str | None = None  # None: the default (first) model
    top_n: int | None = None
    truncate: bool | None = None  # None: --auto-truncate; False: 422 for over-long pairs
    max_tokens_per_doc: int | None = None  # pair tokens, up to --max-tokens-per-doc or the model's limit
    max_chunks_per_doc: int | None = None  # Cohere v1: chunk long documents, at most this many windows
    documents_field: str = "documents"  # the dialect's name for the list, used in error messages
    query_field: str = "query"
    length_field: str = "max_tokens_per_doc"  # the dialect's name for max_tokens_per_doc


@dataclass
class RerankOutcome:
    model: str
    results: list[RerankResult]  # sorted, without document texts (routes echo their own shapes)
    total_tokens: int  # tokens actually scored, special tokens included


@dataclass
class ServedModel:
    name: str
    reranker: Reranker
    scheduler: Scheduler


class RerankService:
    """Routes rerank requests to per-model schedulers; lives in ``app.state.service``."""

    def __init__(self, config: ServerConfig, models: dict[str, ServedModel], metrics: Metrics):
        if not models:
            raise ValueError("RerankService needs at least one model; this is a bug")
        self.config = config
        self.models = models
        self.default = next(iter(models))
        self.metrics = metrics
        self.aliases = {alias: name for alias, name in config.model_aliases().items() if name in models}
        # Bounded: tokenizing waits here instead of taking every thread of the default executor.
        self.tokenizers = ThreadPoolExecutor(config.tokenizer_threads, thread_name_prefix="tokenize")

    def close(self) -> None:
        self.tokenizers.shutdown(wait=False, cancel_futures=True)

    def get(self, name: str | None) -> ServedModel:
        """The named model (a served name or an alias), or the default one for None.

        Raises:
            UnknownModel: with the served names and aliases.
        """
        if name is None:
            return self.models[self.default]
        served = self.aliases.get(name, name)
        if served in self.models:
            return self.models[served]
        if self.config.accept_any_model_name:
            return self.models[self.default]
        aliases = f", aliases {sorted(self.aliases)}" if self.aliases else ""
        raise UnknownModel(
            f"model {name!r} is not served here; served models are {sorted(self.models)}{aliases}. Send "
            f"one of these, leave 'model' out for the default ({self.default!r}), or start the server with "
            "--model-alias ALIAS=NAME or --accept-any-model-name"
        )

    def length_limits(self, reranker: Reranker) -> tuple[int, int]:
        """(default, most) tokens per pair a request gets on this model."""
        # The operator's --max-tokens-per-doc is the default and the ceiling; without it a request gets
        # the model's default length and may ask for up to its position limit.
        ceiling = min(self.config.max_tokens_per_doc or reranker.max_positions, reranker.max_positions)
        return min(self.config.max_tokens_per_doc or reranker.max_length, ceiling), ceiling

    def plan_options(self, request: RerankRequest, reranker: Reranker) -> dict[str, Any]:
        """Keyword arguments for ``Reranker.plan``: the one place that maps request limits to the planner."""
        default, ceiling = self.length_limits(reranker)
        options: dict[str, Any] = {
            "max_length": min(request.max_tokens_per_doc or default, ceiling),
            "truncation": "only_second",
            "long_documents": "truncate",
        }
        chunked = resolve_long_documents(self.config.long_documents, reranker.long_documents) is not None
        if request.max_chunks_per_doc is not None or chunked:
            chunks = min(
                v for v in (self.config.max_chunks_per_doc, request.max_chunks_per_doc) if v is not None
            )
            # Cohere's long-document rule: score windows, the document's score is the best window's.
            options["long_documents"] = LongDocuments(
                mode="chunk", max_chunks_per_doc=chunks, aggregation="max"
            )
        return options

    def validate(self, requests: list[RerankRequest]) -> None:
        """Checks that need the server's limits; types were checked by the route's schema."""
        for request in requests:
            if not request.query.strip():
                raise EmptyInput(f"{request.query_field} must be a non-empty string")
            if not request.documents:
                raise EmptyInput(f"{request.documents_field} must hold at least one document")
            if request.max_tokens_per_doc is not None and request.max_tokens_per_doc < MIN_TOKENS_PER_PAIR:
                raise InvalidInput(
                    f"{request.length_field} must be at least {MIN_TOKENS_PER_PAIR} (tokens per pair, the "
                    f"special tokens included), got {request.max_tokens_per_doc}"
                )
        total = sum(len(request.documents) for request in requests)
        if total > self.config.max_documents:
            raise TooManyDocuments(
                f"{requests[0].documents_field} holds {total} items; this server takes at most "
                f"{self.config.max_documents} per request (--max-documents): split the request"
            )

    async def rerank(self, request: RerankRequest, http: Request) -> RerankOutcome:
        """Plan, queue, wait and rank one request.

        Args:
            request: the dialect-free request.
            http: the HTTP request, watched for a client disconnect; its state gets log fields.

        Returns:
            The ranked outcome.

        Raises:
            ServerError subclasses (see errors.PROBLEMS) and library InputError.
        """
        return (await self.rerank_groups([request], http))[0]

    async def rerank_groups(self, requests: list[RerankRequest], http: Request) -> list[RerankOutcome]:
        """Rank several queries, each against its own documents, as one queued job (so they share
        batches and one deadline); the requests share their model and options (vLLM's /score)."""
        deadline = time.monotonic() + self.config.request_timeout
        served = self.get(requests[0].model)
        self.validate(requests)
        http.state.model = served.name
        http.state.documents = sum(len(request.documents) for request in requests)
        options = self.plan_options(requests[0], served.reranker)
        # Each document makes at least one pair of special tokens: a queue that cannot take that much
        # refuses before the tokenizer runs, not after.
        served.scheduler.admit(http.state.documents * served.reranker.tokenizer.template.num_special_tokens)
        plans = [await self.tokenize(served, request, options, deadline) for request in requests]
        truncate = self.config.auto_truncate if requests[0].truncate is None else requests[0].truncate
        if not truncate:
            for plan in plans:
                _refuse_truncated(plan, options["max_length"], requests[0].documents_field)
        combined = merge_plans(plans)
        logits = await self.score(served, combined, http, deadline)
        http.state.tokens = combined.num_tokens
        self.metrics.documents.labels(served.name).observe(combined.num_documents)
        self.metrics.tokens.labels(served.name).observe(combined.num_tokens)
        outcomes, start = [], 0
        for request, plan in zip(requests, plans, strict=True):
            rows = logits[start : start + len(plan.encodings)]
            start += len(plan.encodings)
            results = served.reranker.finish(plan, rows, None, request.top_n)
            outcomes.append(RerankOutcome(served.name, results, plan.num_tokens))
        return outcomes

    async def tokenize(
        self, served: ServedModel, request: RerankRequest, options: dict[str, Any], deadline: float
    ) -> ScoringPlan:
        """``Reranker.plan`` on the tokenizer pool, within the request's deadline."""
        work = functools.partial(served.reranker.plan, request.query, request.documents, **options)
        pending = asyncio.get_running_loop().run_in_executor(self.tokenizers, work)
        try:
            return await asyncio.wait_for(pending, max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError as exc:
            raise self._timed_out() from exc

    def _timed_out(self) -> RequestTimeout:
        return RequestTimeout(
            f"the request did not finish within {self.config.request_timeout:g} s (--request-timeout); "
            "send fewer documents or retry when the server is less busy"
        )

    async def score(
        self,
        served: ServedModel,
        plan: ScoringPlan,
        http: Request | None,
        deadline: float,
        front: bool = False,
    ) -> np.ndarray:
        """Queue a plan and wait for its logits, the deadline, or the client leaving (whichever first)."""
        job = served.scheduler.submit(plan, front=front)
        waiters: set[asyncio.Future] = {job.future}
        gone = asyncio.ensure_future(_disconnected(http)) if http is not None else None
        if gone is not None:
            waiters.add(gone)
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if gone is not None:
                gone.cancel()
            if not job.future.done():
                served.scheduler.cancel(job)
        if job.future in done:
            return job.future.result()
        if gone is not None and gone in done:
            raise ClientClosed("the client closed the connection; its queued pairs were dropped")
        raise self._timed_out()


async def _disconnected(http: Request) -> None:
    """Return once the client has gone (the body is already read, so only http.disconnect comes)."""
    while True:
        message = await http.receive()
        if message["type"] == "http.disconnect":
            return


def refuse_left_truncation(field: str) -> None:
    """Every dialect's left truncation gets the same 422: only the end of a document is ever cut."""
    raise InvalidInput(
        f"{field}: 'left' is not supported; turborank keeps the start of each document "
        "(send 'right' or leave it out)"
    )


def _refuse_truncated(plan: ScoringPlan, max_length: int, documents_field: str) -> None:
    for encoding, owner in zip(plan.encodings, plan.owners, strict=True):
        if encoding.truncated:
            raise InputTooLong(
                f"the query with {documents_field}[{owner}] is longer than {max_length} tokens and "
                "truncation is off: shorten the document, or send truncation=true (TEI: truncate=true)"
            )


def merge_plans(plans: list[ScoringPlan]) -> ScoringPlan:
    """One plan holding every plan's encodings in order (documents renumbered), for one scheduler job."""
    if len(plans) == 1:
        return plans[0]
    encodings, owners, offset = [], [], 0
    for plan in plans:
        encodings += plan.encodings
        owners += [owner + offset for owner in plan.owners]
        offset += plan.num_documents
    return ScoringPlan(encodings, owners, offset, plans[0].aggregation, plans[0].top_k)


def get_service(request: Request) -> RerankService:
    """FastAPI dependency: the app's service (tests may override it)."""
    return request.app.state.service


Service = Annotated[RerankService, Depends(get_service)]  # route parameter type: the app's service
