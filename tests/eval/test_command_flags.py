"""``turborank eval`` refuses flag values it would otherwise misread or silently ignore."""

from __future__ import annotations

import pytest
from eval_helpers import write_beir

from turborank.cli import main


@pytest.fixture
def folder(tmp_path):
    return write_beir(
        tmp_path / "tiny", {"d0": ("", "Paris is in France.")}, {"q0": "France"}, {"q0": {"d0": 1}}
    )


def run_eval(capsys, folder, *flags: str) -> tuple[int, str]:
    code = main(
        ["eval", "--dataset", str(folder), "--quiet", "--output-dir", str(folder.parent / "out"), *flags]
    )
    return code, capsys.readouterr().err


@pytest.mark.parametrize("k", ["0", "-1"])
def test_k_below_one_is_refused(capsys, folder, k):
    # --k 0 used to fall back to the default depth (100), and --k -1 ran and reported "top -1".
    code, err = run_eval(capsys, folder, "--no-rerank", "--k", k)
    assert code == 2 and f"turborank: error: --k must be at least 1, got {k}" in err


def test_other_counts_below_one_are_refused(capsys, folder):
    code, err = run_eval(capsys, folder, "--no-rerank", "--sample-queries", "0")
    assert code == 2 and "--sample-queries must be at least 1, got 0" in err
    code, err = run_eval(capsys, folder, "--endpoint", "http://localhost:1", "--concurrency", "0")
    assert code == 2 and "--concurrency must be at least 1, got 0" in err


def test_endpoint_that_is_not_a_url_is_a_clean_error(capsys, folder):
    pytest.importorskip("httpx")
    code, err = run_eval(capsys, folder, "--endpoint", "notaurl")
    assert code == 2 and "turborank: error: url must start with http:// or https://, got 'notaurl'" in err


def test_local_model_flags_next_to_an_endpoint_are_refused(capsys, folder):
    code, err = run_eval(capsys, folder, "--endpoint", "http://localhost:1", "--model", "x", "--threads", "2")
    assert code == 2 and "--model, --threads: local model settings, which --endpoint" in err
    assert "--api-model" in err
