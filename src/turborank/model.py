"""JinaBERT, BERT, RoBERTa / XLM-RoBERTa and ELECTRA cross-encoders, in one readable file.

JinaBERT = BERT with three changes (spec: shared/spec/jinabert.md):
  * no position embeddings; position enters only through a symmetric ALiBi bias on the attention
    scores (Press et al. 2022, "Train Short, Test Long", https://arxiv.org/abs/2108.12409);
  * a gated feed-forward (GeGLU / ReGLU) instead of BERT's intermediate/output pair;
  * everything else (post-LN layers, tanh pooler on the first token, linear classifier) is BERT.

Module attribute names equal the checkpoint tensor names (``bert.encoder.layer.0.mlp.gated_layers``),
so loading a checkpoint is a plain ``load_state_dict`` (the loader renames ``roberta.`` / ``electra.`` to
``bert.``). The same layers serve transformers' own sequence classifiers, which differ only at the edges:
  * BERT (``BertForSequenceClassification``, e.g. ms-marco-MiniLM-L-6-v2): learned absolute positions,
    the classic feed-forward, token type ids;
  * RoBERTa / XLM-RoBERTa (bge-reranker): positions start at pad_token_id + 1, no token
    types, no pooler; a two-layer head (dense -> tanh -> out_proj) on the first token;
  * ELECTRA: embeddings of ``embedding_size`` projected up to the hidden size, token types, no pooler;
    the two-layer head with GELU instead of tanh;
  * DeBERTa-v2/v3 (mxbai-rerank-v1): no position embeddings; each layer adds disentangled relative
    attention (He et al. 2021, https://arxiv.org/abs/2006.03654, section 3.1) to the scores, and the
    pooler uses GELU.

Shapes: B batch, S sequence, H hidden, nh heads, d head size, I intermediate size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# One attention block holds at most this many score elements (B * nh * rows * S); longer inputs are
# processed in blocks of query rows so memory grows linearly, not quadratically, with S.
ATTENTION_BLOCK_ELEMENTS = 1 << 24
# The bias is the same in every layer: its blocks are kept for the whole forward while they total at
# most this many elements (256 MB in fp32), and rebuilt per layer beyond (8k-token inputs).
ATTENTION_CACHE_ELEMENTS = 1 << 26

ROBERTA_MODEL_TYPES = ("roberta", "xlm-roberta")
MODEL_TYPES = ("bert", *ROBERTA_MODEL_TYPES, "electra", "deberta-v2")


def names_jina_bert(raw: dict[str, Any]) -> bool:
    """Whether a config.json describes JinaBERT: its classes (``architectures``, ``auto_map``) say so,
    or, when it names no class, it carries JinaBERT's own fields."""
    classes = [*(raw.get("architectures") or []), *map(str, (raw.get("auto_map") or {}).values())]
    if classes:
        return any("JinaBert" in name for name in classes)
    return raw.get("position_embedding_type") == "alibi" or "feed_forward_type" in raw


