"""The distillation training loop: one visible loop in the spirit of nanoGPT's train.py.

Data path, chosen for CPU throughput: every group's texts are tokenized once up front with the
student's PairTokenizer (each distinct text once, by the Rust tokenizer) and joined into pair
encodings stored as int32 arrays. Groups are shuffled, then sorted by length inside buckets of
``bucket_batches`` batches, so a step's pairs have similar lengths and padding stays low; the batch
order is then shuffled again. One micro-batch is ``batch_groups`` groups x ``group_size`` documents,
collated by the engine's ``collate`` into one forward pass.

Files: the best checkpoint goes to ``out_dir`` (published layout, via ``save_checkpoint``); the
training state (model, optimizer, step, RNG, both configs) and the JSONL run log go to ``run_dir``
(default ``<out_dir>-run``), kept apart so ``out_dir`` stays shippable. A run whose state file
exists resumes from its last saved step and replays the same seeded batch order.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import TOKENIZER_FILE, save_checkpoint
from ..engine import Engine, TorchBackend, collate
from ..errors import InputError, is_real, is_whole, require
from ..model import JinaBertForSequenceClassification
from ..tokenization import PairEncoding, PairTokenizer
from .data import TEACHER_LABELLED, Group
from .losses import combined_loss, get_loss, twin_consistency

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
LOG_FILE = "train_log.jsonl"
DECAYS = ("linear", "cosine", "constant")
DEV_MEASURE = "NDCG@10"


@dataclass
class TrainConfig:
    out_dir: Path = Path("distilled")  # best checkpoint, published layout (config.json, bf16 safetensors)
    run_dir: Path | None = None  # training state + run log; None: <out_dir>-run
    # listwise_kl | margin_mse | pointwise_mse (losses.LOSSES), or supervised: the LCE term alone on
    # labelled groups, no teacher needed (set supervised_weight > 0)
    loss: str = "listwise_kl"
    temperature: float = 1.0  # listwise_kl softmax temperature; higher = softer teacher
    supervised_weight: float = 0.0  # weight of the LCE term on labelled groups; 0 = pure distillation
    twin_weight: float = 0.0  # weight of losses.twin_consistency on groups with a twin; 0 = off
    lr: float = 5e-5  # peak AdamW learning rate
    weight_decay: float = 0.01  # on matrices only, not biases and LayerNorms
    warmup_ratio: float = 0.1  # fraction of steps of linear warmup from 0 to lr
    decay: str = "linear"  # linear | cosine | constant, from lr to 0 after warmup
    epochs: int = 1  # passes over the training groups (ignored when max_steps is set)
    max_steps: int | None = None  # optimizer steps; None: epochs x groups / (batch_groups x grad_accum)
    batch_groups: int = 4  # groups per forward pass; pairs per pass = batch_groups x group_size
    grad_accum: int = 2  # forward passes per optimizer step
    group_size: int = 8  # documents per group: the positive + 7 negatives (longer groups are cut)
    max_length: int = 192  # tokens per pair, specials included; the main cost knob on CPU
    max_query_length: int = 48  # query tokens kept before the document is cut
    grad_clip: float = 1.0  # max global gradient norm
    # Keep the word embeddings fixed: skips their dense gradient and AdamW update (about half of a
    # MiniLM student's parameters), a large CPU saving; only sensible for a pretrained init.
    freeze_word_embeddings: bool = False
    # Dropout during training, hidden and attention alike; None keeps the model's own (0.1). 0 lets
    # attention take the fused SDPA path and skips the random masks: ~1.5x faster on CPU. Not saved.
    dropout: float | None = None
    seed: int = 0  # model dropout, data order
    bf16: bool = True  # bf16 autocast of the forward passes on CUDA
    # bf16 autocast on the CPU too: ~1.6x faster steps on CPUs with AMX or AVX512-BF16, slower elsewhere.
    cpu_bf16: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_threads: int | None = None  # torch CPU threads; None keeps torch's default (all cores)
    eval_every: int = 200  # optimizer steps between dev evaluations (and best-checkpoint checks)
    save_every: int = 100  # optimizer steps between training-state saves (for resume)
    log_every: int = 10  # optimizer steps between run-log lines
    bucket_batches: int = 32  # batches per length-sorted bucket; larger = less padding, less shuffling
    dev_max_docs: int = 100  # documents per dev group scored for NDCG@10
    progress: bool = True  # tqdm progress bar
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into the log and card

    def validate(self) -> None:
        """Refuse settings that would crash mid-run or train nothing (InputError naming the field)."""
        if self.loss != "supervised":
            get_loss(self.loss)
        if self.decay not in DECAYS:
            raise InputError(f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            require(name, value, is_whole(value) and value >= 1, "a positive integer")
        for name in ("max_steps", "num_threads"):  # None: one epoch / torch's own thread count
            value = getattr(self, name)
            require(
                name, value, value is None or (is_whole(value) and value >= 1), "a positive integer or None"
            )
        size = self.group_size
        require("group_size", size, is_whole(size) and size >= 2, "an integer >= 2")
        for name in ("lr", "temperature", "grad_clip"):
            value = getattr(self, name)
            require(name, value, is_real(value) and value > 0, "a number > 0")
        for name in ("weight_decay", "supervised_weight", "twin_weight"):
            value = getattr(self, name)
            require(name, value, is_real(value) and value >= 0, "a number >= 0")
        warmup = self.warmup_ratio
        require("warmup_ratio", warmup, is_real(warmup) and 0 <= warmup < 1, "in [0, 1)")
        dropout = self.dropout
        require(
            "dropout",
            dropout,
            dropout is None or (is_real(dropout) and 0 <= dropout < 1),
            "in [0, 1) or None",
        )

    def resolved_run_dir(self) -> Path:
        out = Path(self.out_dir)
        return Path(self.run_dir) if self.run_dir is not None else out.with_name(out.name + "-run")

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


_POSITIVE_INTS = (
    "epochs",
    "batch_groups",
    "grad_accum",
    "max_length",
    "max_query_length",
    "eval_every",
    "save_every",
    "log_every",
    "bucket_batches",
    "dev_max_docs",
)


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Linear warmup to ``config.lr``, then linear or cosine decay to 0 (or constant)."""
    warmup = int(config.warmup_ratio * total_steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if config.decay == "linear":
        return config.lr * (1.0 - progress)
    if config.decay == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr


@dataclass
class EncodedGroups:
    """Training groups as pair encodings (int32 arrays) plus score and label matrices."""

    pairs: list[list[PairEncoding]]  # (G, n) pair encodings
    lengths: np.ndarray  # (G,) longest pair of each group
    teacher: torch.Tensor | None  # (G, n) float32 teacher scores, None when no group has them
    labels: torch.Tensor  # (G, n) float32 labels, -1 where unknown
    twins: torch.Tensor  # (G, 2) long: columns of a document and its twin in other text, -1 where none


def encode_group_pairs(
    groups: Sequence[Group], tokenizer: PairTokenizer, max_length: int, max_query_length: int, max_docs: int
) -> list[list[PairEncoding]]:
    """Tokenize each distinct text once and join the first ``max_docs`` pairs of every group."""
    texts = list(dict.fromkeys(t for g in groups for t in (g.query, *g.doc_texts[:max_docs])))
    ids = dict(zip(texts, tokenizer.encode_texts(texts), strict=True))
    out = []
    for g in groups:
        query = ids[g.query]
        row = []
        for text in g.doc_texts[:max_docs]:
            pair = tokenizer.join(query, ids[text], max_length, max_query_length)
            # int32 arrays, not lists of Python ints: 8x less memory; collate accepts both.
            row.append(
                PairEncoding(np.asarray(pair.input_ids, np.int32), np.asarray(pair.type_ids, np.int32))
            )
        out.append(row)
    return out


def encode_train_groups(
    groups: Sequence[Group], tokenizer: PairTokenizer, config: TrainConfig
) -> EncodedGroups:
    """Keep groups with at least ``group_size`` documents, cut them to that size, and encode them."""
    n = config.group_size
    kept = [g for g in groups if len(g.doc_ids) >= n]
    if len(kept) < len(groups):
        log.warning(
            "dropped %d of %d groups with fewer than %d documents", len(groups) - len(kept), len(groups), n
        )
    if not kept:
        raise InputError(f"no training group has {n} documents: lower group_size or add negatives")
    needs_teacher = config.loss != "supervised"
    missing = [g.qid for g in kept if g.teacher is None]
    if missing and needs_teacher:
        raise InputError(
            f"{len(missing)} groups have no teacher scores (first: {missing[0]!r}): score them with "
            "turborank.distill.cache.score_groups first"
        )
    pairs = encode_group_pairs(kept, tokenizer, config.max_length, config.max_query_length, n)
    labels = [[-1.0 if label is None else float(label) for label in g.labels[:n]] for g in kept]
    return EncodedGroups(
        pairs=pairs,
        lengths=np.array([max(len(p) for p in row) for row in pairs]),
        teacher=torch.tensor([g.teacher[:n] for g in kept], dtype=torch.float32) if needs_teacher else None,
        labels=torch.tensor(labels, dtype=torch.float32),
        twins=torch.tensor([twin_columns(g.doc_ids[:n]) for g in kept], dtype=torch.long),
    )


def twin_columns(doc_ids: Sequence[str]) -> tuple[int, int]:
    """(original, twin) columns of a group's ``<id>#twin`` document (``data.embed_in_noise``), or (-1, -1).

    The original keeps its id, or ``<id>#noise`` where it was diluted itself.
    """
    for twin, doc_id in enumerate(doc_ids):
        if doc_id.endswith("#twin"):
            original = doc_id.removesuffix("#twin")
            for column, other in enumerate(doc_ids):
                if other in (original, f"{original}#noise"):
                    return column, twin
    return -1, -1


def batch_schedule(
    lengths: np.ndarray, batch_groups: int, epochs: int, bucket_batches: int, seed: int
) -> list:
    """Every micro-batch of every epoch, as lists of group indices, in a seeded order.

    Each epoch: shuffle, sort by length inside buckets of ``bucket_batches`` batches, cut into
    batches, shuffle the batches. Fixed by the seed, so a resumed run replays the same order.
    """
    rng = np.random.default_rng(seed)
    schedule = []
    for _ in range(epochs):
        order = rng.permutation(len(lengths))
        size = batch_groups * bucket_batches
        batches = []
        for start in range(0, len(order), size):
            bucket = order[start : start + size]
            bucket = bucket[np.argsort(-lengths[bucket], kind="stable")]
            batches += [bucket[i : i + batch_groups].tolist() for i in range(0, len(bucket), batch_groups)]
        schedule += [batches[i] for i in rng.permutation(len(batches))]
    return schedule


def dev_ndcg(
    model: JinaBertForSequenceClassification,
    tokenizer: PairTokenizer,
    dev: Sequence[Group],
    dev_pairs: list[list[PairEncoding]],
    device: torch.device,
    use_token_type_ids: bool,
) -> dict[str, float]:
    """NDCG@10 of the model reranking each dev group's documents (turborank.eval.metrics.evaluate).

    Returns the measure over every group under ``DEV_MEASURE`` (it picks the checkpoint) and, when some
    groups are teacher-labelled (``data.teacher_labelled``), over the human-labelled and the
    teacher-labelled ones apart (``DEV_MEASURE:human``, ``DEV_MEASURE:teacher``).
    """
    engine = Engine(TorchBackend(model, device, torch.float32), tokenizer.pad_token_id, use_token_type_ids)
    logits = engine.run([p for row in dev_pairs for p in row])[:, 0].tolist()
    model.train()  # TorchBackend switched it to eval mode
    max_docs = max(len(row) for row in dev_pairs)
    result = {DEV_MEASURE: group_ndcg(dev, logits, max_docs)}
    starts = np.cumsum([0] + [len(row) for row in dev_pairs])
    by_teacher = [group.source.startswith(TEACHER_LABELLED) for group in dev]
    if any(by_teacher) and not all(by_teacher):
        for part, wanted in (("human", False), ("teacher", True)):
            chosen = [i for i, flag in enumerate(by_teacher) if flag == wanted]
            scores = [s for i in chosen for s in logits[starts[i] : starts[i + 1]]]
            result[f"{DEV_MEASURE}:{part}"] = group_ndcg([dev[i] for i in chosen], scores, max_docs)
    return result


def group_ndcg(groups: Sequence[Group], scores: Sequence[float], max_docs: int) -> float:
    """NDCG@10 of ``scores`` (the first ``max_docs`` documents of each group, in order) against the labels."""
    from ..eval.metrics import evaluate

    expected = sum(len(group.doc_ids[:max_docs]) for group in groups)
    if expected != len(scores):
        raise InputError(f"{len(scores)} scores for {expected} dev documents")
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    offset = 0
    for group in groups:
        ids = group.doc_ids[:max_docs]
        run.setdefault(group.qid, {}).update(zip(ids, scores[offset : offset + len(ids)], strict=True))
        judged = {d: int(lab) for d, lab in zip(ids, group.labels, strict=False) if lab is not None}
        if any(v > 0 for v in judged.values()):
            qrels.setdefault(group.qid, {}).update(judged)
        offset += len(ids)
    if not qrels:
        raise InputError("the dev groups have no relevant (label > 0) documents: NDCG@10 is undefined")
    return evaluate(run, qrels, [DEV_MEASURE])[DEV_MEASURE]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def forward_autocast(device: torch.device, config: TrainConfig) -> torch.autocast:
    """A fresh bf16 autocast context for one forward pass (disabled unless the config asks for it).

    Enter one per forward pass, never one around the loop: autocast keeps the bf16 copy of every
    weight until its outermost context exits, so a context held across optimizer steps keeps running
    the weights it first cast and the student trains blind (the first default-model runs did).
    """
    enabled = config.bf16 if device.type == "cuda" else config.cpu_bf16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def set_dropout(model: torch.nn.Module, p: float) -> None:
    """Set every dropout probability in place; config.json keeps the model's own values."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if hasattr(module, "dropout_p"):  # BertSelfAttention passes it to SDPA
            module.dropout_p = p


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases and LayerNorm weights are 1-d)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), eps=1e-8)


class RunLog:
    """Append-only JSONL run log; every line carries the event name and wall time."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"event": event, "time": round(time.time(), 3), **fields}) + "\n")


def save_state(path: Path, **state: Any) -> None:
    """Write the training state atomically: an interrupted save never corrupts the previous one."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    num_groups: int,
) -> tuple[int, float]:
    """Restore model, optimizer and RNG from a saved training state; returns (step, best dev score).

    Raises:
        InputError: the state belongs to another model config or another number of training groups.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    if state["model_config"] != asdict(model.config) or state["num_groups"] != num_groups:
        raise InputError(
            f"{path} belongs to another model or data set ({state['num_groups']} groups, now {num_groups}): "
            "delete it (or use another run_dir) to start a new run"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"].cpu())
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu())
    return state["step"], state["best"]


def train(
    model: JinaBertForSequenceClassification,
    tokenizer_dir: Path,
    train_groups: Sequence[Group],
    config: TrainConfig,
    dev: Sequence[Group] | None = None,
) -> Path:
    """Distil ``train_groups``' teacher scores into ``model``; write the best checkpoint to ``out_dir``.

    Args:
        model: the student (see ``students.build_student``), any device; trained in place.
        tokenizer_dir: directory with the student's tokenizer.json (copied into the checkpoint).
        train_groups: groups with ``teacher`` scores (and labels for the supervised term).
        config: hyper-parameters and paths.
        dev: groups with labels; NDCG@10 every ``eval_every`` steps picks the best checkpoint.
            Without dev, the last step's model is saved.

    Returns:
        ``config.out_dir``, holding config.json, model.safetensors (bf16) and the tokenizer files.

    Raises:
        InputError: groups without teacher scores or with too few documents, a bad loss/decay name.

    Example:
        >>> model, tok = build_student("minilm", init="minilm")
        >>> train(model, tok, read_groups("train.jsonl"), TrainConfig(out_dir=Path("out")), dev)
    """
    config.validate()  # before tokenizing anything
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    out_dir, run_dir = Path(config.out_dir), config.resolved_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    runlog = RunLog(run_dir / LOG_FILE)
    device = resolve_device(config.device)
    tokenizer = PairTokenizer.from_file(Path(tokenizer_dir) / TOKENIZER_FILE, model.config.pad_token_id)
    # The same rule as Reranker: ALiBi (JinaBERT) models see zero segment ids, classic BERT the real ones.
    use_types = model.config.uses_token_type_ids
    n = config.group_size

    t0 = time.time()
    data = encode_train_groups(train_groups, tokenizer, config)
    dev_pairs = (
        encode_group_pairs(dev, tokenizer, config.max_length, config.max_query_length, config.dev_max_docs)
        if dev
        else None
    )
    per_epoch = math.ceil(len(data.pairs) / config.batch_groups)
    total_steps = config.max_steps or max(1, config.epochs * per_epoch // config.grad_accum)
    epochs = math.ceil(total_steps * config.grad_accum / per_epoch)
    schedule = batch_schedule(data.lengths, config.batch_groups, epochs, config.bucket_batches, config.seed)
    log.info(
        "encoded %d groups (%d dev) in %.1fs; %d steps",
        len(data.pairs),
        len(dev or []),
        time.time() - t0,
        total_steps,
    )

    # Model, optimizer, resume.
    torch.manual_seed(config.seed)
    model.to(device).train()
    model.bert.embeddings.word_embeddings.weight.requires_grad_(not config.freeze_word_embeddings)
    if config.dropout is not None:
        set_dropout(model, config.dropout)
    optimizer = make_optimizer(model, config)
    step, best = 0, -math.inf
    state_path = run_dir / STATE_FILE
    if state_path.is_file():
        step, best = load_state(state_path, model, optimizer, device, len(data.pairs))
        runlog.write("resume", step=step, best=best)
        log.info("resumed from %s at step %d", state_path, step)
    else:
        runlog.write(
            "start",
            train_config=config.to_dict(),
            model_config=asdict(model.config),
            parameters=model.num_parameters(),
            groups=len(data.pairs),
            dev_groups=len(dev or []),
            total_steps=total_steps,
            device=str(device),
            threads=torch.get_num_threads(),
        )

    def checkpoint_state() -> None:
        save_state(
            state_path,
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state() if device.type == "cuda" else None,
            step=step,
            best=best,
            num_groups=len(data.pairs),
            model_config=asdict(model.config),
            train_config=config.to_dict(),
        )

    def evaluate_and_keep_best() -> None:
        nonlocal best
        if dev_pairs is None:
            save_checkpoint(model, Path(tokenizer_dir), out_dir)  # no dev set: the latest model is the output
            return
        with forward_autocast(device, config):
            measures = dev_ndcg(model, tokenizer, dev, dev_pairs, device, use_types)
        score = measures[DEV_MEASURE]
        improved = score > best
        if improved:
            best = score
            save_checkpoint(model, Path(tokenizer_dir), out_dir)
        runlog.write("eval", step=step, **measures, best=best, saved=improved)
        parts = "".join(f", {name} {value:.4f}" for name, value in measures.items() if name != DEV_MEASURE)
        log.info("step %d dev %s %.4f (best %.4f)%s", step, DEV_MEASURE, score, best, parts)

    if step == 0 and dev_pairs is not None:
        evaluate_and_keep_best()  # the initial model is a candidate too (and a baseline in the log)

    # CPU training takes the plain attention path: the backward of torch's fused CPU attention
    # (flash kernel) was 53% of a MiniLM step, and plain matmul + softmax made the step 1.7x faster
    # (bf16, 32 x 128 tokens, 2 cores). CUDA keeps the fused kernels.
    use_sdpa = device.type == "cuda"
    # oneDNN builds kernels per tensor shape on the CPU: with every length from 1 to max_length the
    # process grew ~0.3 GB a minute and ran at 26-40 pairs/s; lengths rounded up to 16 keep the
    # number of shapes small.
    pad_multiple = 1 if device.type == "cuda" else 16
    progress = _progress(total_steps, step, config.progress)
    window_loss, window_pairs, window_time = 0.0, 0, 0.0  # training time only, evaluation excluded
    try:
        while step < total_steps:
            started = time.time()
            lr = learning_rate(step, total_steps, config)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            for micro in range(config.grad_accum):
                index = schedule[step * config.grad_accum + micro]
                pairs = [p for g in index for p in data.pairs[g]]
                batch = collate(pairs, tokenizer.pad_token_id, use_types, pad_multiple)
                with forward_autocast(device, config):
                    logits = model(
                        batch.input_ids.to(device),
                        batch.attention_mask.to(device),
                        batch.token_type_ids.to(device),
                        use_sdpa=use_sdpa,
                    )
                student = logits[:, 0].float().view(len(index), n)  # (groups, n)
                teacher = data.teacher[index].to(device) if data.teacher is not None else None
                loss = combined_loss(
                    config.loss,
                    student,
                    teacher,
                    data.labels[index].to(device),
                    config.temperature,
                    config.supervised_weight,
                )
                if config.twin_weight:
                    loss = loss + config.twin_weight * twin_consistency(student, data.twins[index].to(device))
                (loss / config.grad_accum).backward()
                window_loss += loss.item() / config.grad_accum
                window_pairs += len(index) * n
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_time += time.time() - started
            progress.update(1)

            if step % config.log_every == 0 or step == total_steps:
                steps_in_window = (step - 1) % config.log_every + 1
                record = {
                    "loss": window_loss / steps_in_window,
                    "lr": lr,
                    "pairs_per_s": window_pairs / max(window_time, 1e-9),
                }
                runlog.write("train", step=step, **record)
                progress.set_postfix(loss=f"{record['loss']:.4f}", pairs_s=f"{record['pairs_per_s']:.1f}")
                window_loss, window_pairs, window_time = 0.0, 0, 0.0
            if step % config.eval_every == 0 or step == total_steps:
                evaluate_and_keep_best()
            if step % config.save_every == 0 or step == total_steps:
                checkpoint_state()
    except KeyboardInterrupt:
        checkpoint_state()
        runlog.write("interrupted", step=step)
        raise
    finally:
        progress.close()
    runlog.write("end", step=step, best=best if dev_pairs is not None else None, wall_s=time.time() - t0)
    return out_dir


def _progress(total: int, initial: int, enabled: bool):  # -> tqdm
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="distill", unit="step", disable=not enabled)
