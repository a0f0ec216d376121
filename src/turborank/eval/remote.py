"""HTTP client for rerank endpoints in the Jina, Cohere or TEI wire format.

Wire formats (../shared/spec/landscape.md section 1): Jina ``POST /v1/rerank`` {model, query,
documents, top_n, return_documents} -> {results: [{index, relevance_score}]}; Cohere ``POST
/v2/rerank`` (or v1, given in the URL) the same without ``return_documents``; TEI ``POST
/rerank`` {query, texts, raw_scores, truncate} -> [{index, score}]. Requests in flight are
bounded by a semaphore shared by every thread using the client; 429 and 503 (and dropped
connections) are retried with exponential backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import email.utils
import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, TurborankError

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 503)
MAX_BACKOFF_S = 60.0


class RemoteError(TurborankError):
    """The endpoint refused the request, answered something unreadable, or kept failing after retries."""


@dataclass(frozen=True)
class ApiFormat:
    """How one dialect spells a rerank request and response."""

    path: str  # used when the URL has no path of its own
    max_documents: int | None  # documents per request; TEI's default --max-client-batch-size is 32
    scores_are_logits: bool  # TEI with raw_scores; the others return sigmoid scores in (0, 1)


API_FORMATS = {
    "jina": ApiFormat("/v1/rerank", None, False),
    "cohere": ApiFormat("/v2/rerank", None, False),
    "tei": ApiFormat("/rerank", 32, True),
}


class RemoteReranker:
    """Score documents against a query through a rerank endpoint.

    Args:
        url: endpoint URL; a bare ``http://host:port`` gets the format's usual path appended.
        api_format: "jina", "cohere" or "tei".
        api_key: sent as ``Authorization: Bearer <key>``.
        model: the ``model`` field for Jina and Cohere (ignored by TEI).
        concurrency: requests in flight at once, across all threads using this client.
        max_documents: documents per request (default: all, or 32 for TEI); longer lists are split.
        timeout: seconds per request.
        max_retries: retries of one request on 429, 503 or a connection error.
        transport: an ``httpx`` transport to send through (tests, proxies); default: the network.

    Example:
        >>> with RemoteReranker("http://localhost:8080", "jina") as client:
        ...     client.score("capital of France?", ["Paris is the capital.", "Berlin is a city."])
        [0.86, 0.02]
    """

    def __init__(
        self,
        url: str,
        api_format: str,
        api_key: str | None = None,
        model: str | None = None,
        concurrency: int = 4,
        max_documents: int | None = None,
        timeout: float = 120.0,
        max_retries: int = 6,
        transport: Any = None,
    ):
        try:
            import httpx  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise ImportError(
                "the HTTP reranker needs the eval extra: pip install 'turborank[eval]'"
            ) from exc
        if api_format not in API_FORMATS:
            raise InputError(f"api_format must be one of {', '.join(API_FORMATS)}, got {api_format!r}")
        if concurrency < 1:
            raise InputError(f"concurrency must be >= 1, got {concurrency}")
        self.format = API_FORMATS[api_format]
        self.api_format = api_format
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise InputError(f"url must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/") + self.format.path if parts.path in ("", "/") else url
        self.model = model
        self.concurrency = concurrency
        self.max_documents = max_documents or self.format.max_documents
        self.max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="rerank-http")

    @property
    def scores_are_logits(self) -> bool:
        """True when scores are raw logits (TEI ``raw_scores``), False for sigmoid scores."""
        return self.format.scores_are_logits

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, in input order (long lists go out as concurrent requests)."""
        return self.score_many([(query, documents)])[0]

    def score_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """``score`` for many (query, documents) items, up to ``concurrency`` requests in flight."""
        # Every request (an item, or a max_documents slice of one) is one pool task; nothing in the
        # pool waits on the pool, so it cannot deadlock.
        tasks = []
        for item, (query, documents) in enumerate(items):
            size = self.max_documents or max(1, len(documents))
            tasks += [(item, query, list(documents[i : i + size])) for i in range(0, len(documents), size)]
        answers = self._pool.map(lambda task: self._request(task[1], task[2]), tasks)
        out: list[list[float]] = [[] for _ in items]
        for (item, _, _), scores in zip(tasks, answers, strict=True):
            out[item] += scores
        return out

    def _body(self, query: str, documents: list[str]) -> dict[str, Any]:
        if self.api_format == "tei":
            return {"query": query, "texts": documents, "raw_scores": True, "truncate": True}
        body: dict[str, Any] = {"query": query, "documents": documents, "top_n": len(documents)}
        if self.model:
            body["model"] = self.model
        if self.api_format == "jina":
            body["return_documents"] = False
        return body

    def _request(self, query: str, documents: list[str]) -> list[float]:
        import httpx  # noqa: PLC0415

        body = self._body(query, documents)
        for attempt in range(self.max_retries + 1):
            with self._slots:
                try:
                    response = self._http.post(self.url, json=body)
                except httpx.TransportError as exc:
                    if attempt == self.max_retries:
                        raise RemoteError(f"{self.url}: {exc!r} after {attempt + 1} tries") from exc
                    wait = _backoff(attempt)
                    log.warning("%s: %r; retrying in %.1fs", self.url, exc, wait)
                    time.sleep(wait)
                    continue
            if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                wait = _retry_after(response.headers.get("retry-after"), attempt)
                log.warning("%s: HTTP %d; retrying in %.1fs", self.url, response.status_code, wait)
                time.sleep(wait)
                continue
            if response.status_code != 200:
                raise RemoteError(
                    f"{self.url}: HTTP {response.status_code} after {attempt + 1} tries: "
                    f"{response.text[:300]}"
                )
            return self._parse(response, len(documents))
        raise AssertionError("unreachable: the loop returns or raises (this is a bug)")

    def _parse(self, response: Any, count: int) -> list[float]:
        try:
            payload = response.json()
            results = payload if self.api_format == "tei" else payload["results"]
            key = "score" if self.api_format == "tei" else "relevance_score"
            scores = {int(r["index"]): float(r[key]) for r in results}
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteError(
                f"{self.url}: not a {self.api_format} rerank response ({exc!r}): {response.text[:300]}"
            ) from exc
        if sorted(scores) != list(range(count)):
            raise RemoteError(
                f"{self.url}: expected one score per document (indices 0..{count - 1}), got {len(scores)}"
            )
        if not all(math.isfinite(s) for s in scores.values()):
            raise RemoteError(f"{self.url}: the endpoint returned a non-finite score")
        return [scores[i] for i in range(count)]

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._http.close()

    def __enter__(self) -> RemoteReranker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _backoff(attempt: int) -> float:
    return min(MAX_BACKOFF_S, 0.5 * 2**attempt)


def _retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or an HTTP date) if given, else backoff."""
    if value:
        try:
            return min(MAX_BACKOFF_S, max(0.0, float(value)))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return _backoff(attempt)
            return min(MAX_BACKOFF_S, max(0.0, when.timestamp() - time.time()))
    return _backoff(attempt)