@dataclass
class JinaBertConfig:
    vocab_size: int = 61056
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    # "geglu" / "reglu" select the gated feed-forward; anything else the classic BERT pair.
    feed_forward_type: str = "geglu"
    hidden_act: str = "gelu"  # read by the classic feed-forward only, as in the reference
    # "alibi" (JinaBERT) or "absolute" (BERT with learned position embeddings).
    position_embedding_type: str = "alibi"
    max_position_embeddings: int = 8192  # the length limit; no table of this size is built for ALiBi
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 1  # taken from classifier.weight by the loader, never trusted from config.json
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    classifier_dropout: float | None = None
    initializer_range: float = 0.02
    # "bert" (JinaBERT and BERT), "roberta", "xlm-roberta" or "electra": decides the edges listed above.
    model_type: str = "bert"
    embedding_size: int | None = None  # ELECTRA only: embedding width when narrower than hidden_size
    # DeBERTa's relative attention: distances in log buckets, scores content->position and position->content.
    position_buckets: int = 256
    max_relative_positions: int = -1  # -1: max_position_embeddings
    pos_att_type: tuple[str, ...] = ("p2c", "c2p")
    pooler_hidden_act: str = "tanh"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> JinaBertConfig:
        """Build from a config.json dict, ignoring fields this implementation does not use.

        Only JinaBERT reads ``feed_forward_type`` and ALiBi; transformers' own classes (named by
        ``architectures``) always run the classic feed-forward with learned positions, and recent
        transformers versions write neither field, so their defaults must not be JinaBERT's.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known and v is not None}
        if not names_jina_bert(raw):
            values["feed_forward_type"] = "original"
            values.setdefault("position_embedding_type", "absolute")
        if values.get("model_type") == "deberta-v2":
            values["position_embedding_type"] = "disentangled"
            values["pos_att_type"] = tuple(raw.get("pos_att_type") or ())
            values.setdefault("pooler_hidden_act", "gelu")
        return cls(**values)

    @property
    def uses_alibi(self) -> bool:
        return self.position_embedding_type == "alibi"

    @property
    def uses_relative_attention(self) -> bool:
        return self.position_embedding_type == "disentangled"

    @property
    def max_relative_distance(self) -> int:
        return (
            self.max_relative_positions if self.max_relative_positions > 0 else self.max_position_embeddings
        )

    @property
    def relative_span(self) -> int:
        """DeBERTa's k: relative embeddings cover distances -k..k-1 (in buckets when it has them)."""
        return self.position_buckets if self.position_buckets > 0 else self.max_relative_distance

    @property
    def family(self) -> str:
        """The family by what runs: "jinabert" (ALiBi), else the model_type (bert, roberta, ...)."""
        return "jinabert" if self.uses_alibi else self.model_type

    @property
    def classifier_dropout_prob(self) -> float:
        return self.classifier_dropout if self.classifier_dropout is not None else self.hidden_dropout_prob

    @property
    def is_roberta(self) -> bool:
        return self.model_type in ROBERTA_MODEL_TYPES

    @property
    def has_pooler(self) -> bool:
        """A pooler + linear classifier (BERT, DeBERTa); RoBERTa and ELECTRA put a two-layer head there."""
        return self.model_type in ("bert", "deberta-v2")

    @property
    def position_offset(self) -> int:
        """RoBERTa numbers positions from pad_token_id + 1 (fairseq's convention); rows below go unused."""
        return self.pad_token_id + 1 if self.is_roberta else 0

    @property
    def max_sequence_length(self) -> int:
        """Longest pair the model can read: the ALiBi limit, or the position rows past the offset."""
        return self.max_position_embeddings - self.position_offset

    @property
    def uses_token_type_ids(self) -> bool:
        """Whether the family was trained with segment ids: JinaBERT's own pipeline (RoBERTa tokenizer)
        never passes them, so ALiBi models see zeros, and RoBERTa has a single type; classic BERT and
        ELECTRA cross-encoders saw the tokenizer's."""
        return not (self.uses_alibi or self.is_roberta) and self.type_vocab_size > 0

    @property
    def gated_feed_forward(self) -> bool:
        return self.feed_forward_type.endswith("glu")


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes (Press et al. 2022, section 3), float32, shape (nh,).

    For a power of two n: m_h = 2^(-8(h+1)/n). Otherwise the slopes of the next lower power of two p,
    followed by the even-indexed slopes of 2p, as many as needed.
    """

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**h for h in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two_slopes(num_heads)
    else:
        p = 2 ** math.floor(math.log2(num_heads))
        slopes = power_of_two_slopes(p) + power_of_two_slopes(2 * p)[0::2][: num_heads - p]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(slopes: torch.Tensor, query_positions: torch.Tensor, key_length: int) -> torch.Tensor:
    """Symmetric ALiBi bias -m_h * |i - j| for the given query rows, float32, shape (nh, rows, S).

    The product is taken in float32 from integer distances, which is what the reference does.
    """
    keys = torch.arange(key_length, device=query_positions.device)
    distance = (query_positions[:, None] - keys[None, :]).abs().to(torch.float32)
    return -slopes.to(query_positions.device)[:, None, None] * distance[None]


def reversed_key_alibi(slopes: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
    """ALiBi for keys taken in reverse order, as a (1, nh, S, S) view of a (nh, 2S - 1) tensor.

    With keys reversed (j' = S - 1 - j) the bias -m|i - j| = -m|i + j' - (S - 1)| depends on i + j' only,
    so every row is the previous one shifted by one element: a strided view with row stride 1 holds the
    whole bias in O(S) memory. SDPA reads the view as it is (no copy), and attention is unchanged when
    keys and values are permuted alike. Values are the same float32 products as ``alibi_bias``.
    """
    offsets = torch.arange(2 * length - 1, device=slopes.device) - (length - 1)
    line = (-slopes[:, None] * offsets.abs().to(torch.float32)[None]).to(dtype)  # (nh, 2S - 1)
    return line.as_strided((1, len(slopes), length, length), (0, 2 * length - 1, 1, 1))


def log_bucket(distance: torch.Tensor, buckets: int, max_distance: int) -> torch.Tensor:
    """DeBERTa-v2's relative distance buckets: exact within +-buckets/2, logarithmic beyond (reaching
    +-(buckets - 1) at max_distance), sign kept."""
    mid = buckets // 2
    magnitude = torch.where(distance.abs() < mid, torch.full_like(distance, mid - 1), distance.abs())
    scale = torch.log(torch.tensor((max_distance - 1) / mid))  # float32, as the reference rounds it
    logarithmic = torch.ceil(torch.log(magnitude / mid) / scale * (mid - 1)) + mid
    return torch.where(magnitude <= mid, distance.to(logarithmic.dtype), logarithmic * distance.sign()).long()


@dataclass
class RelativePositions:
    """What DeBERTa's layers share in one forward: the embedding row of each (i, j) distance and the
    normalized relative embeddings (2k, H)."""

    index: torch.Tensor  # (S, S) int64: k + bucket(i - j), clamped to [0, 2k)
    embeddings: torch.Tensor  # (2k, H)


class AttentionBias:
    """Additive attention bias (padding mask, plus ALiBi when enabled), handed out in query-row blocks;
    it also carries DeBERTa's relative positions, which each layer turns into its own bias.

    The same bias serves every layer, so blocks are built once per forward when they fit in memory;
    for long inputs they are rebuilt on demand so that no (nh, S, S) tensor ever exists. A batch
    without padding needs no key mask: on the CPU its ALiBi is then a zero-copy view for reversed keys
    (``reversed_key_alibi``; ``keys_reversed`` tells attention to flip keys and values), elsewhere a
    block (1, nh, rows, S) that broadcasts over the batch instead of being copied B times. Building
    the bias blocks took half the time of an 8,192-token forward on a 2-core CPU; the view costs nothing.
    """

    def __init__(
        self, attention_mask: torch.Tensor, num_heads: int, slopes: torch.Tensor | None, dtype: torch.dtype
    ):
        batch, length = attention_mask.shape
        self.key_mask: torch.Tensor | None = None
        # A traced graph (the ONNX export) must serve padded batches too: it always carries the mask.
        if torch.jit.is_tracing() or not bool(attention_mask.all()):
            # (B, 1, 1, S): 0 on real tokens, the dtype's most negative value on padding (key-only mask).
            self.key_mask = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        self.slopes = slopes
        # DeBERTa's position terms depend on each layer's projections: layers add them per block.
        self.relative: RelativePositions | None = None
        self.dtype = dtype
        self.length = length
        self.device = attention_mask.device
        per_row = (
            (batch if self.key_mask is not None else 1) * (num_heads if slopes is not None else 1) * length
        )
        self.block_rows = max(1, min(length, ATTENTION_BLOCK_ELEMENTS // per_row))
        # CUDA's fused kernels want an aligned, materialized bias; the view is for the CPU kernels.
        self.keys_reversed = slopes is not None and self.key_mask is None and self.device.type == "cpu"
        if self.keys_reversed:
            assert slopes is not None
            self._reversed = reversed_key_alibi(slopes.to(self.device), length, dtype)
            self._cache = None
        else:
            self._cache = list(self._build()) if per_row * length <= ATTENTION_CACHE_ELEMENTS else None

    def _build(self) -> Iterator[tuple[int, int, torch.Tensor | None]]:
        for start in range(0, self.length, self.block_rows):
            end = min(start + self.block_rows, self.length)
            if self.slopes is None:
                yield start, end, self.key_mask
                continue
            rows = torch.arange(start, end, device=self.device)
            bias = alibi_bias(self.slopes, rows, self.length).to(self.dtype)[None]  # (1, nh, rows, S)
            yield start, end, bias if self.key_mask is None else bias + self.key_mask  # (B, nh, rows, S)

    def blocks(self, whole: bool = False) -> Iterator[tuple[int, int, torch.Tensor | None]]:
        """(first row, end row, bias) per block of query rows. ``whole``: the caller's kernel keeps its
        memory linear in S by itself (fused SDPA), so a bias view that costs nothing comes as one block."""
        if self.keys_reversed:
            rows = self.length if whole else self.block_rows
            return (
                (start, min(start + rows, self.length), self._reversed[:, :, start : start + rows])
                for start in range(0, self.length, rows)
            )
        return iter(self._cache) if self._cache is not None else self._build()


class BertEmbeddings(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        width = config.embedding_size or config.hidden_size  # E: narrower than H in ELECTRA only
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        if config.type_vocab_size > 0:  # DeBERTa-v3 has none
            self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        if config.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.position_offset = config.position_offset
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids)  # (B, S, E)
        if hasattr(self, "token_type_embeddings"):
            x = x + self.token_type_embeddings(token_type_ids)
        if hasattr(self, "position_embeddings"):
            # Batches are right-padded, so real tokens sit at 0..n-1 (RoBERTa: offset by pad + 1). Padding
            # gets the next rows instead of RoBERTa's pad row: it is masked as a key and never pooled.
            positions = torch.arange(input_ids.shape[1], device=input_ids.device) + self.position_offset
            x = x + self.position_embeddings(positions)[None]
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob
        self.position_terms = config.pos_att_type if config.uses_relative_attention else ()
        # DeBERTa divides by sqrt(d * (1 + number of position terms)): each term adds a dot product.
        self.score_divisor = math.sqrt(self.head_size * (1 + len(self.position_terms)))

    def disentangled_bias(
        self, q: torch.Tensor, k: torch.Tensor, relative: RelativePositions, start: int, end: int
    ) -> torch.Tensor:
        """DeBERTa's position terms for query rows start:end, already scaled, (B, nh, rows, S).

        With r = k + bucket(i - j): content->position q_i . Kr_r, and position->content k_j . Qr_r,
        where Kr, Qr are this layer's key / query projections of the relative embeddings.
        """
        B, nh, S, d = k.shape
        span = relative.embeddings.shape[0]
        index = relative.index[start:end]  # (rows, S)
        bias = torch.zeros((), dtype=q.dtype, device=q.device)
        if "c2p" in self.position_terms:
            key_positions = self.key(relative.embeddings).view(span, nh, d).transpose(0, 1)  # (nh, 2k, d)
            content_to_position = q[:, :, start:end] @ key_positions.transpose(-1, -2)  # (B, nh, rows, 2k)
            bias = bias + content_to_position.gather(-1, index.expand(B, nh, -1, -1))
        if "p2c" in self.position_terms:
            query_positions = self.query(relative.embeddings).view(span, nh, d).transpose(0, 1)
            position_to_content = k @ query_positions.transpose(-1, -2)  # (B, nh, S, 2k)
            bias = bias + position_to_content.gather(-1, index.T.expand(B, nh, -1, -1)).transpose(-1, -2)
        return bias / self.score_divisor

    def forward(self, x: torch.Tensor, bias: AttentionBias, use_sdpa: bool = True) -> torch.Tensor:
        B, S, H = x.shape
        nh, d = self.num_heads, self.head_size
        q = self.query(x).view(B, S, nh, d).transpose(1, 2)  # (B, nh, S, d)
        k = self.key(x).view(B, S, nh, d).transpose(1, 2)
        v = self.value(x).view(B, S, nh, d).transpose(1, 2)
        if bias.keys_reversed:
            k, v = k.flip(2), v.flip(2)
        dropout = self.dropout_p if self.training else 0.0
        outputs = []
        for start, end, block_bias in bias.blocks(whole=use_sdpa):
            q_block = q[:, :, start:end]  # (B, nh, rows, d)
            if bias.relative is not None:
                position_bias = self.disentangled_bias(q, k, bias.relative, start, end)
                block_bias = position_bias if block_bias is None else position_bias + block_bias
            if use_sdpa:
                scale = 1.0 / self.score_divisor if self.position_terms else None  # None: SDPA's 1/sqrt(d)
                out = F.scaled_dot_product_attention(
                    q_block, k, v, attn_mask=block_bias, dropout_p=dropout, scale=scale
                )
            else:
                # Reference math: softmax(q k^T / sqrt(d) + mask + alibi) v, the bias added in one go.
                scores = q_block @ k.transpose(-1, -2) / self.score_divisor  # (B, nh, rows, S)
                if block_bias is not None:
                    scores = scores + block_bias
                probs = F.dropout(scores.softmax(dim=-1), dropout, self.training)
                out = probs @ v
            outputs.append(out)
        ctx = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)  # (B, nh, S, d)
        return ctx.transpose(1, 2).reshape(B, S, H)


class BertOutput(nn.Module):
    """Projection back to the hidden size, then residual + LayerNorm (after attention and after the
    classic feed-forward; the two differ only in input width)."""

    def __init__(self, config: JinaBertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertOutput(config, config.hidden_size)

    def forward(self, x: torch.Tensor, bias: AttentionBias, use_sdpa: bool = True) -> torch.Tensor:
        return self.output(self.self(x, bias, use_sdpa), x)


class GatedMLP(nn.Module):
    """GeGLU / ReGLU feed-forward: act(gate) * value, where the FIRST half of gated_layers is the gate."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.ReLU() if config.feed_forward_type == "reglu" else nn.GELU()  # exact erf GELU
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        gate, value = self.gated_layers(h).split(self.intermediate_size, dim=-1)  # 2 x (B, S, I)
        return self.layernorm(self.dropout(self.wo(self.act(gate) * value)) + h)


