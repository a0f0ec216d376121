"""Public API: ``Reranker.from_pretrained(...)``, then ``compute_score`` or ``rerank``."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backends import SplitByLength, create_backend
from .checkpoint import TOKENIZER_FILE, declared_max_length, load_model, resolve_model_dir, weights_path
from .chunking import LongDocuments, aggregate, chunk_pairs, resolve_long_documents
from .engine import Engine, default_max_batch_tokens
from .errors import InputError, ModelNotFoundError
from .model import JinaBertForSequenceClassification
from .tokenization import TRUNCATION_STRATEGIES, PairEncoding, PairTokenizer

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_MODEL_NAME = "turborank-default"  # how the shipped model names itself (info, server, eval labels)
MAX_QUERY_TOKENS = 512  # the query's own cap under only_second truncation (at most half of max_length)

FAMILY_NAMES = {
    "jinabert": "JinaBERT",
    "bert": "BERT",
    "roberta": "RoBERTa",
    "xlm-roberta": "XLM-RoBERTa",
    "electra": "ELECTRA",
}

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class RerankResult:
    """One ranked document: its position in the input, sigmoid score, raw logit, optionally its text,
    and how many windows of it were scored (more than 1 only with ``long_documents="chunk"``)."""

    index: int
    relevance_score: float
    logit: float
    document: str | None = None
    num_chunks: int = 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "relevance_score": self.relevance_score,
            "logit": self.logit,
            "num_chunks": self.num_chunks,
        }
        if self.document is not None:
            out["document"] = self.document
        return out


@dataclass
class ScoringPlan:
    """Encodings to score for one query, and which document each encoding belongs to."""

    encodings: list[PairEncoding]
    owners: list[int]  # document index of each encoding (several encodings per chunked document)
    num_documents: int
    aggregation: str = "max"  # how a chunked document's window logits become its logit
    top_k: int = 3  # windows averaged by the mean_top_k aggregation

    @property
    def num_tokens(self) -> int:
        return sum(len(e) for e in self.encodings)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r} but CUDA is not available here: use device='cpu' or 'auto'")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None: float32 everywhere. 'auto': bf16 (or fp16) on CUDA, float32 on CPU."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)} or 'auto', got {dtype!r}")
    return DTYPES[dtype]


# Pair length of warm_up's short pass: any short batch starts the kernels and thread pools.
WARM_UP_TOKENS = 32


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))


class Reranker:
    """A cross-encoder reranker (JinaBERT or BERT) with a length-aware batching engine.

    Example:
        >>> reranker = Reranker.from_pretrained("path/to/jina-reranker-v1-turbo-en")
        >>> reranker.rerank("capital of France?", ["Paris is the capital.", "Berlin is a city."], top_n=1)
        [RerankResult(index=0, relevance_score=0.86, logit=1.83, document='Paris is the capital.')]
    """

    def __init__(
        self,
        model: JinaBertForSequenceClassification,
        tokenizer: PairTokenizer,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        max_batch_tokens: int | None = None,
        use_token_type_ids: bool | None = None,
        use_sdpa: bool = True,
        name: str = "model",
        source: Path | None = None,
        backend: str = "auto",
        default_max_length: int | None = None,
    ):
        self.config = model.config
        self.default_max_length = default_max_length
        self.tokenizer = tokenizer
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.name = name
        self.source = source
        if use_token_type_ids is None:
            use_token_type_ids = self.config.uses_token_type_ids
        self.backend_name = backend
        runner = create_backend(backend, model, self.device, dtype, use_sdpa, source)
        self.engine = Engine(
            runner,
            tokenizer.pad_token_id,
            use_token_type_ids,
            max_batch_tokens or runner.max_batch_tokens or default_max_batch_tokens(self.device),
        )

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        *,
        revision: str | None = None,
        num_threads: int | None = None,
        max_batch_tokens: int | None = None,
        use_token_type_ids: bool | None = None,
        use_sdpa: bool = True,
        backend: str = "auto",
    ) -> Reranker:
        """Load a checkpoint directory or hub id; ``None`` loads the model shipped inside turborank.

        Args:
            name_or_path: local checkpoint directory, hub id (``jinaai/jina-reranker-v1-turbo-en``) or None.
            device: "cpu", "cuda", "cuda:1" or "auto" (CUDA when available).
            dtype: None (float32), "auto" (bf16/fp16 on CUDA, float32 on CPU), or an explicit dtype.
            revision: hub revision (branch, tag or commit).
            num_threads: CPU threads for torch (process-wide); None keeps torch's default.
            max_batch_tokens: padded tokens per forward pass; bounds activation memory (default: the
                backend's own budget if it has one, as the onnx backends do, else 2,048 on CPU, where
                small batches stay in cache, and 16,384 on CUDA).
            use_token_type_ids: None picks what the model family was trained with.
            use_sdpa: fused attention (True) or the plain reference math (False).
            backend: "auto" (torch; on CUDA, batches of an ALiBi model past 3,072 tokens unpadded),
                "torch" (padded batches), "onnx" / "onnx-int8" (ONNX Runtime on the CPU, fp32 or
                dynamically quantized int8; the export is cached next to the checkpoint) or "unpadded"
                (variable-length attention for CUDA, no FLOP spent on padding). See ``backends.BACKENDS``.

        Raises:
            ModelNotFoundError, CheckpointError: with the problem and the fix in the message.
        """
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        name = DEFAULT_MODEL_NAME if name_or_path is None else str(name_or_path)
        if name_or_path is None:
            if not (DEFAULT_MODEL_DIR / "config.json").is_file():
                raise ModelNotFoundError(
                    f"the default model is missing from {DEFAULT_MODEL_DIR} (a broken install?): reinstall "
                    "turborank, or pass a checkpoint directory or hub id"
                )
            name_or_path = DEFAULT_MODEL_DIR
        directory = resolve_model_dir(name_or_path, revision)
        model = load_model(directory)
        tokenizer = PairTokenizer.from_file(directory / TOKENIZER_FILE, model.config.pad_token_id)
        resolved_device = resolve_device(device)
        return cls(
            model,
            tokenizer,
            device=resolved_device,
            dtype=resolve_dtype(dtype, resolved_device),
            max_batch_tokens=max_batch_tokens,
            use_token_type_ids=use_token_type_ids,
            use_sdpa=use_sdpa,
            name=name,
            source=directory,
            backend=backend,
            # ALiBi checkpoints keep their 8,192 tokens: the published Jina files declare 512, a tokenizer
            # default that the ALiBi models outgrow (they are trained for 8k and extrapolate).
            default_max_length=None if model.config.uses_alibi else declared_max_length(directory),
        )

    @property
    def max_positions(self) -> int:
        """The model's own limit: 8,192 for ALiBi models, the position table size for absolute ones
        (less RoBERTa's offset: 512 of its 514 rows)."""
        return self.config.max_sequence_length

    @property
    def max_length(self) -> int:
        """Tokens per pair when the caller gives none: the length the checkpoint declares it was tuned
        for (absolute-position models' ``model_max_length``), else ``max_positions``."""
        return min(self.default_max_length or self.max_positions, self.max_positions)

    def _check_max_length(self, max_length: int | None) -> int:
        if max_length is None:
            return self.max_length
        if not isinstance(max_length, int) or max_length < 8:
            raise InputError(f"max_length must be an integer >= 8, got {max_length!r}")
        if max_length > self.max_positions and not self.config.uses_alibi:
            raise InputError(
                f"max_length={max_length} exceeds this model's {self.max_positions} position "
                "embeddings; use a smaller max_length"
            )
        return max_length

    def encode(
        self, pairs: Sequence[tuple[str, str]], max_length: int | None = None, truncation: str = "only_second"
    ) -> list[PairEncoding]:
        """Tokenize and truncate pairs (the query keeps at most half of max_length, 512 tokens tops)."""
        max_length = self._check_max_length(max_length)
        if truncation not in TRUNCATION_STRATEGIES:
            raise InputError(f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
        return self.tokenizer.encode_pairs(pairs, max_length, _max_query_length(max_length), truncation)

    def encode_long(
        self,
        pairs: Sequence[tuple[str, str]],
        max_length: int | None = None,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "truncate",
    ) -> tuple[list[PairEncoding], list[int], LongDocuments | None]:
        """Encode pairs, one encoding per pair (``truncate``) or per window of a long document (``chunk``).

        Returns:
            The encodings, the pair index each belongs to, and the resolved chunking options (None when
            truncating). Chunk windows always keep the query whole up to its cap, whatever ``truncation``.
        """
        options = resolve_long_documents(long_documents)
        if options is None:
            return self.encode(pairs, max_length, truncation), list(range(len(pairs))), None
        max_length = self._check_max_length(max_length)
        encodings, owners = chunk_pairs(
            self.tokenizer, pairs, max_length, _max_query_length(max_length), options
        )
        return encodings, owners, options

    def predict_logits(
        self,
        pairs: Sequence[tuple[str, str]],
        batch_size: int | None = None,
        max_length: int | None = None,
        truncation: str = "only_second",
    ) -> np.ndarray:
        """Raw logits (N, num_labels) as float32, in input order."""
        _check_batch_size(batch_size)
        return self.engine.run(self.encode(pairs, max_length, truncation), batch_size)

    def compute_score(
        self,
        sentence_pairs: Sequence[Sequence[str]] | Sequence[str],
        batch_size: int = 32,
        max_length: int | None = None,
        normalize: bool = True,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "truncate",
    ) -> float | list[float]:
        """Drop-in for the reference ``compute_score``: sigmoid scores (``normalize``) or raw logits.

        A single ``[query, document]`` pair gives a bare float; a list of pairs a list in input order.
        ``batch_size`` caps the pairs per forward pass; the engine also packs by token budget.
        ``long_documents="chunk"`` (or a ``LongDocuments``) scores each window of a long document and
        aggregates them into the pair's score.
        """
        pairs, single = _as_pairs(sentence_pairs)
        _check_batch_size(batch_size)
        encodings, owners, options = self.encode_long(pairs, max_length, truncation, long_documents)
        logits = self.engine.run(encodings, batch_size)
        if logits.shape[1] != 1:
            raise InputError(
                f"this model has {logits.shape[1]} labels; compute_score needs a single-logit "
                "reranker (use predict_logits for the raw outputs)"
            )
        options = options or LongDocuments()
        pair_logits, _ = aggregate(logits[:, 0], owners, len(pairs), options.aggregation, options.top_k)
        values = sigmoid(pair_logits) if normalize else pair_logits
        scores = [float(v) for v in values]
        return scores[0] if single and len(scores) == 1 else scores

    def plan(
        self,
        query: str,
        documents: Sequence[str],
        max_length: int | None = None,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "truncate",
    ) -> ScoringPlan:
        """Validate and tokenize one query against its documents, without scoring.

        ``rerank`` is ``plan`` -> ``engine.run`` -> ``finish``; the server runs the same three steps
        with its own scheduler between them, so requests share batches. With ``long_documents="chunk"``
        a document may own several encodings (windows); ``finish`` aggregates them.
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("query must be a non-empty string")
        documents = _check_documents(documents)
        encodings, owners, options = self.encode_long(
            [(query, d) for d in documents], max_length, truncation, long_documents
        )
        options = options or LongDocuments()
        return ScoringPlan(encodings, owners, len(documents), options.aggregation, options.top_k)

    def finish(
        self, plan: ScoringPlan, logits: np.ndarray, documents: Sequence[str] | None, top_n: int | None
    ) -> list[RerankResult]:
        """Turn the plan's logits (one row per encoding) into ranked results."""
        if logits.ndim != 2 or logits.shape[1] != 1:
            raise InputError(
                f"this model has {logits.shape[-1]} labels; rerank needs a single-logit reranker"
            )
        document_logits, num_chunks = aggregate(
            logits[:, 0], plan.owners, plan.num_documents, plan.aggregation, plan.top_k
        )
        return rank_results(document_logits, documents, top_n, num_chunks)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        top_n: int | None = None,
        return_documents: bool = True,
        max_length: int | None = None,
        truncation: str = "only_second",
        batch_size: int | None = None,
        long_documents: str | LongDocuments = "truncate",
    ) -> list[RerankResult]:
        """Score every document against the query; results sorted by score, ties in input order.

        ``long_documents``: "truncate" (default) cuts each pair to ``max_length``; "chunk" scores every
        window of a longer document and keeps the best (``LongDocuments(...)`` sets window size, stride,
        ``max_chunks_per_doc`` and the aggregation: max, mean_top_k or first).
        """
        _check_top_n(top_n)
        _check_batch_size(batch_size)
        plan = self.plan(query, documents, max_length, truncation, long_documents)
        logits = self.engine.run(plan.encodings, batch_size)
        return self.finish(plan, logits, list(documents) if return_documents else None, top_n)

    def warm_up(self) -> list[int]:
        """Score a short pair, and one just past the backend's length split if it has one, so that
        kernels compile and thread pools start before the first real request (under ``auto`` on CUDA
        the first long batch compiles flex attention). Returns the pair lengths it ran."""
        lengths = [min(WARM_UP_TOKENS, self.max_length)]
        backend = self.engine.backend
        if isinstance(backend, SplitByLength) and backend.max_sequence < self.max_positions:
            lengths.append(backend.max_sequence + 1)
        template = self.tokenizer.template
        word = self.tokenizer.encode_texts(["warm"])[0][:1] or [self.tokenizer.pad_token_id]
        for length in lengths:
            body = word * (length - template.num_special_tokens)
            self.engine.run([template.join(body[:1], body[1:])])
        return lengths

    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            "name": self.name,
            "path": str(self.source) if self.source else None,
            "family": c.family,
            "architecture": f"{FAMILY_NAMES[c.family]} "
            + (f"(ALiBi, {c.feed_forward_type})" if c.uses_alibi else "(absolute positions)"),
            "layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size,
            "feed_forward": c.feed_forward_type,
            "vocab_size": c.vocab_size,
            "num_labels": c.num_labels,
            "parameters": sum(p.numel() for p in self.engine.backend.model.parameters()),
            "max_length": self.max_length,
            "max_positions": self.max_positions,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "backend": self.backend_name,
            "runs_on": self.engine.backend.description,
            "weights_file": weights_path(self.source).name if self.source else None,
        }


