"""What the harness reranks with: a local model through the library, or an HTTP endpoint.

Both expose the same small surface (``label``, ``identity``, ``settings``, ``concurrency``,
``score(query, documents)``), so the runner, the cache and the reports never ask which one it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..api import Reranker
from ..checkpoint import weights_path
from .remote import RemoteReranker


@dataclass(frozen=True)
class Scores:
    """One query's scores, in document order, and the model inputs they took: one per document, more
    when long documents are chunked into windows; None when the scorer cannot tell (an endpoint)."""

    values: list[float]
    windows: int | None


class Scorer(Protocol):
    label: str  # the row name in result tables
    identity: str  # everything that changes a score; the cache key
    settings: dict[str, Any]  # recorded in the result JSON
    concurrency: int  # queries scored at once by the runner

    def score(self, query: str, documents: Sequence[str]) -> Scores: ...


def rerank_options(
    max_length: int | None = None, truncation: str = "only_second", long_documents: str | None = None
) -> dict[str, Any]:
    """The keyword arguments every local ``Reranker.rerank`` call of the harness gets (the one place).

    ``long_documents`` is passed only when set, so the default follows the library's.
    """
    options: dict[str, Any] = {"max_length": max_length, "truncation": truncation}
    if long_documents is not None:
        options["long_documents"] = long_documents
    return options


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalScorer:
    """A ``Reranker`` scoring in this process; scores are raw logits (rank-equivalent to sigmoid scores)."""

    concurrency = 1  # the engine already batches a query's documents; threads would only contend

    def __init__(self, reranker: Reranker, options: dict[str, Any], label: str | None = None):
        self.reranker = reranker
        self.options = options
        weights = weights_path(reranker.source) if reranker.source else None
        sha = file_sha256(weights) if weights else None
        max_length = options.get("max_length") or reranker.max_length
        self.label = label or _default_label(reranker)
        self.settings = {
            "kind": "model",
            "model": str(reranker.name),
            "path": str(reranker.source) if reranker.source else None,
            "weights_sha256": sha,
            "max_length": max_length,
            "dtype": str(reranker.dtype).removeprefix("torch."),
            "device": str(reranker.device),
            "backend": reranker.backend_name,  # int8 scores must not be served from the fp32 cache
            "threads": torch.get_num_threads() if reranker.device.type == "cpu" else None,
            "scores": "logits",
            "long_documents": reranker.long_documents,  # what "auto" means for this checkpoint
            **{k: v for k, v in options.items() if k != "max_length" and v != "auto"},
        }
        # The weights hash stands for the model wherever it lives; the device stays in because scores
        # (and the timings cached with them) differ slightly between CPU and GPU kernels.
        skip = ("path", "threads", "model") if sha else ("path", "threads")
        knobs = ",".join(f"{k}={v}" for k, v in sorted(self.settings.items()) if k not in skip)
        self.identity = f"local:{knobs}"

    def score(self, query: str, documents: Sequence[str]) -> Scores:
        # The run shows its own progress over queries; a bar per query would bury it.
        results = self.reranker.rerank(
            query, documents, return_documents=False, show_progress_bar=False, **self.options
        )
        logits = [0.0] * len(documents)
        for result in results:
            logits[result.index] = result.logit
        return Scores(logits, sum(result.num_chunks for result in results))


def _default_label(reranker: Reranker) -> str:
    """The model's name, with its backend and dtype when they are not the defaults (auto, float32), so
    an int8 or bf16 run never shares a row name with the fp32 one."""
    name = Path(str(reranker.name)).name or "model"
    dtype = str(reranker.dtype).removeprefix("torch.")
    variants = [v for v, default in ((reranker.backend_name, "auto"), (dtype, "float32")) if v != default]
    return f"{name} ({', '.join(variants)})" if variants else name


class RemoteScorer:
    """An HTTP endpoint through ``RemoteReranker``; its requests run ``concurrency`` at a time."""

    def __init__(self, client: RemoteReranker, label: str | None = None):
        self.client = client
        self.concurrency = client.concurrency
        self.label = label or (client.model or f"{client.api_format} endpoint")
        self.settings = {
            "kind": "endpoint",
            "endpoint": client.url,
            "api_format": client.api_format,
            "model": client.model,
            "scores": "logits" if client.scores_are_logits else "relevance_score",
            "concurrency": client.concurrency,
        }
        self.identity = f"remote:{client.api_format}:{client.url}:model={client.model}"

    def score(self, query: str, documents: Sequence[str]) -> Scores:
        return Scores(self.client.score(query, documents), None)
