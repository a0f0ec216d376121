"""Parity of every supported family against ``transformers`` itself.

Each checkpoint is built in the test by transformers' own classes with random weights, saved with
``save_pretrained`` next to a small tokenizer.json trained here with ``tokenizers``, and loaded by
turborank. Logits must agree within 1e-5 (fp32) on padded batches, on pairs scored alone, and end to end
through each library's own tokenization.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

from turborank import Reranker  # noqa: E402
from turborank.checkpoint import load_model  # noqa: E402
from turborank.errors import CheckpointError  # noqa: E402

TOLERANCE = 1e-5
CORPUS = [
    "what is the capital of france",
    "paris is the capital and largest city of france",
    "berlin is the capital of germany and its largest city",
    "the quick brown fox jumps over the lazy dog",
    "cross encoders read the query and the document together",
    "a reranker orders the candidates that a first stage retrieved",
    "position embeddings tell the model where each token sits",
    "Tokenizers split text into pieces; numbers like 1926 and 2048 too!",
]
PAIRS = [
    ("capital of france?", "Paris is the capital and largest city of France."),
    ("capital of france?", "Berlin is the capital of Germany."),
    ("what does a reranker do", "A reranker orders the candidates that a first stage retrieved, " * 2),
    ("fox", "the quick brown fox"),
    ("numbers", "1926 and 2048 are numbers; so is 7."),
]


def corpus_words(lowercase: bool) -> list[str]:
    splitter = pre_tokenizers.BertPreTokenizer()
    text = " ".join(CORPUS).lower() if lowercase else " ".join(CORPUS)
    return sorted({word for word, _ in splitter.pre_tokenize_str(text)})


def wordpiece_tokenizer() -> Tokenizer:
    """BERT's kind; the vocabulary is written out (WordPiece training is not deterministic)."""
    words = corpus_words(lowercase=True)
    characters = sorted({c for word in words for c in word})
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters, *(f"##{c}" for c in characters)]
    pieces += [w for w in words if w not in pieces]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def byte_level_bpe_tokenizer() -> Tokenizer:
    """RoBERTa's kind: byte-level BPE, ``<s> A </s></s> B </s>``."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def unigram_tokenizer() -> Tokenizer:
    """XLM-RoBERTa's kind: a SentencePiece unigram model (Metaspace), ``<s> A </s> </s> B </s>``; the
    vocabulary is written out (unigram training is not deterministic)."""
    words = corpus_words(lowercase=False)
    characters = sorted({c for word in words for c in word})
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -5.0) for c in characters] + [(f"\u2581{w}", -1.0 - len(w) / 10) for w in words[::2]]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.decoder = decoders.Metaspace()
    return tokenizer


BERT_SPECIALS = {
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
}
ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "cls_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
}
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48}


# family -> (transformers class, its config class, config fields beyond SIZES, tokenizer builder, specials)
FAMILIES = {
    "bert": (
        transformers.BertForSequenceClassification,
        transformers.BertConfig,
        {"max_position_embeddings": 128},
        wordpiece_tokenizer,
        BERT_SPECIALS,
    ),
    # RoBERTa proper: 2 token types in the table but only type 0 used, positions from pad_token_id + 1.
    "roberta": (
        transformers.RobertaForSequenceClassification,
        transformers.RobertaConfig,
        {"max_position_embeddings": 130, "pad_token_id": 1},
        byte_level_bpe_tokenizer,
        ROBERTA_SPECIALS,
    ),
    # Shaped like bge-reranker: a single token type, 2 + max length position rows.
    "xlm-roberta": (
        transformers.XLMRobertaForSequenceClassification,
        transformers.XLMRobertaConfig,
        {"max_position_embeddings": 130, "type_vocab_size": 1, "pad_token_id": 1},
        unigram_tokenizer,
        ROBERTA_SPECIALS,
    ),
    "electra": (
        transformers.ElectraForSequenceClassification,
        transformers.ElectraConfig,
        {"embedding_size": 16, "max_position_embeddings": 128},
        wordpiece_tokenizer,
        BERT_SPECIALS,
    ),
    # The DeBERTa-v3 layout mxbai-rerank-v1 uses; 16 buckets so that these short pairs reach the log buckets.
    "deberta-v2": (
        transformers.DebertaV2ForSequenceClassification,
        transformers.DebertaV2Config,
        {
            "max_position_embeddings": 128,
            "relative_attention": True,
            "position_buckets": 16,
            "share_att_key": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "norm_rel_ebd": "layer_norm",
            "type_vocab_size": 0,
            "pooler_hidden_act": "gelu",
        },
        wordpiece_tokenizer,
        BERT_SPECIALS,
    ),
}


def save_family(directory: Path, family: str, num_labels: int = 1, seed: int = 0):
    """A random-weight checkpoint of ``family`` saved by transformers; returns the transformers model."""
    model_class, config_class, fields, make_tokenizer, specials = FAMILIES[family]
    tokenizer = make_tokenizer()
    config = config_class(num_labels=num_labels, vocab_size=tokenizer.get_vocab_size(), **SIZES, **fields)
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():  # weights far from init, so that a wrong position or head would show
        for name, parameter in model.named_parameters():
            parameter.normal_(
                1.0 if name.endswith("LayerNorm.weight") else 0.0, 0.3 if parameter.ndim > 1 else 0.2
            )
    model.save_pretrained(directory)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=128, **specials)
    fast.save_pretrained(directory)
    return model


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_checkpoint(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    reference = save_family(directory, request.param)
    return request.param, directory, reference


def reference_logits(reference, directory: Path, pairs, **tokenizer_kwargs) -> np.ndarray:
    """transformers end to end: its tokenizer (padded batch) and its model."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    features = tokenizer(
        [q for q, _ in pairs], [d for _, d in pairs], padding=True, return_tensors="pt", **tokenizer_kwargs
    )
    with torch.no_grad():
        return reference(**features).logits.numpy()