def rank_results(
    logits: np.ndarray,
    documents: Sequence[str] | None,
    top_n: int | None,
    num_chunks: np.ndarray | None = None,
) -> list[RerankResult]:
    """Sort by logit (descending, stable) and attach fp32 sigmoid scores (and window counts, if chunked)."""
    scores = sigmoid(logits)
    order = np.argsort(-logits, kind="stable")[: top_n or len(logits)]
    return [
        RerankResult(
            int(i),
            float(scores[i]),
            float(logits[i]),
            documents[i] if documents is not None else None,
            int(num_chunks[i]) if num_chunks is not None else 1,
        )
        for i in order
    ]


def _max_query_length(max_length: int) -> int:
    return min(MAX_QUERY_TOKENS, max_length // 2)


def _check_top_n(top_n: Any) -> None:
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        raise InputError(f"top_n must be a positive integer or None, got {top_n!r}")


def _check_batch_size(batch_size: Any) -> None:
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")


def _as_pairs(sentence_pairs: Any) -> tuple[list[tuple[str, str]], bool]:
    if (
        isinstance(sentence_pairs, (list, tuple))
        and len(sentence_pairs) == 2
        and all(isinstance(t, str) for t in sentence_pairs)
    ):
        return [(sentence_pairs[0], sentence_pairs[1])], True
    if not isinstance(sentence_pairs, (list, tuple)):
        raise InputError(
            "sentence_pairs must be a [query, document] pair or a list of such pairs, "
            f"got {type(sentence_pairs).__name__}"
        )
    pairs = []
    for i, pair in enumerate(sentence_pairs):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise InputError(
                f"sentence_pairs[{i}] must be a [query, document] pair of strings, got {pair!r:.80}"
            )
        pairs.append((pair[0], pair[1]))
    return pairs, False


def _check_documents(documents: Any) -> list[str]:
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise InputError("documents must be a list of strings")
    for i, document in enumerate(documents):
        if not isinstance(document, str):
            raise InputError(f"documents[{i}] must be a string, got {type(document).__name__}")
    return list(documents)
