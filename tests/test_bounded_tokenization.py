"""``encode_texts(max_tokens=...)`` encodes a prefix only, and gives exactly the whole text's first ids.

Checked on the WordPiece tokenizers shipped here and on byte-level BPE (RoBERTa-style) and Metaspace
Unigram (XLM-R-style) tokenizers trained on the spot, over texts built to break a naive character cut.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from turborank.tokenization import PairTokenizer

REPO = Path(__file__).resolve().parents[1]
CORPUS = [
    "Attention with linear biases lets a transformer read longer sequences than it was trained on.",
    "Rerankers score each query and document pair; café, naïve, Zürich and 東京 are words too.",
    "Numbers like 3.14159, e-mail a.b@c.d, URLs https://example.com/x?y=1 and emoji 😀 appear.",
]
TEXTS = {
    "prose": " ".join(CORPUS) * 60,
    "whitespace first": " " * 5000 + "the words come late " * 40,
    "blank lines": "\n\n\t \n".join(CORPUS * 30),
    "one long word": "x" * 20000 + " tail words here",
    "cjk": "東京は日本の首都です。" * 400,
    "emoji and accents": "é\u0301 😀👍🏽 naïve " * 500,
    "punctuation": "!?.,;:" * 2000,
    "short": "short text",
    "empty": "",
}


def trained(kind: str) -> Tokenizer:
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=200, unk_token="<unk>", special_tokens=["<unk>"])
    tokenizer.train_from_iterator(CORPUS * 20, trainer)
    return tokenizer


class Plain:
    """A PairTokenizer without a pair template (the trained tokenizers have no post-processor)."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer

    encode_texts = PairTokenizer.encode_texts


TOKENIZERS = {
    "wordpiece small": lambda: PairTokenizer.from_file(REPO / "tests/fixtures/small/tokenizer.json"),
    "wordpiece default": lambda: PairTokenizer.from_file(REPO / "src/turborank/default_model/tokenizer.json"),
    "byte-level bpe": lambda: Plain(trained("bpe")),
    "metaspace unigram": lambda: Plain(trained("unigram")),
}


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("max_tokens", [1, 7, 64, 513])
def test_capped_ids_are_the_whole_texts_first_ids(name, max_tokens):
    tokenizer = TOKENIZERS[name]()
    texts = list(TEXTS.values())
    whole = tokenizer.encode_texts(texts)
    capped = tokenizer.encode_texts(texts, max_tokens)
    for label, full, part in zip(TEXTS, whole, capped, strict=True):
        assert len(part) >= min(max_tokens, len(full)), label
        assert part == full[: len(part)], label


def test_a_5_mb_document_is_encoded_from_a_prefix():
    tokenizer = PairTokenizer.from_file(REPO / "tests/fixtures/small/tokenizer.json")
    seen: list[int] = []
    encode_batch = tokenizer.tokenizer.encode_batch

    class Spy:
        def encode_batch(self, texts, **kwargs):
            seen.extend(len(t) for t in texts)
            return encode_batch(texts, **kwargs)

    tokenizer.tokenizer = Spy()
    document = "reranking long documents costs what the pair can hold, not more. " * 80_000  # 5.3 MB
    [ids] = tokenizer.encode_texts([document], 512)
    assert len(ids) >= 512 and max(seen) < 100_000
