import random

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from turborank import InputError
from turborank.tokenization import PairTokenizer, longest_first_lengths


@pytest.fixture(scope="module")
def wordpiece(small_dir):
    return PairTokenizer.from_file(small_dir / "tokenizer.json")


def roberta_style_tokenizer() -> Tokenizer:
    """A byte-level BPE tokenizer with RoBERTa's pair template, like the published jina files."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab.update({ch: i + 4 for i, ch in enumerate(sorted(alphabet))})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tokenizer


def test_roberta_template_is_read_from_the_post_processor():
    raw = roberta_style_tokenizer()
    tokenizer = PairTokenizer(raw, pad_token_id=1)
    t = tokenizer.template
    assert (t.prefix, t.middle, t.suffix) == ((0,), (2, 2), (2,))
    reference = raw.encode("What is BPE?", "Byte pairs, merged.")
    q, d = tokenizer.encode_texts(["What is BPE?", "Byte pairs, merged."])
    pair = tokenizer.join(q, d, max_length=512, max_query_length=256)
    assert pair.input_ids == reference.ids
    assert pair.type_ids == reference.type_ids
    assert not pair.truncated


def test_wordpiece_template(wordpiece):
    t = wordpiece.template
    assert (t.prefix, t.middle, t.suffix) == ((101,), (102,), (102,))
    assert (t.first_type, t.second_type) == (0, 1)


@pytest.mark.parametrize("seed", range(5))
def test_longest_first_matches_the_tokenizers_library(wordpiece, seed):
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    query = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
    document = " ".join(rng.choice(words) for _ in range(rng.randint(1, 60)))
    max_length = rng.randint(8, 80)
    reference = Tokenizer.from_str(wordpiece.tokenizer.to_str())
    reference.enable_truncation(max_length, strategy="longest_first")
    expected = reference.encode(query, document)
    q, d = wordpiece.encode_texts([query, document])
    got = wordpiece.join(q, d, max_length, max_query_length=10_000, truncation="longest_first")
    assert got.input_ids == expected.ids


@pytest.mark.parametrize("max_length", [64, 65])
def test_longest_first_on_texts_far_past_the_budget_gives_the_odd_token_as_the_library_does(
    wordpiece, max_length
):
    """Pair encoding reads long texts from a prefix; the side that is longer in whole still wins the
    odd token (the query's prefix alone looks longer here, the document is longer in whole)."""
    query = "alpha beta gamma " * 40
    document = "delta " * 100 + "epsilon " * 500
    reference = Tokenizer.from_str(wordpiece.tokenizer.to_str())
    reference.enable_truncation(max_length, strategy="longest_first")
    for q, d in ((query, document), (document, query)):
        [got] = wordpiece.encode_pairs([(q, d)], max_length, 10_000, truncation="longest_first")
        assert got.input_ids == reference.encode(q, d).ids


@pytest.mark.parametrize(
    ("first", "second", "budget"), [(3, 4, 10), (9, 2, 6), (2, 9, 6), (8, 8, 7), (9, 7, 7)]
)
def test_longest_first_lengths(first, second, budget):
    a, b = longest_first_lengths(first, second, budget)
    assert a + b == min(first + second, budget)
    assert a <= first and b <= second
    # Never trims the shorter side while the longer one is still longer.
    assert not (a < first and b > a + 1) and not (b < second and a > b + 1)


def test_only_second_cuts_the_document_and_caps_the_query(wordpiece):
    q, d = list(range(1000, 1100)), list(range(2000, 2300))
    pair = wordpiece.join(q, d, max_length=128, max_query_length=64)
    assert len(pair) == 128 and pair.truncated
    assert pair.input_ids[1:65] == q[:64]  # query capped at 64
    assert pair.input_ids[66:127] == d[:61]  # the document fills the rest
    short = wordpiece.join(q[:5], d, max_length=128, max_query_length=64)
    assert short.input_ids[1:6] == q[:5] and len(short) == 128


def test_too_small_max_length_and_unknown_strategy(wordpiece):
    with pytest.raises(InputError, match="leaves no room"):
        wordpiece.join([1], [2], max_length=4, max_query_length=4)
    with pytest.raises(InputError, match="truncation must be one of"):
        wordpiece.join([1], [2], max_length=64, max_query_length=4, truncation="only_first")


def test_baked_in_padding_and_truncation_are_disabled(wordpiece):
    # The fixture's tokenizer.json ships truncation 128 and fixed padding 128.
    (ids,) = wordpiece.encode_texts(["word " * 300])
    assert len(ids) == 300
