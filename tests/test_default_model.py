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
    # Absolute positions: 512 at most, longer documents go through chunking. The default pair length and
    # reading are the ones the recipe chose on its dev set (tokenizer_config.json's model_max_length,
    # config.json's long_documents and window_length): a document that fits 256 tokens is read whole, a
    # longer one in 192-token windows, the best one standing for the document.
    declared = json.loads((DEFAULT_MODEL_DIR / "tokenizer_config.json").read_text())["model_max_length"]
    assert default_reranker.max_positions == 512 and default_reranker.max_length == declared == 256
    assert default_reranker.long_documents == "chunk" and default_reranker.window_length == 192
    passage, chunk = "word " * 200, "word " * 1000
    (whole,) = default_reranker.rerank("a query", [passage])
    (windows,) = default_reranker.rerank("a query", [chunk])
    assert whole.num_chunks == 1 and windows.num_chunks == 7  # 1,000 tokens: 187 per window, 140 apart


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


# Dilution (issue 12): an answer must keep its score when unrelated text surrounds it, as in a RAG chunk.
# Hand-written, from no evaluation set: each answer, and sentences on other topics to bury it in.
ANSWERS = [
    ("when was the eiffel tower completed", "The Eiffel Tower in Paris was completed in March 1889."),
    ("what causes ocean tides", "Tides are caused by the gravitational pull of the moon and the sun."),
    ("how many bones are in the adult human body", "An adult human skeleton has 206 bones."),
    ("who wrote pride and prejudice", "Pride and Prejudice is a novel by Jane Austen, published in 1813."),
    ("what is the boiling point of water at sea level", "At sea level, water boils at 100 degrees Celsius."),
    (
        "how long does light from the sun take to reach earth",
        "Sunlight takes about eight minutes to reach the Earth.",
    ),
    (
        "what gas do plants absorb for photosynthesis",
        "Plants absorb carbon dioxide from the air for photosynthesis.",
    ),
    (
        "how many players are on a soccer team",
        "Each soccer team fields eleven players, including the goalkeeper.",
    ),
]
NOISE = [
    "The city council met on Tuesday to discuss the budget for road repairs.",
    "Sourdough bread needs a starter of flour and water kept for several days.",
    "The quarterly report showed a small rise in operating costs across the region.",
    "Many hikers prefer to start early in the morning to avoid the afternoon heat.",
    "The museum's new wing will display ceramics from several private collections.",
    "A good night's sleep helps memory, mood and concentration during the day.",
    "The software update changes how notifications are grouped on the home screen.",
    "Local farmers reported a late frost that damaged some of the apple blossoms.",
    "The orchestra announced a winter season of five concerts and two recitals.",
    "Commuters were advised to allow extra time because of track maintenance.",
    "The recipe calls for two onions, a clove of garlic and a cup of stock.",
    "Volunteers planted three hundred trees along the river bank last weekend.",
]


# Share of (answer, place) cases keeping >= 80 % of the answer's score alone: a guard against round 1's
# collapse (reading 384 tokens truncated, it kept none of either), not issue 12's bar (all of them). The
# shipped model (the soup of round 2b and f1) keeps 20 and 15 of 24 (90 / 600 tokens of noise), round 2b
# 18 and 17, round 2 18 and 19; the model card's WikiQA probe gives the fuller curve.
KEPT_SHARE = 0.6


def bury(answer: str, sentences: int, place: str) -> str:
    noise = [NOISE[i % len(NOISE)] for i in range(sentences)]
    cut = {"before": sentences, "after": 0, "around": sentences // 2}[place]
    return " ".join([*noise[:cut], answer, *noise[cut:]])


@pytest.mark.parametrize("sentences", [6, 40])  # about 90 and 600 tokens of noise
def test_an_answer_keeps_its_score_inside_unrelated_text(default_reranker, sentences):
    alone = default_reranker.compute_score([[q, a] for q, a in ANSWERS])
    kept = []
    for place in ("before", "after", "around"):
        buried = default_reranker.compute_score([[q, bury(a, sentences, place)] for q, a in ANSWERS])
        kept += [b >= 0.8 * s for b, s in zip(buried, alone, strict=True)]
    assert sum(kept) / len(kept) >= KEPT_SHARE, (alone, kept)
