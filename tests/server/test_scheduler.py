"""The scheduler alone: FIFO fairness, token budget via the engine's packer, cancellation, admission."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from turborank.api import ScoringPlan
from turborank.engine import Engine
from turborank.server.errors import Overloaded
from turborank.server.metrics import Metrics
from turborank.server.scheduler import Scheduler
from turborank.tokenization import PairEncoding


class EchoBackend:
    """Returns each row's length as its logit, so results can be traced back to encodings."""

    is_padded = True

    def __init__(self):
        self.batches: list[list[int]] = []

    def predict(self, batch):
        lengths = batch.attention_mask.sum(dim=1)
        self.batches.append(lengths.tolist())
        return lengths.float().unsqueeze(1)


def plan_of(lengths):
    encodings = [PairEncoding([1] * n, [0] * n) for n in lengths]
    return ScoringPlan(encodings, list(range(len(lengths))), len(lengths))


def make(max_batch_tokens=100, max_queue_tokens=1000):
    backend = EchoBackend()
    engine = Engine(backend, pad_token_id=0, use_token_type_ids=False, max_batch_tokens=max_batch_tokens)
    return Scheduler("m", engine, max_queue_tokens, Metrics()), backend


def test_batches_respect_budget_and_return_rows_in_plan_order():
    async def scenario():
        scheduler, backend = make()
        jobs = [scheduler.submit(plan_of([5 + i, 20, 7])) for i in range(6)]
        scheduler.start()
        results = await asyncio.gather(*(j.future for j in jobs))
        await scheduler.close()
        return results, backend.batches

    results, batches = asyncio.run(scenario())
    for i, logits in enumerate(results):
        assert logits[:, 0].tolist() == [5 + i, 20, 7]  # each row found its way back
    assert all(max(b) * len(b) <= 100 for b in batches)
    assert sum(len(b) for b in batches) == 18


def test_oldest_entry_rides_in_the_next_batch():
    async def scenario():
        scheduler, _ = make(max_batch_tokens=60)
        first = scheduler.submit(plan_of([3]))  # short: packed last by length, yet oldest
        scheduler.submit(plan_of([30, 30, 30, 30]))
        batch = scheduler._next_batch()
        return first, batch

    first, batch = asyncio.run(scenario())
    assert any(entry.job is first for entry in batch)


def test_cancelled_entries_free_the_budget_and_are_never_scored():
    async def scenario():
        scheduler, backend = make(max_queue_tokens=50)
        gone = scheduler.submit(plan_of([20, 20]))
        with pytest.raises(Overloaded) as info:
            scheduler.submit(plan_of([20]))
        assert int(info.value.headers["Retry-After"]) >= 1
        scheduler.cancel(gone)
        assert scheduler.pending_tokens == 0
        kept = scheduler.submit(plan_of([20]))
        scheduler.start()
        logits = await kept.future
        await scheduler.close()
        return logits, backend.batches

    logits, batches = asyncio.run(scenario())
    assert logits.tolist() == [[20.0]] and batches == [[20]]


def test_a_plan_bigger_than_the_queue_is_admitted_when_empty():
    async def scenario():
        scheduler, _ = make(max_queue_tokens=10)
        job = scheduler.submit(plan_of([40, 40]))
        scheduler.start()
        logits = await job.future
        await scheduler.close()
        return logits

    assert np.array_equal(asyncio.run(scenario()), np.array([[40.0], [40.0]]))


def test_backend_errors_reach_every_request_in_the_batch():
    async def scenario():
        scheduler, backend = make()
        backend.predict = lambda batch: torch.tensor([[float("nan")]] * batch.input_ids.shape[0])
        jobs = [scheduler.submit(plan_of([5])) for _ in range(3)]
        scheduler.start()
        outcomes = await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)
        await scheduler.close()
        return outcomes

    assert all("NaN" in str(outcome) for outcome in asyncio.run(scenario()))
