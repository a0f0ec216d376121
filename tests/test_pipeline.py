"""Host work overlapped with the model: prefetching on a thread, chunked tokenization, padded batches."""

import threading

import numpy as np
import pytest

from turborank import InputError
from turborank.pipeline import prefetch, score_pairs

WAIT = 30  # seconds a test waits for the other thread before failing; never a timing assertion


def test_prefetch_keeps_order_and_prepares_the_next_item_while_the_consumer_works():
    started = {i: threading.Event() for i in range(4)}

    def prepare(item):
        started[item].set()
        return item * 10

    seen = []
    for item, prepared in prefetch(prepare, range(4)):
        # The consumer holds item i; item i + 1 is being prepared meanwhile on the other thread.
        if item < 3:
            assert started[item + 1].wait(WAIT)
        seen.append((item, prepared))
    assert seen == [(0, 0), (1, 10), (2, 20), (3, 30)]


def test_prefetch_runs_on_a_helper_thread_and_raises_at_the_failing_item():
    threads = set()

    def prepare(item):
        threads.add(threading.current_thread().name)
        if item == 2:
            raise RuntimeError("tokenizer failed on item 2")
        return item

    got = []
    with pytest.raises(RuntimeError, match="item 2"):
        for item, _ in prefetch(prepare, range(5)):
            got.append(item)
    assert got == [0, 1]
    assert all(name.startswith("turborank-prefetch") for name in threads)


def test_a_consumer_that_stops_early_leaves_the_rest_unprepared():
    prepared = []
    release = threading.Event()

    def prepare(item):
        if item > 0:
            release.wait(WAIT)
        prepared.append(item)
        return item

    stream = prefetch(prepare, range(100), depth=2)
    assert next(stream) == (0, 0)
    release.set()
    stream.close()
    assert len(prepared) <= 4  # item 0, the ones already queued (depth 2) and at most one in flight


def test_bad_depth_and_chunk_size_say_what_to_pass(small_reranker):
    with pytest.raises(InputError, match="depth must be at least 1"):
        list(prefetch(str, [1], depth=0))
    with pytest.raises(InputError, match="chunk_pairs must be a positive"):
        score_pairs(small_reranker, [("q", "d")], chunk_pairs=0)


def test_chunked_scoring_equals_scoring_everything_at_once(small_reranker):
    rng = np.random.default_rng(0)
    words = ["paris", "capital", "france", "river", "city", "berlin", "germany", "museum"]
    pairs = [("capital of france", " ".join(rng.choice(words, int(rng.integers(3, 60))))) for _ in range(23)]
    whole = small_reranker.predict_logits(pairs)
    chunked = score_pairs(small_reranker, pairs, chunk_pairs=5)
    assert chunked.shape == whole.shape == (23, 1)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)
    assert score_pairs(small_reranker, []).shape == (0, 1)


def test_the_engine_pads_the_next_batch_on_a_helper_thread(small_reranker, monkeypatch):
    engine = small_reranker.engine
    padded_on = []
    collate = engine._collate

    def recording(encodings):
        padded_on.append(threading.current_thread().name)
        return collate(encodings)

    monkeypatch.setattr(engine, "_collate", recording)
    encodings = small_reranker.encode([("query", "document " * n) for n in range(1, 40)])
    logits = engine.run(encodings, max_batch_size=4)
    assert len(padded_on) == 10 and all(name.startswith("turborank-prefetch") for name in padded_on)
    np.testing.assert_allclose(
        logits, small_reranker.predict_logits([("query", "document " * n) for n in range(1, 40)]), atol=1e-5
    )
