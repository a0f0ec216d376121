"""Unpadded backend for CUDA: the real tokens of a batch packed into one sequence, no FLOP on padding.

A padded batch (B, S) becomes one packed sequence of T = sum of lengths tokens plus ``cu_seqlens``
(B + 1 cumulative offsets, the layout of FlashAttention's varlen kernels). Linear layers, GeGLU and
LayerNorms run on (T, H); only attention needs the sequence boundaries. Attention kernels, fastest
first:

* ``flash``: ``flash_attn.flash_attn_varlen_func`` with ``alibi_slopes`` (the flash-attn package, CUDA,
  fp16/bf16). Its non-causal ALiBi bias is -m_h * |i - j| within each sequence: JinaBERT's bias.
* ``flex``: ``torch.nn.attention.flex_attention`` with the ALiBi ``score_mod`` and a block mask that
  keeps each token inside its own sequence; compiled on CUDA, so blocks across sequences are skipped.
* ``loop``: one dense attention per sequence. The reference, and what runs on a CPU (tests).

The embeddings and layers run in the model's dtype (bf16/fp16); the pooler and classifier run in
float32, so logits and sigmoid scores are float32. ALiBi models only: absolute position embeddings
would need per-sequence positions in the embedding layer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .engine import Batch
from .errors import InputError
from .model import JinaBertForSequenceClassification, alibi_bias, alibi_slopes

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask

# flex_attention's tile: its kernels skip or mask whole blocks of this many query and key tokens.
FLEX_BLOCK_SIZE = 128
# Compiled flex_attention refuses narrower heads ("embedding dimension ... must be at least 16").
FLEX_MIN_HEAD_SIZE = 16


@dataclass
class PackedBatch:
    """The real tokens of a batch, concatenated."""

    input_ids: torch.Tensor  # (T,) int64
    token_type_ids: torch.Tensor  # (T,) int64
    cu_seqlens: torch.Tensor  # (B + 1,) int32: sequence b is tokens cu_seqlens[b] : cu_seqlens[b + 1]
    max_seqlen: int

    @property
    def lengths(self) -> list[int]:
        return self.cu_seqlens.diff().tolist()


def pack(batch: Batch) -> PackedBatch:
    """Drop the padding of a right-padded batch."""
    lengths = batch.attention_mask.sum(dim=1)
    real = batch.attention_mask.bool()
    cu_seqlens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    return PackedBatch(
        batch.input_ids[real],
        batch.token_type_ids[real],
        cu_seqlens,
        int(lengths.max()) if len(lengths) else 0,
    )


def unpack(packed_values: torch.Tensor, cu_seqlens: torch.Tensor) -> torch.Tensor:
    """(T, ...) packed values -> (B, S, ...) right-padded with zeros (S = longest sequence)."""
    lengths = cu_seqlens.diff().long()
    out = packed_values.new_zeros((len(lengths), int(lengths.max()), *packed_values.shape[1:]))
    mask = torch.arange(out.shape[1], device=lengths.device)[None, :] < lengths[:, None]
    out[mask] = packed_values
    return out


def sequence_ids(cu_seqlens: torch.Tensor) -> torch.Tensor:
    """(T,) index of the sequence each packed token belongs to."""
    lengths = cu_seqlens.diff().long()
    return torch.repeat_interleave(torch.arange(len(lengths), device=cu_seqlens.device), lengths)


# A kernel prepares once per batch what every layer shares (sequence boundaries, block masks) and
# returns the per-layer attention: q, k, v (T, nh, d) and the slopes (nh,) to (T, nh, d).
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Kernel = Callable[[PackedBatch], Attend]


def loop_kernel(packed: PackedBatch) -> Attend:
    bounds = packed.cu_seqlens.tolist()

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(q)
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            n = end - start
            bias = alibi_bias(slopes, torch.arange(n, device=q.device), n).to(q.dtype)  # (nh, n, n)
            seq = [t[start:end].transpose(0, 1) for t in (q, k, v)]  # 3 x (nh, n, d)
            out[start:end] = F.scaled_dot_product_attention(*seq, attn_mask=bias).transpose(0, 1)
        return out

    return attend


def document_block_mask(cu_seqlens: torch.Tensor, block_size: int = FLEX_BLOCK_SIZE) -> BlockMask:
    """flex_attention's block mask for packed sequences, built from the boundaries alone.

    ``create_block_mask`` would evaluate the mask on a dense T x T grid (268 MB at 16k tokens); here
    each block of ``block_size`` tokens is summarized by the first and last sequence it touches, so the
    work is (T / block_size)^2. A pair of blocks is *full* when both lie inside one sequence (no mask
    needed), *partial* when they share a sequence only in part (mask_mod decides per element), and
    skipped otherwise.
    """
    from torch.nn.attention.flex_attention import BlockMask

    total = int(cu_seqlens[-1])
    seq = sequence_ids(cu_seqlens)
    starts = torch.arange(0, total, block_size, device=cu_seqlens.device)
    ends = (starts + block_size).clamp(max=total)
    first, last = seq[starts], seq[ends - 1]
    shares = (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])
    whole = (first == last) & (ends - starts == block_size)
    full = whole[:, None] & whole[None, :] & (first[:, None] == first[None, :])

    def same_sequence(b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202 - flex_attention's signature
        return seq[q_idx] == seq[kv_idx]

    return BlockMask.from_kv_blocks(
        *_ordered_blocks(shares & ~full),
        *_ordered_blocks(full),
        BLOCK_SIZE=block_size,
        mask_mod=same_sequence,
        seq_lengths=(total, total),
    )


def _ordered_blocks(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(nq, nkv) block mask -> BlockMask's (1, 1, nq) counts and (1, 1, nq, nkv) indices, kept first."""
    counts = mask.sum(dim=-1).to(torch.int32)
    indices = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return counts[None, None], indices[None, None]


