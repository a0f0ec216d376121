"""Dynamic batching: one scheduler per model packs pairs from concurrent requests into shared batches.

Requests are tokenized before they get here (``Reranker.plan``); each of their encodings becomes one
queue entry, so a request with thousands of documents is spread over many batches and ten small
requests share one. A single worker task takes entries first in, first out, lets the engine's own
planner (``Engine.plan``, the token-budget packer ``rerank`` uses) cut the batch that holds the oldest
entry, and runs it on a dedicated thread so the event loop keeps serving. Admission is a try-acquire on
a pending-token budget: when it is spent the caller gets ``Overloaded`` (429) at once, never a wait.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..api import ScoringPlan
from ..engine import Engine
from ..tokenization import PairEncoding
from .errors import Overloaded
from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One request's encodings in flight; ``future`` resolves to its logits (N, L) in plan order."""

    plan: ScoringPlan
    future: asyncio.Future
    remaining: int
    queued_tokens: int
    logits: np.ndarray | None = None
    cancelled: bool = False

    def deliver(self, position: int, row: np.ndarray) -> None:
        if self.logits is None:
            self.logits = np.empty((len(self.plan.encodings), row.shape[0]), dtype=np.float32)
        self.logits[position] = row
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.logits)


@dataclass(eq=False)
class Entry:
    job: Job
    position: int  # row of this encoding in the job's plan
    encoding: PairEncoding = field(repr=False)


class Scheduler:
    """FIFO token-budget batching for one model's engine.

    Args:
        name: the served model name (for metrics and thread names).
        engine: the model's engine; its ``max_batch_tokens``/``max_batch_size`` bound each batch.
        max_queue_tokens: pending tokens admitted before ``submit`` raises ``Overloaded``.
        metrics: where batch sizes and queue depth are recorded.
    """

    def __init__(self, name: str, engine: Engine, max_queue_tokens: int, metrics: Metrics):
        self.name = name
        self.engine = engine
        self.max_queue_tokens = max_queue_tokens
        self.metrics = metrics
        self.queue: deque[Entry] = deque()
        self.pending_tokens = 0
        self.tokens_per_second = 0.0  # moving average, for Retry-After
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None
        # One thread: batches of one model run one after another, and torch's own intra-op threads
        # parallelise each batch.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"turborank-{name}")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"scheduler-{self.name}")

    @property
    def running(self) -> bool:
        """True while the worker task is alive (liveness: a dead worker would never answer again)."""
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Finish every queued entry, then stop the worker (the graceful half of SIGTERM)."""
        self._closing = True
        self._wake.set()
        if self.running:  # a worker that died has nothing left to finish (liveness reported it)
            await self._task
        self._executor.shutdown(wait=True)

    def submit(self, plan: ScoringPlan, front: bool = False) -> Job:
        """Queue a plan's encodings; ``front`` jumps the queue and the budget (health probes).

        A plan larger than the whole budget is still admitted into an empty queue: size alone
        never refuses a request.

        Raises:
            Overloaded: the pending-token budget is spent; retry after the ``Retry-After`` seconds.
        """
        tokens = plan.num_tokens
        if not front:
            self.admit(tokens)
        job = Job(plan, asyncio.get_running_loop().create_future(), len(plan.encodings), tokens)
        entries = [Entry(job, i, e) for i, e in enumerate(plan.encodings)]
        if front:
            self.queue.extendleft(reversed(entries))
        else:
            self.queue.extend(entries)
        self.pending_tokens += tokens
        self._record_queue()
        self._wake.set()
        return job

    def admit(self, tokens: int) -> None:
        """Refuse a request of ``tokens`` if the queue cannot take it now; called before tokenizing with a
        lower bound of the request's tokens, and again on ``submit`` with the exact count.

        Raises:
            Overloaded: the pending-token budget is spent; retry after the ``Retry-After`` seconds.
        """
        if self.pending_tokens and self.pending_tokens + tokens > self.max_queue_tokens:
            raise Overloaded(
                f"model {self.name!r} has {self.pending_tokens} tokens queued and this request adds "
                f"{tokens} (limit {self.max_queue_tokens}, --max-queue-tokens); retry later",
                self.retry_after(),
            )

    def cancel(self, job: Job) -> None:
        """Drop a job whose caller left or timed out; its queued entries are skipped, not scored."""
        if job.cancelled:
            return
        job.cancelled = True
        self.pending_tokens -= job.queued_tokens
        job.queued_tokens = 0
        self._record_queue()

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained, from the measured throughput."""
        if self.tokens_per_second <= 0:
            return 1
        return max(1, math.ceil(self.pending_tokens / self.tokens_per_second))

    def _next_batch(self) -> list[Entry]:
        """Pop the batch that holds the oldest live entry; the rest of the window keeps its place.

        The window is the FIFO prefix that fits one budget in real tokens; ``Engine.plan`` then packs it
        by the engine's own rules (longest first, padded cost), so there is one packer only. A wider
        window would pad less, but it spreads every request over more batches and all of them finish
        late (measured: with four budgets, 32 concurrent requests all finished together at the end).
        """
        window: list[Entry] = []
        scanned = 0
        tokens = 0
        for entry in self.queue:
            if entry.job.cancelled:
                scanned += 1
                continue
            size = len(entry.encoding)
            if window and (
                tokens + size > self.engine.max_batch_tokens or len(window) >= self.engine.max_batch_size
            ):
                break
            window.append(entry)
            tokens += size
            scanned += 1
        for _ in range(scanned):
            self.queue.popleft()
        if not window:
            return []
        groups = self.engine.plan([e.encoding for e in window])
        chosen = set(next(g for g in groups if 0 in g))
        self.queue.extendleft(reversed([e for i, e in enumerate(window) if i not in chosen]))
        batch = [window[i] for i in sorted(chosen)]
        for entry in batch:
            size = len(entry.encoding)
            entry.job.queued_tokens -= size
            self.pending_tokens -= size
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = self._next_batch()
            self._record_queue()
            if not batch:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            encodings = [e.encoding for e in batch]
            started = time.perf_counter()
            try:
                logits = await loop.run_in_executor(self._executor, self.engine.run_batch, encodings)
            except Exception as exc:  # noqa: BLE001 - every failure goes to the requests in the batch
                log.error("batch of %d pairs failed on model %s: %s", len(batch), self.name, exc)
                for job in {e.job for e in batch}:
                    self._fail(job, exc)
                continue
            elapsed = time.perf_counter() - started
            self._observe(len(batch), sum(len(e) for e in encodings), elapsed)
            for entry, row in zip(batch, logits, strict=True):
                if not entry.job.cancelled:
                    entry.job.deliver(entry.position, row)

    def _fail(self, job: Job, exc: Exception) -> None:
        self.cancel(job)
        if not job.future.done():
            job.future.set_exception(exc)

    def _observe(self, pairs: int, tokens: int, seconds: float) -> None:
        rate = tokens / max(seconds, 1e-6)
        self.tokens_per_second = (
            rate if self.tokens_per_second == 0 else 0.8 * self.tokens_per_second + 0.2 * rate
        )
        self.metrics.batch_size.labels(self.name).observe(pairs)
        self.metrics.batch_tokens.labels(self.name).observe(tokens)
        self.metrics.batch_seconds.labels(self.name).observe(seconds)

    def _record_queue(self) -> None:
        self.metrics.queue_tokens.labels(self.name).set(self.pending_tokens)
        self.metrics.queue_entries.labels(self.name).set(len(self.queue))
