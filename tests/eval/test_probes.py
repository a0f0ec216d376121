"""Dilution probes: building diluted texts and the curve, with a fake scorer (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turborank.eval.probes import Probe, diluted, dilution_curve, wikiqa_probes

NOISE = tuple(f"Sentence {i} is about something else entirely." for i in range(50))


def count_words(text: str) -> int:
    return len(text.split())


def test_diluted_places_the_answer_before_after_and_inside() -> None:
    probe = Probe("q", "THE ANSWER.", NOISE)
    assert diluted(probe, 20, "before", count_words).endswith("THE ANSWER.")
    assert diluted(probe, 20, "after", count_words).startswith("THE ANSWER.")
    around = diluted(probe, 20, "around", count_words)
    assert not around.startswith("THE ANSWER.") and not around.endswith("THE ANSWER.")
    assert count_words(diluted(probe, 20, "after", count_words)) - 2 >= 20
    with pytest.raises(ValueError, match="place"):
        diluted(probe, 20, "middle", count_words)
    with pytest.raises(ValueError, match="noise"):
        diluted(probe, 10_000, "before", count_words)


def test_curve_reports_the_ratio_and_the_share_kept() -> None:
    probes = [Probe(f"q{i}", f"answer {i}.", NOISE) for i in range(4)]

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        # A reranker that loses half its score once the answer is not at the start of the text.
        return [1.0 if doc.startswith("answer") else 0.5 for _, doc in pairs]

    points = {(p.tokens, p.place): p for p in dilution_curve(score, probes, count_words, (0, 30))}
    assert points[(0, "before")].mean_ratio == 1.0 and points[(0, "before")].share_kept == 1.0
    assert points[(30, "after")].mean_ratio == 1.0
    assert points[(30, "before")].mean_ratio == 0.5 and points[(30, "before")].share_kept == 0.0
    assert len(points) == 1 + 3


def test_wikiqa_probes_take_the_labelled_answer_and_other_questions_noise(tmp_path: Path) -> None:
    rows = [
        {"qid": "t0", "query": "q0", "candidates": ["no", "yes0"], "labels": [0, 1]},
        {"qid": "t1", "query": "q1", "candidates": ["none"], "labels": [0]},
        {"qid": "t2", "query": "q2", "candidates": ["yes2", "other2"], "labels": [1, 0]},
    ]
    path = tmp_path / "test.candidates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probes = wikiqa_probes(path, noise_sentences=3)
    assert [(p.query, p.answer) for p in probes] == [("q0", "yes0"), ("q2", "yes2")]
    assert not set(probes[0].noise) & {"no", "yes0"} and not set(probes[1].noise) & {"yes2", "other2"}
