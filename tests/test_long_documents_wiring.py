"""Long documents and backends reach every entry point: server settings, eval flags, CLI info."""

import argparse
import json
import shutil

import pytest
from conftest import FIXTURES

from turborank.cli import build_parser, main

pytest.importorskip("fastapi", reason="pip install 'turborank[server]'")
from turborank.server.app import load_models  # noqa: E402
from turborank.server.config import add_arguments, from_sources  # noqa: E402


def test_server_backend_setting_loads_that_backend(tmp_path):
    pytest.importorskip("onnxruntime", reason="pip install 'turborank[onnx]'")
    model = shutil.copytree(FIXTURES / "small", tmp_path / "small")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = from_sources(parser.parse_args(["--model", f"s={model}", "--device", "cpu"]), {})
    assert config.backend == "auto"
    config = from_sources(
        parser.parse_args(["--model", f"s={model}", "--device", "cpu"]), {"TURBORANK_BACKEND": "onnx-int8"}
    )
    (reranker,) = load_models(config).values()
    onnx = reranker.engine.backend.short  # longer batches go to the blockwise torch model
    assert type(onnx).__name__ == "OnnxBackend" and "-int8-u8s" in onnx.path.name


def test_eval_takes_backend_and_long_documents():
    args = build_parser().parse_args(["eval", "--backend", "onnx", "--long-documents", "chunk"])
    assert args.backend == "onnx" and args.long_documents == "chunk"


def test_cli_info_reports_the_backend(capsys, small_dir):
    assert main(["info", str(small_dir), "--device", "cpu", "--backend", "unpadded", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "unpadded"
