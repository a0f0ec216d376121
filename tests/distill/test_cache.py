"""Teacher score cache: identity checks and resumable scoring that never scores twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from turborank.distill.cache import CacheError, EmbeddingCache, PairLogitCache, TeacherCache, score_groups
from turborank.distill.data import Group


class CountingTeacher:
    """Scores by document length and counts every document it is asked to score."""

    identity = "counting:v1"

    def __init__(self, fail_after: int | None = None):
        self.scored = 0
        self.fail_after = fail_after

    def score(self, query: str, documents: list[str]) -> list[float]:
        if self.fail_after is not None and self.scored >= self.fail_after:
            raise KeyboardInterrupt  # an interruption in the middle of a run
        self.scored += len(documents)
        return [float(len(d)) for d in documents]


def make_groups(n: int) -> list[Group]:
    return [
        Group(f"q{i}", f"query {i}", [f"d{i}", f"e{i}"], ["x" * (i + 1), "y" * (i + 3)], [1, None])
        for i in range(n)
    ]


def test_second_run_scores_nothing(tmp_path: Path) -> None:
    groups = make_groups(5)
    teacher = CountingTeacher()
    with TeacherCache(tmp_path / "t.sqlite", teacher.identity) as cache:
        first = score_groups(groups, teacher, cache, progress=False)
    assert teacher.scored == 10
    assert first[2].teacher == [3.0, 5.0] and groups[2].teacher is None  # copies, inputs untouched
    again = CountingTeacher()
    with TeacherCache(tmp_path / "t.sqlite", again.identity) as cache:
        second = score_groups(groups, again, cache, progress=False)
        assert len(cache) == 10
    assert again.scored == 0
    assert [g.teacher for g in second] == [g.teacher for g in first]


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    groups = make_groups(6)
    teacher = CountingTeacher(fail_after=6)  # dies on the fourth group
    with TeacherCache(tmp_path / "t.sqlite", teacher.identity) as cache, pytest.raises(KeyboardInterrupt):
        score_groups(groups, teacher, cache, progress=False)
    resumed = CountingTeacher()
    with TeacherCache(tmp_path / "t.sqlite", resumed.identity) as cache:
        out = score_groups(groups, resumed, cache, progress=False)
    assert resumed.scored == 6  # only the three unscored groups
    assert out[5].teacher == [6.0, 8.0]


def test_new_documents_rescore_only_their_group(tmp_path: Path) -> None:
    groups = make_groups(3)
    with TeacherCache(tmp_path / "t.sqlite", CountingTeacher.identity) as cache:
        score_groups(groups, CountingTeacher(), cache, progress=False)
        grown = Group("q1", "query 1", ["d1", "e1", "f1"], ["xx", "yyyy", "zzz"], [1, None, None])
        teacher = CountingTeacher()
        out = score_groups([groups[0], grown], teacher, cache, progress=False)
    assert teacher.scored == 3 and out[1].teacher == [2.0, 4.0, 3.0]


def test_cache_refuses_another_teacher(tmp_path: Path) -> None:
    TeacherCache(tmp_path / "t.sqlite", "teacher-a").close()
    with pytest.raises(CacheError, match="teacher-a"):
        TeacherCache(tmp_path / "t.sqlite", "teacher-b")
    with TeacherCache(tmp_path / "u.sqlite", "teacher-b") as cache, pytest.raises(CacheError):
        score_groups(make_groups(1), CountingTeacher(), cache, progress=False)


class IdTeacher:
    identity = "ids:v1"

    def score(self, query: str, documents: list[str]) -> list[float]:
        raise AssertionError("an id-keyed teacher is never asked by text")

    def score_ids(self, qid: str, doc_ids: list[str]) -> list[float]:
        return [float(len(qid + d)) for d in doc_ids]


def test_id_keyed_teachers_are_asked_by_id(tmp_path: Path) -> None:
    with TeacherCache(tmp_path / "t.sqlite", IdTeacher.identity) as cache:
        (out,) = score_groups(make_groups(1), IdTeacher(), cache, progress=False)
    assert out.teacher == [4.0, 4.0]


def test_embedding_cache_round_trip(tmp_path: Path) -> None:
    vectors = {"a": np.array([0.6, 0.8], np.float32), "b": np.array([1.0, 0.0], np.float32)}
    with EmbeddingCache(tmp_path / "e.sqlite", "enc") as cache:
        cache.put_many(vectors)
    with EmbeddingCache(tmp_path / "e.sqlite", "enc") as cache:
        found = cache.get_many(["a", "b", "c"])
    assert set(found) == {"a", "b"} and np.array_equal(found["a"], vectors["a"])
    with pytest.raises(CacheError):
        EmbeddingCache(tmp_path / "e.sqlite", "another encoder")


def test_pair_logit_cache_in_a_directory_keeps_one_file_per_scorer_identity(tmp_path) -> None:
    with PairLogitCache.in_dir(tmp_path, "member", "scorer-a") as cache:
        cache.put_many({("q", "t"): 1.5})
    with PairLogitCache.in_dir(tmp_path, "member", "scorer-a") as cache:
        assert cache.get_many([("q", "t")]) == {("q", "t"): 1.5}  # the same file, read again
    with PairLogitCache.in_dir(tmp_path, "member", "scorer-b") as cache:
        assert cache.get_many([("q", "t")]) == {}
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and all(n.startswith("member-") and n.endswith(".sqlite") for n in names)
