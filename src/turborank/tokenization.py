"""Pair tokenization on top of the ``tokenizers`` library (WordPiece and byte-level BPE alike).

Each text is encoded once without special tokens and truncated here; the pair is then joined with
the special tokens that the tokenizer's own post-processor places (``[CLS] q [SEP] d [SEP]`` or
``<s> q </s></s> d </s>``), read once from tokenizer.json. Padding and truncation baked into the file are
disabled: the engine pads per batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Encoding, Tokenizer

from .errors import CheckpointError, InputError

TRUNCATION_STRATEGIES = ("only_second", "longest_first")
# The shortest pair scored (max_length's floor): room for the special tokens and a few of the query's and
# the document's.
MIN_TOKENS_PER_PAIR = 8
# First prefix tried per wanted token: English runs about 4-5 characters per WordPiece token, so one
# encode nearly always suffices; text with fewer tokens per character is retried with a longer prefix.
CHARS_PER_TOKEN_GUESS = 8
# Lone UTF-16 surrogates: a Python str can hold them (a JSON "\ud800" escape, bytes decoded with
# surrogateescape), but they are not Unicode text and the Rust tokenizer rejects them with a bare TypeError.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: Any, where: str) -> None:
    """Refuse what the tokenizer cannot encode: a non-string, or a string with a lone surrogate.

    Args:
        text: the caller's value.
        where: how the error names it (``"query"``, ``"documents[3]"``).

    Raises:
        InputError: naming ``where`` and the offending character's position.
    """
    if not isinstance(text, str):
        raise InputError(f"{where} must be a string, got {type(text).__name__}")
    found = LONE_SURROGATE.search(text)
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        raise InputError(
            f"{where} holds a lone UTF-16 surrogate ({code} at character {found.start()}), which is not "
            "Unicode text: decode the input as UTF-8, or replace the character"
        )


@dataclass(frozen=True)
class PairEncoding:
    """Token ids of one (query, document) pair, ready for batching."""

    input_ids: list[int]
    type_ids: list[int]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class PairTemplate:
    """Special tokens around a pair, read off the tokenizer's own post-processor."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...]
    middle_types: tuple[int, ...]
    suffix_types: tuple[int, ...]
    first_type: int
    second_type: int

    @property
    def num_special_tokens(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def join(self, query_ids: Sequence[int], document_ids: Sequence[int]) -> PairEncoding:
        ids = [*self.prefix, *query_ids, *self.middle, *document_ids, *self.suffix]
        types = [
            *self.prefix_types,
            *[self.first_type] * len(query_ids),
            *self.middle_types,
            *[self.second_type] * len(document_ids),
            *self.suffix_types,
        ]
        return PairEncoding(ids, types)


def read_pair_template(tokenizer: Tokenizer) -> PairTemplate:
    """Post-process two probe texts and see where the tokenizer puts its special tokens."""
    first, second = tokenizer.encode_batch(["query", "document"], add_special_tokens=False)
    pair = tokenizer.post_process(first, second, add_special_tokens=True)
    ids, types = pair.ids, pair.type_ids
    a, b = first.ids, second.ids
    start_a = next(i for i in range(len(ids)) if ids[i : i + len(a)] == a)
    end_a = start_a + len(a)
    start_b = next(i for i in range(end_a, len(ids)) if ids[i : i + len(b)] == b)
    end_b = start_b + len(b)
    return PairTemplate(
        prefix=tuple(ids[:start_a]),
        middle=tuple(ids[end_a:start_b]),
        suffix=tuple(ids[end_b:]),
        prefix_types=tuple(types[:start_a]),
        middle_types=tuple(types[end_a:start_b]),
        suffix_types=tuple(types[end_b:]),
        first_type=types[start_a],
        second_type=types[start_b],
    )


class PairTokenizer:
    def __init__(self, tokenizer: Tokenizer, pad_token_id: int = 0):
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.pad_token_id = pad_token_id
        self.template = read_pair_template(tokenizer)

    @classmethod
    def from_file(cls, path: Path, pad_token_id: int = 0) -> PairTokenizer:
        if not path.is_file():
            raise CheckpointError(
                f"no tokenizer at {path}: the checkpoint directory needs tokenizer.json "
                "(save it with tokenizer.save_pretrained or copy it from the model repo)"
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise CheckpointError(f"cannot read {path} ({exc}): re-download tokenizer.json") from exc
        return cls(tokenizer, pad_token_id)

    def encode_texts(self, texts: Sequence[str], max_tokens: int | None = None) -> list[list[int]]:
        """Token ids of each text without special tokens (encoded in parallel by the Rust tokenizer).

        With ``max_tokens``, a long text is encoded from a prefix only, grown until the prefix's complete
        words give at least ``max_tokens`` ids; those ids equal the whole text's first ids (its last word
        may be cut, so it is dropped). The cost then follows the tokens a pair can use, not the text's
        length: a 5 MB document is 1.75 M tokens.
        """
        texts = list(texts)
        if max_tokens is None:
            return [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]
        ids: list[list[int]] = [[] for _ in texts]
        pending = list(range(len(texts)))
        chars = max_tokens * CHARS_PER_TOKEN_GUESS
        while pending:
            prefixes = [texts[i][:chars] for i in pending]
            encodings = self.tokenizer.encode_batch(prefixes, add_special_tokens=False)
            short = []
            for i, prefix, encoding in zip(pending, prefixes, encodings, strict=True):
                complete = len(prefix) == len(texts[i])
                words = encoding.ids if complete else _complete_words(encoding)
                if complete or len(words) >= max_tokens:
                    ids[i] = words
                else:
                    short.append(i)  # spaces or one long word: too few tokens yet, try a longer prefix
            pending, chars = short, chars * 4
        return ids

    def text_budget(self, max_length: int) -> int:
        """Tokens left for query plus document once the pair's special tokens are placed."""
        budget = max_length - self.template.num_special_tokens
        if budget < 2:
            raise InputError(
                f"max_length={max_length} leaves no room for text after "
                f"{self.template.num_special_tokens} special tokens"
            )
        return budget

    def join(
        self,
        query_ids: Sequence[int],
        document_ids: Sequence[int],
        max_length: int,
        max_query_length: int,
        truncation: str = "only_second",
    ) -> PairEncoding:
        """Truncate one pair to ``max_length`` tokens, specials included, and join it.

        ``only_second`` (default) caps the query at ``max_query_length`` and cuts the document to fit;
        ``longest_first`` removes tokens from the longer side, exactly as Hugging Face tokenizers do.
        """
        budget = self.text_budget(max_length)
        q_len, d_len = len(query_ids), len(document_ids)
        if truncation == "only_second":
            q_keep = min(q_len, max_query_length, budget - 1)
            d_keep = min(d_len, budget - q_keep)
        elif truncation == "longest_first":
            q_keep, d_keep = longest_first_lengths(q_len, d_len, budget)
        else:
            raise InputError(f"truncation must be one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
        pair = self.template.join(query_ids[:q_keep], document_ids[:d_keep])
        if (q_keep, d_keep) != (q_len, d_len):
            pair = PairEncoding(pair.input_ids, pair.type_ids, truncated=True)
        return pair

    def encode_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        max_length: int,
        max_query_length: int,
        truncation: str = "only_second",
    ) -> list[PairEncoding]:
        """Encode (query, document) pairs; each distinct text is tokenized once."""
        texts = list(dict.fromkeys(text for pair in pairs for text in pair))
        budget = self.text_budget(max_length)
        # One id past the budget is enough to know a text was truncated.
        encoded = dict(zip(texts, self.encode_texts(texts, budget + 1), strict=True))
        if truncation == "longest_first" and budget % 2:
            # When both sides pass half an odd budget, the odd token goes to the side that is longer in
            # whole, which a prefix cannot tell: those texts are tokenized in full.
            both_long = [pair for pair in pairs if min(len(encoded[text]) for text in pair) > budget // 2]
            cut = list({text: None for pair in both_long for text in pair if len(encoded[text]) > budget})
            encoded.update(zip(cut, self.encode_texts(cut), strict=True))
        return [self.join(encoded[q], encoded[d], max_length, max_query_length, truncation) for q, d in pairs]


def _complete_words(encoding: Encoding) -> list[int]:
    """The ids of every word but the last (which a prefix may have cut in two)."""
    words = encoding.word_ids
    if not words:
        return []
    last = words[-1]
    end = next(i for i, word in enumerate(words) if word == last)
    return encoding.ids[:end]


def longest_first_lengths(first: int, second: int, budget: int) -> tuple[int, int]:
    """Lengths kept by the ``longest_first`` strategy: trim the longer side; if both exceed half the
    budget each gets half, the odd token going to the longer one (tokenizers' Rust implementation)."""
    if first + second <= budget:
        return first, second
    shorter, longer = min(first, second), max(first, second)
    if shorter > budget // 2:
        shorter, longer = budget // 2, budget // 2 + budget % 2
    else:
        longer = budget - shorter
    return (longer, shorter) if first > second else (shorter, longer)