def flex_kernel(compiled: bool) -> Kernel:
    from torch.nn.attention.flex_attention import flex_attention

    attend_flex = torch.compile(flex_attention, dynamic=True) if compiled else flex_attention

    def kernel(packed: PackedBatch) -> Attend:
        mask = document_block_mask(packed.cu_seqlens)

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
            def alibi(score, b, h, q_idx, kv_idx):  # noqa: ANN001, ANN202
                # Packed sequences are contiguous, so |q_idx - kv_idx| is the in-sequence distance.
                return score - slopes[h] * (q_idx - kv_idx).abs()

            out = attend_flex(*(t.transpose(0, 1)[None] for t in (q, k, v)), score_mod=alibi, block_mask=mask)
            return out[0].transpose(0, 1)  # (1, nh, T, d) -> (T, nh, d)

        return attend

    return kernel


def flash_kernel() -> Kernel:
    from flash_attn import flash_attn_varlen_func

    def kernel(packed: PackedBatch) -> Attend:
        cu, longest = packed.cu_seqlens, packed.max_seqlen

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor) -> torch.Tensor:
            return flash_attn_varlen_func(q, k, v, cu, cu, longest, longest, alibi_slopes=slopes.float())

        return attend

    return kernel


KERNELS: dict[str, Callable[[], Kernel]] = {
    "flash": flash_kernel,
    "flex": functools.partial(flex_kernel, compiled=True),
    "flex-eager": functools.partial(flex_kernel, compiled=False),  # materializes T x T: tests only
    "loop": lambda: loop_kernel,
}


def default_kernel(device: torch.device, head_size: int, dtype: torch.dtype) -> str:
    """flash when the flash-attn package is installed and the dtype is half precision (its kernels take
    nothing else), else compiled flex attention (loop for heads too narrow for flex); loop on a CPU."""
    if device.type != "cuda":
        return "loop"
    if dtype in (torch.float16, torch.bfloat16):
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            pass
        else:
            return "flash"
    return "flex" if head_size >= FLEX_MIN_HEAD_SIZE else "loop"


