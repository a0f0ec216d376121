"""``turborank score --ray`` on a local Ray (num_cpus=2): the same scores as the single-process run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from .conftest import make_rows, pq, read_output, run_score, write_rows

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from turborank.score.ray_job import read_directory  # noqa: E402

# Two actors of half a CPU (one torch thread each) leave a CPU of the two for reading and writing.
POOL = ("--ray", "--concurrency", "2", "--num-cpus", "0.5", "--threads", "1")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    # A job that waits for CPUs fails in minutes, not after Ray's default half hour.
    from ray.data import DataContext

    DataContext.get_current().execution_no_progress_timeout_s = 180
    yield
    ray.shutdown()


def test_ray_scores_equal_compute_score_and_the_single_process_run(tmp_path, small_reranker):
    rows = make_rows(3000)
    source = write_rows(rows, tmp_path / "pairs.parquet")
    code, summary = run_score(str(source), str(tmp_path / "ray"), *POOL, "--batch-size", "500")
    assert code == 0 and summary["rows_scored"] == 3000
    on_ray = read_directory(tmp_path / "ray").sort_by("id")  # files of a directory, not in input order
    assert on_ray["id"].to_pylist() == list(range(3000))
    expected = small_reranker.compute_score([[r["query"], r["document"]] for r in rows])
    np.testing.assert_allclose(on_ray["score"].to_numpy(), expected, atol=1e-6)
    run_score(str(source), str(tmp_path / "local.parquet"), "--batch-size", "500")
    local = pq.read_table(tmp_path / "local.parquet")
    assert on_ray.column_names == local.column_names
    np.testing.assert_allclose(on_ray["logit"].to_numpy(), local["logit"].to_numpy(), atol=1e-6)


def cpus_come_back(total: float, within_s: float = 30) -> bool:
    deadline = time.monotonic() + within_s
    while ray.available_resources().get("CPU", 0) < total:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_bad_row_stops_the_job_and_a_rerun_resumes_by_id(tmp_path):
    lines = [json.dumps(r) for r in make_rows(400)]
    lines[350] = json.dumps({"id": 350, "query": "q", "document": None})
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ray"
    args = (
        str(source),
        str(out),
        *POOL,
        "--batch-size",
        "50",
        "--id-column",
        "id",
        "--output-format",
        "jsonl",
    )
    code, _ = run_score(*args)
    assert code == 2
    assert cpus_come_back(2.0), "the failed job's actors still hold their CPUs"
    # The resumed job also runs Ray's checkpoint filter actor (one CPU): one scoring actor fits beside it.
    code, summary = run_score(*args, "--on-error", "skip", "--concurrency", "1")
    assert (
        code == 0
        and summary["rows_skipped"] == 1
        and summary["bad_rows"] == ["id 350: 'document' is missing"]
    )
    ids = sorted(r["id"] for r in read_directory(out).to_pylist())
    assert ids == [i for i in range(400) if i != 350]  # each row once: the first run's rows were not redone


def test_top_n_on_ray_matches_the_single_process_top_n(tmp_path):
    source = write_rows(make_rows(200, per_query=20), tmp_path / "pairs.csv")
    run_score(str(source), str(tmp_path / "local.jsonl"), "--top-n", "2")
    code, _ = run_score(str(source), str(tmp_path / "ray"), *POOL, "--top-n", "2")
    assert code == 0
    local = {(r["query"], r["rank"]): r["id"] for r in read_output(tmp_path / "local.jsonl")}
    on_ray = {(r["query"], r["rank"]): r["id"] for r in read_directory(tmp_path / "ray").to_pylist()}
    assert on_ray == local


def test_an_actor_pool_that_leaves_no_cpu_for_io_is_refused(tmp_path, capsys):
    source = write_rows(make_rows(10), tmp_path / "pairs.jsonl")
    code, _ = run_score(str(source), str(tmp_path / "ray"), "--ray", "--concurrency", "2", "--num-cpus", "1")
    assert code == 2
    assert "lower --concurrency or --num-cpus" in capsys.readouterr().err