class BertIntermediate(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        approximate = "tanh" if config.hidden_act in ("gelu_new", "gelu_pytorch_tanh") else "none"
        self.act = nn.ReLU() if config.hidden_act == "relu" else nn.GELU(approximate=approximate)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(h))


class BertLayer(nn.Module):
    """Post-LN transformer layer: attention then feed-forward, each followed by residual + LayerNorm."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        if config.gated_feed_forward:
            self.mlp = GatedMLP(config)
        else:
            self.intermediate = BertIntermediate(config)
            self.output = BertOutput(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, bias: AttentionBias, use_sdpa: bool = True) -> torch.Tensor:
        h = self.attention(x, bias, use_sdpa)
        if hasattr(self, "mlp"):
            return self.mlp(h)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        if config.uses_relative_attention:  # DeBERTa: one table of distance embeddings for every layer
            self.rel_embeddings = nn.Embedding(2 * config.relative_span, config.hidden_size)
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def relative_positions(self, length: int, device: torch.device) -> RelativePositions:
        c = self.config
        positions = torch.arange(length, device=device)
        distance = positions[:, None] - positions[None, :]  # (S, S): i - j
        if c.position_buckets > 0:
            distance = log_bucket(distance, c.position_buckets, c.max_relative_distance)
        span = c.relative_span
        index = (distance + span).clamp(0, 2 * span - 1)
        return RelativePositions(index, self.LayerNorm(self.rel_embeddings.weight))

    def forward(self, x: torch.Tensor, bias: AttentionBias, use_sdpa: bool = True) -> torch.Tensor:
        if hasattr(self, "rel_embeddings"):
            bias.relative = self.relative_positions(x.shape[1], x.device)
        for layer in self.layer:
            x = layer(x, bias, use_sdpa)
        return x


class BertPooler(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = nn.GELU() if config.pooler_hidden_act == "gelu" else nn.Tanh()  # GELU: DeBERTa's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x[:, 0]))  # first token: [CLS] / <s>


class ClassificationHead(nn.Module):
    """RoBERTa / ELECTRA head on the first token: dense -> tanh (RoBERTa) or GELU (ELECTRA) -> out_proj."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = nn.Tanh() if config.is_roberta else nn.GELU()  # exact erf GELU, as transformers'
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.act(self.dense(first))))


