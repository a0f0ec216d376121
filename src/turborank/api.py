"""Public API: ``Reranker.from_pretrained(...)``, then ``compute_score`` or ``rerank``."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .backends import SplitByLength, create_backend
from .checkpoint import (
    TOKENIZER_FILE,
    declared_activation,
    declared_long_documents,
    declared_max_length,
    declared_window_length,
    load_model,
    resolve_model_dir,
    weights_path,
)
from .chunking import LongDocuments, aggregate, chunk_pairs, resolve_long_documents
from .cpu import cpu_dtype, cpu_features
from .engine import Engine, default_max_batch_tokens
from .errors import InputError, ModelNotFoundError, check_positive
from .model import JinaBertForSequenceClassification
from .tokenization import (
    MIN_TOKENS_PER_PAIR,
    TRUNCATION_STRATEGIES,
    PairEncoding,
    PairTokenizer,
    check_text,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
DEFAULT_MODEL_NAME = "turborank-default"  # how the shipped model names itself (info, server, eval labels)
MAX_QUERY_TOKENS = 512  # the query's own cap under only_second truncation (at most half of max_length)
# show_progress_bar=None draws a bar only once a call has run this long: short calls stay silent, long ones
# (10,000 documents take over a minute on a CPU) show their progress.
PROGRESS_DELAY_S = 2.0

# What predict() applies to a (N, num_labels) tensor of logits, as sentence-transformers' activation_fn.
Activation = Callable[[torch.Tensor], torch.Tensor]

FAMILY_NAMES = {
    "jinabert": "JinaBERT",
    "bert": "BERT",
    "roberta": "RoBERTa",
    "xlm-roberta": "XLM-RoBERTa",
    "electra": "ELECTRA",
    "deberta-v2": "DeBERTa-v2",
}

POSITIONS_IN_WORDS = {
    "alibi": "ALiBi",
    "absolute": "absolute positions",
    "disentangled": "relative positions",
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


DEVICE_CHOICES = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N' as a torch device; anything else, or a CUDA
    device this machine lacks, is an InputError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:  # torch's message lists device kinds turborank cannot run on
        raise InputError(f"device must be {DEVICE_CHOICES}, got {device!r}") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"device must be {DEVICE_CHOICES}, got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r} but CUDA is not available here: use device='cpu' or 'auto'")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise InputError(
            f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s), "
            "numbered from 0"
        )
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None: float32 everywhere. 'auto': bf16 (or fp16) on CUDA; on a CPU bf16 where it is native
    (AVX512-BF16 or AMX), else float32. An explicit bf16 on a CPU without it is kept, with a warning."""
    if dtype is None:
        return torch.float32
    if dtype == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if isinstance(dtype, str) and dtype != "auto" and dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)} or 'auto', got {dtype!r}")
    resolved = DTYPES.get(dtype) if isinstance(dtype, str) else dtype
    if device.type == "cpu":
        return cpu_dtype(resolved, cpu_features())
    return resolved or torch.float32  # 'auto' on another device kind


# Pair length of warm_up's short pass: any short batch starts the kernels and thread pools.
WARM_UP_TOKENS = 32


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))


def resolve_activation(path: str | None, num_labels: int) -> Activation:
    """sentence-transformers' rule for predict(): the activation the checkpoint names, when it is one of
    torch's (nothing else is imported, as CrossEncoder does without trust_remote_code), else sigmoid
    for one label and identity for several."""
    if path is not None:
        module, _, name = path.rpartition(".")
        try:
            if not path.startswith("torch."):
                raise ImportError("only torch's activations are imported")
            return getattr(importlib.import_module(module), name)()
        except (ImportError, AttributeError, TypeError) as exc:
            log.warning("ignoring the checkpoint's activation %r (%s); using the default", path, exc)
    return torch.nn.Sigmoid() if num_labels == 1 else torch.nn.Identity()