def test_each_family_loads_without_remote_code_and_names_itself(family_checkpoint):
    family, directory, _ = family_checkpoint
    reranker = Reranker.from_pretrained(directory, device="cpu")
    info = reranker.info()
    assert info["family"] == family
    assert info["max_positions"] == 128  # RoBERTa's two offset rows are not usable positions


def test_cli_info_names_the_family(family_checkpoint, capsys):
    from turborank.cli import main

    family, directory, _ = family_checkpoint
    assert main(["info", str(directory), "--device", "cpu"]) == 0
    expected = {
        "bert": "BERT (absolute positions)",
        "roberta": "RoBERTa (absolute positions)",
        "xlm-roberta": "XLM-RoBERTa (absolute positions)",
        "electra": "ELECTRA (absolute positions)",
        "deberta-v2": "DeBERTa-v2 (relative positions)",
    }
    assert expected[family] in capsys.readouterr().out


def test_model_matches_transformers_on_padded_batches(family_checkpoint):
    family, directory, reference = family_checkpoint
    model = load_model(directory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    features = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], padding=True, return_tensors="pt")
    assert not bool(features["attention_mask"].all()), "the batch must contain padding"
    with torch.no_grad():
        expected = reference(**features).logits
        for use_sdpa in (True, False):
            ours = model(
                features["input_ids"],
                features["attention_mask"],
                features.get("token_type_ids"),
                use_sdpa=use_sdpa,
            )
            assert torch.allclose(ours, expected, atol=TOLERANCE, rtol=0), (family, use_sdpa)


def test_model_matches_transformers_unpadded(family_checkpoint):
    family, directory, reference = family_checkpoint
    model = load_model(directory)
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    for query, document in PAIRS:
        features = tokenizer(query, document, return_tensors="pt")
        with torch.no_grad():
            expected = reference(**features).logits
            ours = model(features["input_ids"], features["attention_mask"], features.get("token_type_ids"))
        assert torch.allclose(ours, expected, atol=TOLERANCE, rtol=0), family


def test_reranker_end_to_end_matches_transformers(family_checkpoint):
    """turborank's own tokenization and engine against transformers' tokenizer and model."""
    family, directory, reference = family_checkpoint
    reranker = Reranker.from_pretrained(directory, device="cpu")
    expected = reference_logits(reference, directory, PAIRS)
    ours = reranker.predict_logits(PAIRS, truncation="longest_first")
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)
    scores = reranker.compute_score([list(p) for p in PAIRS], normalize=False)
    np.testing.assert_allclose(scores, expected[:, 0], atol=TOLERANCE, rtol=0)


