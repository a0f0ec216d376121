"""The model that ships inside the package: published layout, small, loaded when no model is named."""

from __future__ import annotations

import json

import pytest
import torch

from turborank import Reranker
from turborank.api import DEFAULT_MODEL_DIR
from turborank.checkpoint import read_weights
from turborank.cli import main

# Hand-written checks, not from any evaluation set: the relevant passage shares the topic, not every word.
CASES = [
    (
        "what causes ocean tides",
        [
            "The stock market fell sharply after the central bank raised interest rates.",
            "Tides are caused by the gravitational pull of the moon and the sun on the oceans.",
            "A good sourdough starter needs flour, water and a few days of patience.",
        ],
        1,
    ),
    (
        "symptoms of vitamin d deficiency",
        [
            "Low vitamin D levels can cause bone pain, muscle weakness and fatigue.",
            "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
            "Electric cars need fewer maintenance visits than petrol cars.",
        ],
        0,
    ),
    (
        "how many players are on a soccer team",
        [
            "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
            "Mount Everest is the highest mountain above sea level.",
            "Each soccer team fields eleven players, including the goalkeeper.",
        ],
        2,
    ),
]


def test_the_default_model_ships_in_the_published_layout():
    files = {p.name: p for p in DEFAULT_MODEL_DIR.iterdir() if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    assert sum(p.stat().st_size for p in files.values()) <= 60 * 2**20  # issue 6: at most 60 MB
    weights = read_weights(files["model.safetensors"])
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert "classifier.weight" in weights and "bert.embeddings.word_embeddings.weight" in weights
    config = json.loads(files["config.json"].read_text())
    assert config["id2label"] == {"0": "LABEL_0"} and config["torch_dtype"] == "bfloat16"


@pytest.fixture(scope="module")
def default_reranker() -> Reranker:
    return Reranker.from_pretrained(device="cpu")


def test_the_default_model_names_itself(default_reranker):
    assert default_reranker.info()["name"] == "turborank-default"
    # Absolute positions: 512 at most, longer documents go through chunking. The default pair length is
    # the one the recipe chose on its dev set (tokenizer_config.json's model_max_length).
    declared = json.loads((DEFAULT_MODEL_DIR / "tokenizer_config.json").read_text())["model_max_length"]
    assert default_reranker.max_positions == 512 and default_reranker.max_length == declared == 384


@pytest.mark.parametrize(("query", "documents", "relevant"), CASES)
def test_no_model_argument_ranks_with_the_default_model(default_reranker, query, documents, relevant):
    results = default_reranker.rerank(query, documents)
    assert results[0].index == relevant
    assert results[0].relevance_score > results[-1].relevance_score


def test_the_cli_works_without_a_model(capsys):
    query, documents, relevant = CASES[0]
    assert main(["rank", "--device", "cpu", query, *documents]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results[0]["index"] == relevant