class Reranker:
    """A cross-encoder reranker (JinaBERT, BERT, RoBERTa / XLM-RoBERTa or ELECTRA) with a length-aware
    batching engine.

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
        activation_fn: Activation | None = None,
        long_documents: str = "truncate",
        window_length: int | None = None,
    ):
        self.config = model.config
        self.activation_fn = activation_fn or resolve_activation(None, model.config.num_labels)
        self.default_max_length = default_max_length
        # What long_documents="auto" (every method's default) means for this model: truncate or chunk.
        self.long_documents = long_documents
        # The window a chunked document is read in when the caller names none (None: max_length).
        self.window_length = window_length
        self.tokenizer = tokenizer
        self.device = device or torch.device("cpu")
        self.dtype = dtype
        self.name = name
        self.source = source
        check_positive(max_batch_tokens, "max_batch_tokens")
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
            dtype: None (float32), "auto" (bf16/fp16 on CUDA; on a CPU bf16 where native, else float32), or an
                explicit dtype (bf16 on a CPU without native support logs a warning).
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
            InputError: a bad ``device``, ``dtype``, ``num_threads`` or ``max_batch_tokens``.
        """
        check_positive(num_threads, "num_threads")
        resolved_device = resolve_device(device)
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
            activation_fn=resolve_activation(declared_activation(directory), model.config.num_labels),
            long_documents=declared_long_documents(directory),
            window_length=declared_window_length(directory),
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
        if not isinstance(max_length, int) or max_length < MIN_TOKENS_PER_PAIR:
            raise InputError(f"max_length must be an integer >= {MIN_TOKENS_PER_PAIR}, got {max_length!r}")
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
        _check_truncation(truncation)
        return self.tokenizer.encode_pairs(pairs, max_length, _max_query_length(max_length), truncation)

    def encode_long(
        self,
        pairs: Sequence[tuple[str, str]],
        max_length: int | None = None,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "auto",
    ) -> tuple[list[PairEncoding], list[int], LongDocuments | None]:
        """Encode pairs, one encoding per pair (``truncate``) or per window of a long document (``chunk``).

        Returns:
            The encodings, the pair index each belongs to, and the resolved chunking options (None when
            truncating). Chunk windows always keep the query whole up to its cap, whatever ``truncation``.
        """
        _check_truncation(truncation)  # chunk windows ignore it, but a typo is refused on every path
        options = resolve_long_documents(long_documents, self.long_documents, self.window_length)
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
        check_positive(batch_size, "batch_size")
        return self.engine.run(self.encode(pairs, max_length, truncation), batch_size)

    def compute_score(
        self,
        sentence_pairs: Sequence[Sequence[str]] | Sequence[str],
        batch_size: int = 32,
        max_length: int | None = None,
        normalize: bool = True,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "auto",
        show_progress_bar: bool | None = None,
    ) -> float | list[float]:
        """Drop-in for the reference ``compute_score``: sigmoid scores (``normalize``) or raw logits.

        Like the reference, exactly one score comes back as a bare float, whether it was passed as
        ``[query, document]`` or as ``[[query, document]]``; more pairs give a list in input order.
        ``batch_size`` caps the pairs per forward pass; the engine also packs by token budget.
        ``long_documents="chunk"`` (or a ``LongDocuments``) scores each window of a long document and
        aggregates them into the pair's score. ``show_progress_bar``: None shows a bar only for calls
        that run longer than ``PROGRESS_DELAY_S``; True or False force it.
        """
        self.require_single_logit("compute_score")
        pairs, _ = _as_pairs(sentence_pairs)  # one score is a bare float in either input form
        check_positive(batch_size, "batch_size")
        encodings, owners, options = self.encode_long(pairs, max_length, truncation, long_documents)
        logits = self._run_engine(encodings, batch_size, show_progress_bar)
        options = options or LongDocuments()
        pair_logits, _ = aggregate(logits[:, 0], owners, len(pairs), options.aggregation, options.top_k)
        values = sigmoid(pair_logits) if normalize else pair_logits
        scores = [float(v) for v in values]
        return scores[0] if len(scores) == 1 else scores

    def plan(
        self,
        query: str,
        documents: Sequence[str],
        max_length: int | None = None,
        truncation: str = "only_second",
        long_documents: str | LongDocuments = "auto",
    ) -> ScoringPlan:
        """Validate and tokenize one query against its documents, without scoring.

        ``rerank`` is ``plan`` -> ``engine.run`` -> ``finish``; the server runs the same three steps
        with its own scheduler between them, so requests share batches. With ``long_documents="chunk"``
        a document may own several encodings (windows); ``finish`` aggregates them.
        """
        self.require_single_logit("rerank")
        if not isinstance(query, str) or not query.strip():
            raise InputError("query must be a non-empty string")
        check_text(query, "query")
        documents = _check_documents(documents)
        encodings, owners, options = self.encode_long(
            [(query, d) for d in documents], max_length, truncation, long_documents
        )
        options = options or LongDocuments()
        return ScoringPlan(encodings, owners, len(documents), options.aggregation, options.top_k)

    def finish(
        self, plan: ScoringPlan, logits: np.ndarray, documents: Sequence[str] | None, top_n: int | None
    ) -> list[RerankResult]:
        """Turn the plan's logits (one row per encoding, one column: ``plan`` refuses multi-label heads)
        into ranked results."""
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
        long_documents: str | LongDocuments = "auto",
        show_progress_bar: bool | None = None,
    ) -> list[RerankResult]:
        """Score every document against the query; results sorted by score, ties in input order.

        ``long_documents``: "truncate" cuts each pair to ``max_length``; "chunk" scores every window of a
        longer document and keeps the best (``LongDocuments(...)`` sets window size, stride,
        ``max_chunks_per_doc`` and the aggregation: max, mean_top_k or first); "auto" (default) does what
        the checkpoint declares (``self.long_documents``: chunk for turborank's default model, truncate
        for the others, as the reference does). ``show_progress_bar`` as
        in ``compute_score``.
        """
        check_positive(top_n, "top_n")
        check_positive(batch_size, "batch_size")
        plan = self.plan(query, documents, max_length, truncation, long_documents)
        logits = self._run_engine(plan.encodings, batch_size, show_progress_bar)
        return self.finish(plan, logits, list(documents) if return_documents else None, top_n)

    def predict(
        self,
        inputs: Sequence[Sequence[str]] | Sequence[str] | np.ndarray,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Activation | None = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        *,
        max_length: int | None = None,
        truncation: str = "longest_first",
    ) -> np.ndarray | torch.Tensor | list[torch.Tensor] | np.float32:
        """sentence-transformers' ``CrossEncoder.predict``: scores of (query, document) pairs in input order.

        Args:
            inputs: pairs as lists, tuples or a (N, 2) numpy array of strings; one pair gives one score.
            batch_size: pairs per forward pass at most (the engine also packs by token budget).
            show_progress_bar: None shows a bar only for calls longer than ``PROGRESS_DELAY_S``.
            activation_fn: applied to the (N, num_labels) logits; default ``self.activation_fn``: the one
                the checkpoint names (as CrossEncoder reads it), else sigmoid (one label) or identity.
            apply_softmax: softmax over the labels of multi-label models.
            convert_to_numpy, convert_to_tensor: a numpy array (default), one tensor, or (both False) a
                list of tensors.
            max_length: as in ``compute_score``.
            truncation: "longest_first" (default here), as CrossEncoder's tokenizer call cuts pairs, so long
                pairs score as in CrossEncoder; "only_second" keeps the query whole as ``compute_score`` does.

        Returns:
            (N,) scores for one label, (N, num_labels) for more; a scalar (or 0-d tensor) for a single pair.
        """
        pairs, single = _as_pairs(inputs)
        check_positive(batch_size, "batch_size")
        logits = self._run_engine(self.encode(pairs, max_length, truncation), batch_size, show_progress_bar)
        scores = (activation_fn or self.activation_fn)(torch.from_numpy(logits))
        if self.config.num_labels == 1:
            scores = scores.squeeze(-1)
        elif apply_softmax:
            scores = torch.softmax(scores, dim=1)
        if convert_to_tensor:
            result = scores
        elif convert_to_numpy:
            result = scores.numpy()
        else:
            result = list(scores)
        return result[0] if single else result

    def rank(
        self,
        query: str,
        documents: Sequence[str] | np.ndarray,
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        activation_fn: Activation | None = None,
        *,
        max_length: int | None = None,
        truncation: str = "longest_first",
    ) -> list[dict[str, int | float | str]]:
        """sentence-transformers' ``CrossEncoder.rank``: ``{"corpus_id", "score"}`` dicts (plus ``"text"``
        with ``return_documents``), highest score first, ties in input order, the first ``top_k``. Arguments
        as in ``predict``."""
        self.require_single_logit("rank")
        check_positive(top_k, "top_k")
        documents = _check_documents(documents.tolist() if isinstance(documents, np.ndarray) else documents)
        scores = self.predict(
            [(query, document) for document in documents],
            batch_size,
            show_progress_bar,
            activation_fn,
            convert_to_numpy=False,
            convert_to_tensor=True,
            max_length=max_length,
            truncation=truncation,
        )
        results: list[dict[str, int | float | str]] = []
        for index, score in enumerate(scores.tolist()):
            results.append({"corpus_id": index, "score": score})
            if return_documents:
                results[-1]["text"] = documents[index]
        return sorted(results, key=lambda result: -result["score"])[:top_k]

    def require_single_logit(self, caller: str) -> None:
        """Refuse multi-label heads where one relevance score per pair is needed: which label means
        "relevant" is the model's own secret (an NLI head has three). ``predict`` returns every label."""
        if self.config.num_labels != 1:
            raise InputError(
                f"{self.name} has {self.config.num_labels} output labels, not one relevance logit: {caller} "
                "needs a single-logit reranker. Use predict() to get every label's score."
            )

    def _run_engine(
        self, encodings: Sequence[PairEncoding], batch_size: int | None, show_progress_bar: bool | None
    ) -> np.ndarray:
        """Logits in input order, behind a tqdm bar counting pairs (None: drawn after PROGRESS_DELAY_S)."""
        with tqdm(
            total=len(encodings),
            unit="pair",
            desc="Scoring",
            disable=show_progress_bar is False,
            delay=0 if show_progress_bar else PROGRESS_DELAY_S,
        ) as bar:
            return self.engine.run(encodings, batch_size, on_batch=bar.update)

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
            "architecture": f"{FAMILY_NAMES[c.family]} ({POSITIONS_IN_WORDS[c.position_embedding_type]}"
            + (f", {c.feed_forward_type})" if c.gated_feed_forward else ")"),
            "layers": c.num_hidden_layers,
            "hidden_size": c.hidden_size,
            "heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size,
            "feed_forward": c.feed_forward_type,
            "vocab_size": c.vocab_size,
            "num_labels": c.num_labels,
            "parameters": sum(p.numel() for p in self.engine.backend.model.parameters()),
            "max_length": self.max_length,
            "long_documents": self.long_documents,
            "window_length": self.window_length,
            "max_positions": self.max_positions,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "backend": self.backend_name,
            "runs_on": self.engine.backend.description,
            "cpu": cpu_features().describe() if self.device.type == "cpu" else None,
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