def test_truncation_matches_transformers(family_checkpoint):
    family, directory, reference = family_checkpoint
    reranker = Reranker.from_pretrained(directory, device="cpu")
    long_pairs = [(q, d * 8) for q, d in PAIRS]
    expected = reference_logits(reference, directory, long_pairs, truncation="longest_first", max_length=40)
    ours = reranker.predict_logits(long_pairs, max_length=40, truncation="longest_first")
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE, rtol=0)


def test_bert_config_decides_by_architectures_not_by_missing_fields(tmp_path):
    """transformers 5 writes neither feed_forward_type nor position_embedding_type; a BERT config that
    carries JinaBERT's fields anyway is still BERT (transformers ignores them), and a JinaBERT config is
    named by its architectures."""
    reference = save_family(tmp_path, "bert")
    config_path = tmp_path / "config.json"
    raw = json.loads(config_path.read_text())
    assert "feed_forward_type" not in raw
    raw["feed_forward_type"] = "geglu"
    config_path.write_text(json.dumps(raw))
    reranker = Reranker.from_pretrained(tmp_path, device="cpu")
    assert reranker.info()["architecture"] == "BERT (absolute positions)"
    np.testing.assert_allclose(
        reranker.predict_logits(PAIRS, truncation="longest_first"),
        reference_logits(reference, tmp_path, PAIRS),
        atol=TOLERANCE,
        rtol=0,
    )


def test_unsupported_family_and_position_scheme_are_refused(tmp_path):
    save_family(tmp_path, "bert")
    config_path = tmp_path / "config.json"
    raw = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**raw, "model_type": "modernbert"}))
    with pytest.raises(
        CheckpointError, match="model_type 'modernbert'.*bert, roberta, xlm-roberta, electra, deberta-v2"
    ):
        Reranker.from_pretrained(tmp_path, device="cpu")
    config_path.write_text(json.dumps({**raw, "position_embedding_type": "relative_key"}))
    with pytest.raises(CheckpointError, match="'absolute' and 'alibi' positions only"):
        Reranker.from_pretrained(tmp_path, device="cpu")


def test_deberta_v2_layouts_other_than_v3_are_refused(tmp_path):
    """deberta-v2-xlarge's conv layer and separate position projections are not implemented."""
    save_family(tmp_path, "deberta-v2")
    config_path = tmp_path / "config.json"
    raw = json.loads(config_path.read_text())
    for change in ({"conv_kernel_size": 3}, {"share_att_key": False}, {"position_biased_input": True}):
        config_path.write_text(json.dumps({**raw, **change}))
        with pytest.raises(
            CheckpointError, match=f"DeBERTa-v2 variant turborank does not run.*{next(iter(change))}"
        ):
            Reranker.from_pretrained(tmp_path, device="cpu")


def test_roberta_without_head_is_refused_as_an_encoder(tmp_path):
    save_family(tmp_path, "xlm-roberta")
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "model.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("classifier.")},
        str(tmp_path / "model.safetensors"),
    )
    with pytest.raises(CheckpointError, match="without a ranking head"):
        Reranker.from_pretrained(tmp_path, device="cpu")


def test_an_unused_pooler_in_a_roberta_file_is_ignored_as_transformers_does(tmp_path):
    from safetensors.torch import load_file, save_file

    reference = save_family(tmp_path, "xlm-roberta")
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights |= {
        "roberta.pooler.dense.weight": torch.ones(32, 32),
        "roberta.pooler.dense.bias": torch.ones(32),
    }
    save_file(weights, str(tmp_path / "model.safetensors"))
    reranker = Reranker.from_pretrained(tmp_path, device="cpu")
    np.testing.assert_allclose(
        reranker.predict_logits(PAIRS, truncation="longest_first"),
        reference_logits(reference, tmp_path, PAIRS),
        atol=TOLERANCE,
        rtol=0,
    )