class BertModel(nn.Module):
    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        if config.embedding_size not in (None, config.hidden_size):
            self.embeddings_project = nn.Linear(config.embedding_size, config.hidden_size)  # ELECTRA
        self.encoder = BertEncoder(config)
        if config.has_pooler:
            self.pooler = BertPooler(config)
        # Slopes are tiny; the (nh, S, S) bias is never stored (the reference keeps 3.2 GB of it).
        self.register_buffer("alibi_slopes", alibi_slopes(config.num_attention_heads), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        use_sdpa: bool = True,
    ) -> torch.Tensor:
        """The first token's features (B, H): pooled by BERT's tanh pooler, raw where there is none."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        if hasattr(self, "embeddings_project"):
            x = self.embeddings_project(x)  # (B, S, E) -> (B, S, H)
        slopes = self.alibi_slopes if self.config.uses_alibi else None
        bias = AttentionBias(attention_mask, self.config.num_attention_heads, slopes, x.dtype)
        x = self.encoder(x, bias, use_sdpa)
        return self.pooler(x) if hasattr(self, "pooler") else x[:, 0]


class JinaBertForSequenceClassification(nn.Module):
    """Cross-encoder: first-token features -> classifier -> raw logits (B, num_labels). The classifier is
    a linear layer after BERT's pooler, or the two-layer head of RoBERTa and ELECTRA."""

    def __init__(self, config: JinaBertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier: nn.Module = (
            nn.Linear(config.hidden_size, config.num_labels)
            if config.has_pooler
            else ClassificationHead(config)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        use_sdpa: bool = True,
    ) -> torch.Tensor:
        pooled = self.bert(input_ids, attention_mask, token_type_ids, use_sdpa)
        return self.classifier(self.dropout(pooled))

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """BERT initialisation: normal(0, initializer_range) weights, zero biases, unit LayerNorms."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, std, generator=generator)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