def _check_truncation(truncation: str) -> None:
    if truncation not in TRUNCATION_STRATEGIES:
        raise InputError(f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}")


def _as_pairs(sentence_pairs: Any) -> tuple[list[tuple[str, str]], bool]:
    """Pairs from lists, tuples or numpy string arrays (a (2,) array is one pair, (N, 2) a list of pairs),
    and whether the input was a single pair."""
    if isinstance(sentence_pairs, np.ndarray):
        sentence_pairs = sentence_pairs.tolist()
    if not isinstance(sentence_pairs, (list, tuple)):
        raise InputError(
            "sentence_pairs must be a [query, document] pair or a list of such pairs, "
            f"got {type(sentence_pairs).__name__}"
        )
    # A list of pairs starts with a pair, so a leading string means one [query, document] pair: a bad
    # document is then named sentence_pairs[1], not the query taken for a malformed pair.
    if sentence_pairs and isinstance(sentence_pairs[0], str):
        return [_check_pair(sentence_pairs, "sentence_pairs")], True
    return [_check_pair(pair, f"sentence_pairs[{i}]") for i, pair in enumerate(sentence_pairs)], False


def _check_pair(pair: Any, where: str) -> tuple[str, str]:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        raise InputError(f"{where} must be a [query, document] pair of strings, got {pair!r:.80}")
    for i, text in enumerate(pair):
        check_text(text, f"{where}[{i}]")
    return pair[0], pair[1]


def _check_documents(documents: Any) -> list[str]:
    if isinstance(documents, str) or not isinstance(documents, Sequence):
        raise InputError("documents must be a list of strings")
    for i, document in enumerate(documents):
        check_text(document, f"documents[{i}]")
    return list(documents)