class UnpaddedBackend:
    """Packs each batch and runs the model on real tokens only. ``is_padded = False``: the planner fills
    the token budget with real tokens."""

    is_padded = False
    max_batch_tokens = None

    def __init__(
        self,
        model: JinaBertForSequenceClassification,
        device: torch.device,
        dtype: torch.dtype,
        kernel: str | None = None,
    ):
        if not model.config.uses_alibi:
            raise InputError(
                "the unpadded backend supports ALiBi (JinaBERT) models only; use backend='torch' for "
                "models with absolute position embeddings"
            )
        head_size = model.config.hidden_size // model.config.num_attention_heads
        kernel = kernel or default_kernel(device, head_size, dtype)
        if kernel not in KERNELS:
            raise InputError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if kernel == "flex" and head_size < FLEX_MIN_HEAD_SIZE:
            raise InputError(
                f"compiled flex attention needs at least {FLEX_MIN_HEAD_SIZE} dimensions per head, this "
                f"model has {head_size}; use kernel='loop' (or install flash-attn)"
            )
        self.kernel_name = kernel
        self.kernel = KERNELS[kernel]()
        self.description = f"unpadded torch with {kernel} attention"
        self.device = device
        self.dtype = dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        # The head runs in float32 whatever the body's dtype: scores are compared across batches.
        self.pooler = torch.nn.Linear(model.config.hidden_size, model.config.hidden_size).to(device)
        self.classifier = torch.nn.Linear(model.config.hidden_size, model.config.num_labels).to(device)
        self.pooler.load_state_dict({k: v.float() for k, v in model.bert.pooler.dense.state_dict().items()})
        self.classifier.load_state_dict({k: v.float() for k, v in model.classifier.state_dict().items()})
        # float32 slopes: m_h * |i - j| reaches thousands at 8k tokens, beyond bf16's integer precision.
        # Recomputed, not read from the model: model.to(bf16) rounds its slope buffer too.
        self.slopes = alibi_slopes(model.config.num_attention_heads).to(device)

    @torch.inference_mode()
    def predict(self, batch: Batch) -> torch.Tensor:
        packed = pack(batch)
        packed = PackedBatch(
            packed.input_ids.to(self.device),
            packed.token_type_ids.to(self.device),
            packed.cu_seqlens.to(self.device),
            packed.max_seqlen,
        )
        hidden = self.encode(packed)  # (T, H)
        first = hidden[packed.cu_seqlens[:-1].long()].float()  # (B, H): the [CLS] / <s> of each sequence
        return self.classifier(torch.tanh(self.pooler(first))).cpu()

    def encode(self, packed: PackedBatch) -> torch.Tensor:
        """Final hidden states (T, H) of the packed tokens."""
        bert = self.model.bert
        x = bert.embeddings(packed.input_ids[None], packed.token_type_ids[None])[0]  # (T, H)
        attend = self.kernel(packed)
        for layer in bert.encoder.layer:
            x = self._layer(layer, x, attend)
        return x

    def _layer(self, layer: torch.nn.Module, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        """One post-LN layer on packed tokens, reusing the layer's own modules."""
        attention = layer.attention.self
        T, H = x.shape
        nh, d = attention.num_heads, attention.head_size
        q = attention.query(x).view(T, nh, d)  # kernels scale q k^T by 1/sqrt(d), then add ALiBi
        k = attention.key(x).view(T, nh, d)
        v = attention.value(x).view(T, nh, d)
        ctx = attend(q, k, v, self.slopes).reshape(T, H)
        h = layer.attention.output(ctx, x)
        if hasattr(layer, "mlp"):
            return layer.mlp(h)
        return layer.output(layer.intermediate(h), h)
