"""Training groups: JSONL round trip, BEIR and candidate-list builders, LLM-free pseudo-queries."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from turborank.distill.data import (
    Group,
    groups_from_beir,
    groups_from_candidates,
    groups_from_keyword_queries,
    groups_from_pseudo_queries,
    groups_from_queries,
    groups_from_run,
    ict_example,
    keyword_query,
    line_passages,
    read_groups,
    sentence_passages,
    split_sentences,
    teacher_labelled,
    with_glued_words,
    write_groups,
)
from turborank.eval.data import DatasetError, Document

pytest.importorskip("bm25s")

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

CORPUS = {
    "d1": Document(
        "Cats", "Cats purr when they are happy. They sleep most of the day. Kittens play with yarn."
    ),
    "d2": Document("Dogs", "Dogs bark at strangers. They like long walks in the park. Puppies chew shoes."),
    "d3": Document("Birds", "Birds sing at dawn. Many species migrate south in winter. Parrots can talk."),
    "d4": Document("Fish", "Fish swim in schools. Sharks are fish too. Goldfish live in bowls at home."),
    "d5": Document("Cats and dogs", "Cats and dogs can live together. Dogs sometimes chase cats around."),
}


def test_group_rejects_ragged_lists() -> None:
    with pytest.raises(ValueError, match="one entry per document"):
        Group("q", "query", ["a", "b"], ["text a"], [1, 0])


def test_groups_round_trip_through_jsonl(tmp_path: Path) -> None:
    groups = [
        Group("q1", "cats?", ["d1", "d2"], ["cat text", "dog text"], [1, 0], [2.5, -1.0], "unit"),
        Group("q2", "birds?", ["d3", "d4"], ["bird text", "fish text"], [None, None]),
    ]
    assert write_groups(groups, tmp_path / "g.jsonl") == 2
    row = json.loads((tmp_path / "g.jsonl").read_text().splitlines()[0])
    assert row["docs"][0] == {"id": "d1", "text": "cat text", "label": 1, "teacher": 2.5}
    assert read_groups(tmp_path / "g.jsonl") == groups


def test_read_groups_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"qid": "q", "query": "x", "docs": []}\n{"qid": "q2"}\n')
    with pytest.raises(DatasetError, match=r"g.jsonl:2"):
        read_groups(path)


def test_groups_from_run_takes_top_ranked_non_relevant() -> None:
    run = {"q": {"d1": 5.0, "d2": 4.0, "d3": 3.0, "d4": 2.0, "d5": 1.0}}
    qrels = {"q": {"d2": 1, "d4": 2, "d1": 0}}
    (group,) = groups_from_run({"q": "pets"}, CORPUS, qrels, run, k_negatives=2)
    assert group.doc_ids == ["d4", "d1", "d3"]  # best-graded positive first, relevant d2 never a negative
    assert group.labels == [2, 0, 0]
    assert group.doc_texts[0] == CORPUS["d4"].full_text


def test_groups_from_run_skips_queries_without_positive() -> None:
    assert groups_from_run({"q": "x"}, CORPUS, {"q": {"d1": 0}}, {"q": {"d1": 1.0}}) == []


def test_groups_from_beir_uses_bm25_when_no_run(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    with (tmp_path / "corpus.jsonl").open("w") as out:
        for doc_id, doc in CORPUS.items():
            out.write(json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text}) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "do cats purr"}) + "\n")
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (group,) = groups_from_beir(tmp_path, "train", k_negatives=2)
    assert group.doc_ids[0] == "d1" and len(group.doc_ids) == 3
    assert group.doc_ids[1] == "d5"  # the other document about cats is the hardest negative
    assert group.source.endswith(":train")


def test_groups_from_candidates(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    rows = [
        {"qid": "a", "query": "q a", "candidates": ["x", "y", "z"], "labels": [0, 1, 0]},
        {"qid": "b", "query": "q b", "candidates": ["x", "y"], "labels": [0, 0]},  # no answer: skipped
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (group,) = groups_from_candidates(path, k_negatives=5)
    assert group.doc_texts[0] == "y" and sorted(group.doc_texts[1:]) == ["x", "z"]
    assert group.labels == [1, 0, 0]
    assert group.doc_ids[0] == "a-1"


def test_ict_takes_a_sentence_out_of_its_passage() -> None:
    text = "Cats purr when they are happy. They sleep most of the day. Kittens play with yarn."
    assert split_sentences(text) == [
        "Cats purr when they are happy.",
        "They sleep most of the day.",
        "Kittens play with yarn.",
    ]
    rng = random.Random(1)
    for _ in range(20):
        query, rest = ict_example(text, rng, keep_probability=0.0)
        assert query in split_sentences(text) and query not in rest
        assert len(split_sentences(rest)) == 2
    assert ict_example("One sentence only here.", rng) is None


def test_pseudo_queries_ict_and_titles() -> None:
    groups = groups_from_pseudo_queries(CORPUS, n=3, k_negatives=2, seed=0, method="ict")
    assert len(groups) == 3
    for group in groups:
        source = CORPUS[group.doc_ids[0]].text
        assert group.query in source and group.labels == [1, None, None][: len(group.labels)]
        assert group.doc_ids[0] not in group.doc_ids[1:]
    titles = groups_from_pseudo_queries(
        {"t": Document("Why cats purr when happy", "Purring is a signal."), **CORPUS}, n=1, method="title"
    )
    assert titles[0].query == "Why cats purr when happy" and titles[0].doc_texts[0] == "Purring is a signal."
    with pytest.raises(ValueError, match="method must be one of"):
        groups_from_pseudo_queries(CORPUS, n=1, method="llm")


def test_pseudo_queries_are_seeded() -> None:
    first = groups_from_pseudo_queries(CORPUS, n=3, k_negatives=2, seed=7)
    again = groups_from_pseudo_queries(CORPUS, n=3, k_negatives=2, seed=7)
    assert first == again


def test_keyword_query_takes_rare_opening_words_in_order() -> None:
    text = "Mastoidectomy removes infected mastoid cells. The surgery takes hours. Recovery is quick."
    frequency = {"mastoidectomy": 1, "removes": 40, "infected": 3, "mastoid": 2, "cells": 30, "recovery": 2}
    opening = ["mastoidectomy", "removes", "infected", "mastoid", "cells", "the", "surgery", "takes", "hours"]
    rng = random.Random(0)
    queries = [keyword_query(text, frequency, 1000, rng) for _ in range(200)]
    for query in queries:
        words = query.removeprefix("what is ").removeprefix("what are ").split()
        words = [w for w in words if w not in {"how", "why", "define", "who"}]
        assert 2 <= len(words) <= 5
        assert all(w in opening for w in words), query  # the third sentence is never used
        assert words == sorted(words, key=opening.index)  # text order
        assert "removes" not in words and "cells" not in words  # in more than 2% of the documents
        assert "the" not in words  # stopword
    rare = sum("mastoidectomy" in q for q in queries)
    assert rare > sum("surgery" in q for q in queries) / 2  # not in the table: df 0, rarest of all
    assert keyword_query("The cat.", {}, 10, rng) is None
    assert keyword_query(text, frequency, 1000, random.Random(5)) == keyword_query(
        text, frequency, 1000, random.Random(5)
    )


def test_keyword_query_groups_keep_documents_whole_and_unlabelled() -> None:
    groups = groups_from_keyword_queries(CORPUS, n=5, group_size=3, seed=0, top=1, depth=5)
    assert len(groups) == 5
    for group in groups:
        source = group.qid.removeprefix("kw-")
        assert source in group.doc_ids and len(set(group.doc_ids)) == 3
        assert group.doc_texts == [CORPUS[d].full_text for d in group.doc_ids]
        assert group.labels == [None, None, None] and group.source == "keywords"
    assert groups == groups_from_keyword_queries(CORPUS, n=5, group_size=3, seed=0, top=1, depth=5)
    assert groups_from_keyword_queries(CORPUS, n=5, group_size=9) == []  # corpus smaller than a group


def test_groups_from_queries_are_teacher_only() -> None:
    (group,) = groups_from_queries({"q": "dogs chase cats"}, CORPUS, k=3)
    assert group.doc_ids[0] == "d5" and group.labels == [None, None, None]


@pytest.mark.skipif(not (SHARED / "beir-scifact").is_dir(), reason="needs ../shared/data")
def test_scifact_train_groups_from_shared_run() -> None:
    scifact = SHARED / "beir-scifact"
    groups = groups_from_beir(scifact, "train", run=scifact / "bm25_top100.train.trec", k_negatives=7)
    assert len(groups) == 809
    assert all(g.labels[0] > 0 and g.labels[1:] == [0] * 7 for g in groups)


def test_embed_in_noise_dilutes_about_half_the_documents_and_keeps_their_scores() -> None:
    from turborank.distill.data import Group, embed_in_noise, split_sentences

    texts = ["The tower was completed in 1889.", "Bananas are yellow.", "Rivers flow to the sea."]
    group = Group("q1", "eiffel", ["a", "b", "c"], texts, [1, 0, 0], [3.0, -1.0, 0.5], "src")
    noise = ["Rain falls in spring. Farmers plant corn.", "Cats sleep a lot. Dogs bark at night."]
    rng = random.Random(0)
    copies = [embed_in_noise(group, noise, rng, max_words=30) for _ in range(200)]
    diluted = 0
    for copy in copies:
        assert copy.qid == "q1#noise" and copy.source == "src+noise"
        assert copy.teacher == [3.0, -1.0, 0.5] and copy.labels == [1, 0, 0]
        for doc_id, original, text in zip(group.doc_ids, group.doc_texts, copy.doc_texts, strict=True):
            assert original in text
            assert copy.doc_ids[group.doc_ids.index(doc_id)] == (
                doc_id if text == original else f"{doc_id}#noise"
            )
            extra = text.replace(original, "").split()
            assert len(extra) <= 30 + 8  # the budget, plus at most one whole noise sentence past it
            assert all(s in " ".join(noise) for s in split_sentences(text.replace(original, " ").strip()))
            diluted += text != original
    assert 0.4 < diluted / (3 * len(copies)) < 0.6
    mixed = [c for c in copies if len({t in texts for t in c.doc_texts}) == 2]
    assert len(mixed) > 100  # most groups hold clean and diluted documents side by side
    answers = [c.doc_texts[0] for c in copies]
    assert any(t.startswith(texts[0]) and t != texts[0] for t in answers)  # noise after
    assert any(t.endswith(texts[0]) and t != texts[0] for t in answers)  # noise before
    assert any(not t.startswith(texts[0]) and not t.endswith(texts[0]) for t in answers)  # around


def test_noise_unrelated_to_a_query_never_shares_a_content_word_with_it() -> None:
    from turborank.distill.data import content_stems, split_sentences, surrounded_by_noise

    noise = [
        "The Eiffel Tower was completed in 1889. Paris hosted a fair that year.",
        "Volcanoes erupt when magma rises. Lava cools into basalt.",
        "Completion of the tower took two years. Rivers flood in spring.",
    ]
    query = "when was the eiffel tower completed"
    assert content_stems(query) == {"eiffe", "tower", "compl"}  # stopwords and short words dropped
    for seed in range(50):
        text = surrounded_by_noise("Answer.", noise, random.Random(seed), 40, unrelated_to=query)
        added = [s for s in split_sentences(text) if s != "Answer."]
        assert added and not any(content_stems(s) & content_stems(query) for s in added)
    # without a query the draws are unchanged: the recipe's noise copies stay reproducible
    plain = [surrounded_by_noise("Answer.", noise, random.Random(7), 40) for _ in range(2)]
    assert plain[0] == plain[1] and "Eiffel" in " ".join(
        surrounded_by_noise("Answer.", noise, random.Random(s), 40) for s in range(20)
    )
    # a query that shares a word with every sentence gets no noise rather than related noise
    assert surrounded_by_noise("Answer.", ["Tower. Tower."], random.Random(0), 40, "tower") == "Answer."


def test_embed_in_noise_twin_pairs_the_top_document_with_itself_in_the_other_state() -> None:
    from turborank.distill.data import Group, embed_in_noise

    texts = ["Bananas are yellow.", "The tower was completed in 1889.", "Rivers flow to the sea."]
    group = Group("q1", "eiffel", ["a", "b", "c"], texts, [0, 1, 0], [-1.0, 3.0, 0.5], "src")
    rng = random.Random(1)
    for _ in range(50):
        copy = embed_in_noise(group, ["Cats sleep a lot. Dogs bark at night."], rng, 30, twin=True)
        assert copy.doc_ids[2] == "b#twin"
        assert copy.teacher == [-1.0, 3.0, 3.0] and copy.labels == [0, 1, 1]
        assert texts[1] in copy.doc_texts[2]
        assert (copy.doc_texts[1] == texts[1]) != (copy.doc_texts[2] == texts[1])  # one clean, one diluted
    with pytest.raises(ValueError, match="twin needs teacher scores"):
        embed_in_noise(Group("q", "x", ["a", "b"], ["t", "u"], [1, 0]), ["Noise."], rng, 30, twin=True)


def test_line_passages_cut_whole_lines_of_about_the_asked_words() -> None:
    lines = [f"Speaker {i}: " + " ".join(["word"] * (i % 7 + 1)) for i in range(40)]
    transcript = Document("", "\n".join(lines))
    passages = line_passages({"m1": transcript, "m2": Document("", "A: one line only")}, words=20)
    ids = [p for p in passages if p.startswith("m1#")]
    assert ids == [f"m1#p{i}" for i in range(len(ids))]
    assert "\n".join(passages[p].text for p in ids) == transcript.text  # nothing lost, nothing cut
    assert all(len(passages[p].text.split()) >= 20 for p in ids[:-1])
    assert all(len(passages[p].text.split()) < 20 + 9 for p in ids)  # one line past the budget at most
    assert passages["m2#p0"].text == "A: one line only"


def test_sentence_passages_cut_whole_sentences_of_about_the_asked_words() -> None:
    sentences = [f"Sentence {i} has " + " ".join(["word"] * (i % 5)) + " in it." for i in range(30)]
    abstract = Document("Title", " ".join(sentences))
    passages = sentence_passages({"a": abstract}, words=25)
    ids = list(passages)
    assert ids == [f"a#s{i}" for i in range(len(ids))] and len(ids) > 3
    assert " ".join(passages[p].text for p in ids) == abstract.full_text  # the title leads the first
    assert all(len(passages[p].text.split()) >= 25 for p in ids[:-1])
    assert all(passages[p].text.endswith(".") for p in ids)  # never cut mid-sentence


def test_glued_words_copy_runs_words_together_in_about_half_the_documents() -> None:
    texts = [f"document {i} tells about rivers and the towns along their banks" for i in range(4)]
    group = Group("q1", "rivers", list("abcd"), texts, [1, 0, 0, None], [2.0, 1.0, 0.0, -1.0], "src")
    rng = random.Random(0)
    copies = [with_glued_words(group, rng) for _ in range(200)]
    glued = 0
    for copy in copies:
        assert copy.qid == "q1#glued" and copy.source == "src+glued"
        assert copy.teacher == group.teacher and copy.labels == group.labels
        for doc_id, original, text in zip(group.doc_ids, texts, copy.doc_texts, strict=True):
            assert text.replace(" ", "") == original.replace(" ", "")  # the same characters, fewer spaces
            assert copy.doc_ids[group.doc_ids.index(doc_id)] == (
                doc_id if text == original else f"{doc_id}#glued"
            )
            glued += text != original
            assert text == original or len(text.split()) <= len(original.split()) - 3
    assert 0.4 < glued / (4 * len(copies)) < 0.6


def test_teacher_labelled_grades_the_teachers_first_three_documents() -> None:
    group = Group(
        "q", "query", ["a", "b", "c", "d", "e"], list("ABCDE"), [1, 0, 0, 0, None], [0.5, 2.0, -1.0, 1.0, 3.0]
    )
    graded = teacher_labelled(group)
    assert graded.labels == [0, 2, 0, 1, 3]  # e, then b, then d; the human label of a is dropped
    assert graded.doc_ids == group.doc_ids and graded.teacher == group.teacher
    assert graded.qid == "q#teacher" and graded.source.startswith("teacher-labels:")
    with pytest.raises(ValueError, match="no teacher scores"):
        teacher_labelled(Group("q", "query", ["a"], ["A"], [1]))
