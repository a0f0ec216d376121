"""Training groups for distillation: one query with a positive (when known) and hard negatives.

Sources:
  * BEIR-layout datasets with qrels (``groups_from_beir``): negatives are the top-ranked
    non-relevant documents of a TREC run, or of BM25 when no run is given;
  * WikiQA-style candidate lists (``groups_from_candidates``);
  * unlabeled corpora with LLM-free pseudo-queries (``groups_from_pseudo_queries``): the Inverse
    Cloze Task (Lee et al. 2019, https://arxiv.org/abs/1906.00300) takes a sentence out of its
    passage as the query and keeps the rest as the positive; title-as-query takes a document's title
    as the query and its body as the positive;
  * queries without judgments against a corpus (``groups_from_queries``), labelled only by a teacher;
  * keyword pseudo-queries (``groups_from_keyword_queries``): a few informative words of a passage's
    opening, phrased like a web search, against BM25 candidates left untouched, labelled only by a
    teacher (no edited positive the student could recognise by its form);
  * long documents cut into passages of whole lines (``line_passages``), e.g. meeting transcripts for
    their questions and summaries.

Copies of groups that teach robustness keep every score and label: documents inside unrelated text
(``embed_in_noise``) and documents whose words run together as PDF extraction leaves them
(``with_glued_words``).

Groups are stored as JSONL, one group per line:
``{"qid", "query", "source", "docs": [{"id", "text", "label", "teacher"}]}``.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..eval.bm25 import BM25Index
from ..eval.data import DatasetError, Document, Run, load_beir, read_trec_run

PSEUDO_QUERY_METHODS = ("ict", "title")
# A sentence boundary: end punctuation followed by white space (good enough for web and abstract text).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]+")
# Openings of web-search queries (MS MARCO style); mostly none, since most searches are bare keywords.
QUERY_OPENINGS = ("", "", "", "", "what is ", "what are ", "how ", "why ", "define ", "who ")
# ICT queries shorter than this carry too little to retrieve with; longer ones read like passages.
ICT_MIN_WORDS, ICT_MAX_WORDS = 4, 40


@dataclass
class Group:
    """One training query and its documents; when a positive is known it is doc 0.

    ``labels`` holds graded relevance (0 = judged or assumed non-relevant, None = unknown);
    ``teacher`` the teacher's scores, one per document, once scored.
    """

    qid: str
    query: str
    doc_ids: list[str]
    doc_texts: list[str]
    labels: list[int | None]
    teacher: list[float] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        sizes = {len(self.doc_ids), len(self.doc_texts), len(self.labels)}
        if self.teacher is not None:
            sizes.add(len(self.teacher))
        if len(sizes) != 1:
            raise ValueError(
                f"group {self.qid!r}: doc_ids, doc_texts, labels (and teacher) must have one entry per "
                f"document, got lengths {len(self.doc_ids)}, {len(self.doc_texts)}, {len(self.labels)}"
                + (f", {len(self.teacher)}" if self.teacher is not None else "")
            )


def write_groups(groups: Iterable[Group], path: str | Path) -> int:
    """Write groups as JSONL (one group per line); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for group in groups:
            teacher = group.teacher or [None] * len(group.doc_ids)
            docs = [
                {"id": i, "text": t, "label": lab, "teacher": s}
                for i, t, lab, s in zip(group.doc_ids, group.doc_texts, group.labels, teacher, strict=True)
            ]
            row = {"qid": group.qid, "query": group.query, "source": group.source, "docs": docs}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def read_groups(path: str | Path) -> list[Group]:
    """Read groups written by ``write_groups``.

    Raises:
        DatasetError: a missing file or a malformed line (with file and line number).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no groups file; build one with turborank.distill.data.write_groups")
    groups = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                groups.append(_parse_group(line, path, number))
    return groups


def _parse_group(line: str, path: Path, number: int) -> Group:
    try:
        row = json.loads(line)
        docs = row["docs"]
        scores = [d.get("teacher") for d in docs]
        teacher = None if any(s is None for s in scores) else [float(s) for s in scores]
        return Group(
            qid=str(row["qid"]),
            query=row["query"],
            doc_ids=[str(d["id"]) for d in docs],
            doc_texts=[d["text"] for d in docs],
            labels=[d.get("label") for d in docs],
            teacher=teacher,
            source=row.get("source", ""),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(
            f'{path}:{number}: not a group line ({type(exc).__name__}: {exc}); expected {{"qid", "query", '
            '"source", "docs": [{"id", "text", "label", "teacher"}]}'
        ) from None


def ranked_ids(run: Run, qid: str) -> list[str]:
    """A query's documents in the run, best first; ties by ascending id, so groups are reproducible."""
    return [d for d, _ in sorted(run.get(qid, {}).items(), key=lambda item: (-item[1], item[0]))]


def groups_from_run(
    queries: Mapping[str, str],
    corpus: Mapping[str, Document],
    qrels: Mapping[str, Mapping[str, int]],
    run: Run,
    k_negatives: int = 7,
    seed: int = 0,
    source: str = "",
) -> list[Group]:
    """One group per query that has a judged positive: the positive, then the run's top non-relevant.

    The positive is a random one of the highest-graded relevant documents; negatives are the
    ``k_negatives`` best-ranked documents that are not judged relevant (unjudged ones count as
    non-relevant, the usual assumption for sparse judgments such as SciFact's or MS MARCO's).
    """
    rng = random.Random(seed)
    groups = []
    for qid in sorted(queries):
        judged = qrels.get(qid, {})
        relevant = [d for d, grade in judged.items() if grade > 0 and d in corpus]
        if not relevant:
            continue
        best = max(judged[d] for d in relevant)
        positive = rng.choice(sorted(d for d in relevant if judged[d] == best))
        negatives = [d for d in ranked_ids(run, qid) if judged.get(d, 0) <= 0 and d in corpus][:k_negatives]
        doc_ids = [positive, *negatives]
        groups.append(
            Group(
                qid=qid,
                query=queries[qid],
                doc_ids=doc_ids,
                doc_texts=[corpus[d].full_text for d in doc_ids],
                labels=[best] + [0] * len(negatives),
                source=source,
            )
        )
    return groups


def groups_from_beir(
    dataset_dir: str | Path,
    split: str,
    run: str | Path | None = None,
    k_negatives: int = 7,
    seed: int = 0,
) -> list[Group]:
    """Groups from a BEIR-layout dataset's training split.

    Args:
        dataset_dir: folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv.
        split: the qrels split to train on (``train``); never an evaluation split.
        run: a TREC run to take hard negatives from; None retrieves the BM25 top 100.
        k_negatives: negatives per group.
        seed: picks among equally graded positives.

    Returns:
        One group per judged query, the positive first.

    Example:
        >>> groups = groups_from_beir("../shared/data/beir-scifact", "train", k_negatives=7)
        >>> len(groups[0].doc_ids)
        8
    """
    data = load_beir(dataset_dir, split)
    if run is not None:
        ranking = read_trec_run(run, corpus=data.corpus)
    else:
        ranking = BM25Index.build(data.corpus).search(data.queries, k=100)
    return groups_from_run(
        data.queries, data.corpus, data.qrels, ranking, k_negatives, seed, f"{data.name}:{split}"
    )


def groups_from_candidates(
    path: str | Path, k_negatives: int = 7, seed: int = 0, source: str | None = None
) -> list[Group]:
    """Groups from candidate-list JSONL (WikiQA layout: {qid, query, candidates[], labels[]}).

    Questions without a positive are skipped; negatives are a seeded sample of the labelled-0
    candidates (the lists are short and unordered, so there is no rank to take them by).
    """
    path = Path(path)
    rng = random.Random(seed)
    groups = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            texts, labels = row.get("candidates"), row.get("labels")
            if not isinstance(texts, list) or not isinstance(labels, list) or len(texts) != len(labels):
                raise DatasetError(f"{path}:{number}: needs equal-length 'candidates' and 'labels' lists")
            positives = [i for i, lab in enumerate(labels) if lab > 0]
            negatives = [i for i, lab in enumerate(labels) if lab <= 0]
            if not positives or not negatives:
                continue
            chosen = [rng.choice(positives), *rng.sample(negatives, min(k_negatives, len(negatives)))]
            qid = str(row["qid"])
            groups.append(
                Group(
                    qid=qid,
                    query=row["query"],
                    doc_ids=[f"{qid}-{i}" for i in chosen],
                    doc_texts=[texts[i] for i in chosen],
                    labels=[1] + [0] * (len(chosen) - 1),
                    source=source or path.parent.name,
                )
            )
    return groups


def groups_from_queries(
    queries: Mapping[str, str],
    corpus: Mapping[str, Document],
    k: int = 8,
    index: BM25Index | None = None,
    source: str = "",
) -> list[Group]:
    """Unjudged queries against a corpus: each group is the query's BM25 top k, all labels unknown.

    Only a teacher can label these groups; they bring real query wording to a corpus that has no
    queries of its own (e.g. WikiQA's Bing questions against web passages).
    """
    index = index or BM25Index.build(corpus)
    run = index.search(queries, k=k)
    groups = []
    for qid in sorted(queries):
        ranked = ranked_ids(run, qid)
        if len(ranked) < 2:
            continue
        groups.append(
            Group(
                qid,
                queries[qid],
                ranked,
                [corpus[d].full_text for d in ranked],
                [None] * len(ranked),
                source=source,
            )
        )
    return groups


def line_passages(corpus: Mapping[str, Document], words: int) -> dict[str, Document]:
    """Each document cut into passages of whole lines of about ``words`` words (``<id>#p<n>``).

    Lines are a transcript's utterances, so a passage never starts or ends mid-utterance; a line
    longer than ``words`` becomes a passage of its own.
    """
    return unit_passages(corpus, words, str.splitlines, "\n", "p")


def sentence_passages(corpus: Mapping[str, Document], words: int) -> dict[str, Document]:
    """Each document cut into passages of whole sentences of about ``words`` words (``<id>#s<n>``):
    abstracts become passage-sized texts that still fit a pair when unrelated text is added around them."""
    return unit_passages(corpus, words, split_sentences, " ", "s")


def unit_passages(
    corpus: Mapping[str, Document], words: int, split: Callable[[str], list[str]], joiner: str, mark: str
) -> dict[str, Document]:
    """Each document's ``split`` units gathered, in order, into passages of at least ``words`` words
    (the last one shorter), named ``<id>#<mark><n>``."""
    passages = {}
    for doc_id, doc in corpus.items():
        units, count, number = [], 0, 0
        for unit in split(doc.full_text):
            units.append(unit)
            count += len(unit.split())
            if count >= words:
                passages[f"{doc_id}#{mark}{number}"] = Document("", joiner.join(units))
                units, count, number = [], 0, number + 1
        if units:
            passages[f"{doc_id}#{mark}{number}"] = Document("", joiner.join(units))
    return passages


def split_sentences(text: str) -> list[str]:
    """Sentences of a passage (punctuation-based; abbreviations may split a sentence, which ICT tolerates)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def ict_example(text: str, rng: random.Random, keep_probability: float = 0.1) -> tuple[str, str] | None:
    """Inverse Cloze Task: (a sentence as the query, the passage without it as the positive).

    As in Lee et al. (2019) the sentence stays in the passage with a small probability, so the model
    also learns that word overlap matters. None when no sentence of usable length exists.
    """
    sentences = split_sentences(text)
    usable = [i for i, s in enumerate(sentences) if ICT_MIN_WORDS <= len(s.split()) <= ICT_MAX_WORDS]
    if len(sentences) < 2 or not usable:
        return None
    i = rng.choice(usable)
    rest = sentences if rng.random() < keep_probability else sentences[:i] + sentences[i + 1 :]
    return sentences[i], " ".join(rest)


def groups_from_pseudo_queries(
    corpus: Mapping[str, Document],
    n: int,
    k_negatives: int = 7,
    seed: int = 0,
    method: str = "ict",
    index: BM25Index | None = None,
    source: str = "",
) -> list[Group]:
    """Pseudo-query groups from an unlabeled corpus, without an LLM.

    Args:
        corpus: doc id -> Document (title and text).
        n: groups to make (fewer when the corpus has fewer usable documents).
        k_negatives: BM25 hard negatives per group (other documents retrieved by the pseudo-query).
        seed: seeds the document sample and the sentence choice.
        method: ``ict`` (a sentence out of its passage) or ``title`` (title -> body).
        index: a BM25 index of ``corpus`` to reuse; built when None.
        source: tag stored in each group.

    Returns:
        Groups whose doc 0 is the pseudo-positive (label 1); negatives have unknown labels (None),
        because a near-duplicate passage may answer the pseudo-query too: the teacher decides.

    Raises:
        ValueError: an unknown method.
    """
    if method not in PSEUDO_QUERY_METHODS:
        raise ValueError(f"method must be one of {PSEUDO_QUERY_METHODS}, got {method!r}")
    rng = random.Random(seed)
    examples: dict[str, tuple[str, str]] = {}
    for doc_id in rng.sample(sorted(corpus), len(corpus)):
        if len(examples) == n:
            break
        doc = corpus[doc_id]
        if method == "title":
            if len(doc.title.split()) >= ICT_MIN_WORDS and doc.text.strip():
                examples[doc_id] = (doc.title, doc.text)
        else:
            example = ict_example(doc.text, rng)
            if example is not None:
                examples[doc_id] = example
    index = index or BM25Index.build(corpus)
    queries = {f"{method}-{doc_id}": query for doc_id, (query, _) in examples.items()}
    # Retrieve extra: the source passage and its near-duplicates are dropped from the negatives.
    run = index.search(queries, k=k_negatives * 2 + 2)
    groups = []
    for doc_id, (query, positive) in examples.items():
        qid = f"{method}-{doc_id}"
        negatives = [
            d
            for d in ranked_ids(run, qid)
            if d != doc_id and not _overlaps(corpus[d].full_text, query, positive)
        ][:k_negatives]
        if not negatives:
            continue
        groups.append(
            Group(
                qid=qid,
                query=query,
                doc_ids=[doc_id, *negatives],
                doc_texts=[positive, *(corpus[d].full_text for d in negatives)],
                labels=[1] + [None] * len(negatives),
                source=source or f"{method}",
            )
        )
    return groups


def _overlaps(text: str, query: str, positive: str) -> bool:
    """True for a near-duplicate of the source passage (it contains the query sentence or its opening)."""
    return query in text or positive[:80] in text


def sample_groups(groups: Sequence[Group], n: int, seed: int = 0) -> list[Group]:
    """A seeded sample of at most n groups (all of them, shuffled, when there are fewer)."""
    return random.Random(seed).sample(list(groups), min(n, len(groups)))


def keyword_query(
    text: str, document_frequency: Mapping[str, int], num_documents: int, rng: random.Random
) -> str | None:
    """A web-search-like pseudo-query: 2-5 informative words of the passage's opening, in text order.

    Words in more than 2% of the documents (and in more than 3) are left out and the rest drawn
    without replacement with probability proportional to IDF cubed, so a query names what the passage
    is about rather than its filler words. None when the opening has fewer than two such words.
    """
    opening = " ".join(split_sentences(text)[:2])
    common = max(3.0, 0.02 * num_documents)  # small corpora: a few documents sharing a word is still rare
    content = [w for w in dict.fromkeys(content_words(opening)) if document_frequency.get(w, 0) <= common]
    if len(content) < 2:
        return None
    weights = [math.log((1 + num_documents) / (1 + document_frequency.get(w, 0))) ** 3 for w in content]
    chosen: set[int] = set()
    for _ in range(rng.randint(2, min(5, len(content)))):
        left = [i for i in range(len(content)) if i not in chosen]
        chosen.add(rng.choices(left, [weights[i] for i in left])[0])
    return rng.choice(QUERY_OPENINGS) + " ".join(content[i] for i in sorted(chosen))


def groups_from_keyword_queries(
    corpus: Mapping[str, Document],
    n: int,
    group_size: int = 8,
    seed: int = 0,
    index: BM25Index | None = None,
    source: str = "keywords",
    top: int = 4,
    depth: int = 30,
) -> list[Group]:
    """Keyword pseudo-query groups over an unlabeled corpus, for a teacher to label.

    Each group is the query's BM25 top ``top`` plus a seeded sample of ranks ``top+1..depth`` (easy
    and hard documents both, so the student sees the teacher's whole scale), with the source passage
    always present. Documents keep their own text and every label is unknown (None).

    Args:
        corpus: doc id -> Document.
        n: groups to make (fewer when the corpus has fewer usable passages).
        group_size: documents per group.
        seed: seeds the passage sample, the query words and the candidate sample.
        index: a BM25 index of ``corpus`` to reuse; built when None.
        source: tag stored in each group.
        top: leading BM25 ranks always kept.
        depth: BM25 ranks the rest of the group is sampled from.
    """
    rng = random.Random(seed)
    document_frequency: dict[str, int] = {}
    for doc in corpus.values():
        for word in {w.lower() for w in _WORD.findall(doc.full_text)}:
            document_frequency[word] = document_frequency.get(word, 0) + 1
    queries: dict[str, str] = {}
    sources: dict[str, str] = {}
    for doc_id in rng.sample(sorted(corpus), len(corpus)):
        if len(queries) == n:
            break
        query = keyword_query(corpus[doc_id].full_text, document_frequency, len(corpus), rng)
        if query is not None:
            qid = f"kw-{doc_id}"
            queries[qid], sources[qid] = query, doc_id
    index = index or BM25Index.build(corpus)
    run = index.search(queries, k=depth)
    groups = []
    for qid in sorted(queries):
        ranked = ranked_ids(run, qid)
        if sources[qid] not in ranked:
            ranked.insert(0, sources[qid])
        if len(ranked) < group_size:
            continue
        rest = ranked[top:]
        doc_ids = ranked[:top] + rng.sample(rest, group_size - top)
        groups.append(
            Group(
                qid,
                queries[qid],
                doc_ids,
                [corpus[d].full_text for d in doc_ids],
                [None] * group_size,
                source=source,
            )
        )
    return groups


NOISE_PLACES = ("before", "after", "around")


def embed_in_noise(
    group: Group, noise: Sequence[str], rng: random.Random, max_words: int, twin: bool = False
) -> Group:
    """A copy of ``group`` in which about half the documents sit inside unrelated text, scores unchanged.

    Each document, with probability 1/2 and whatever its relevance, gets whole sentences of randomly
    drawn ``noise`` passages before it, after it or on both sides, up to ``max_words`` words in all. The
    copy keeps every teacher score and label: an answer does not stop being one because other text
    surrounds it. Mixing diluted and clean documents in one group matters: a listwise loss ignores a
    shift shared by all of a group's scores, so a group diluted throughout cannot teach that a diluted
    answer keeps its score, only that it keeps its rank.

    With ``twin``, the last document is replaced by the teacher's top document in the other state
    (diluted if it stayed clean, clean if it was diluted), with the same score and label: the most
    direct lesson that surrounding text changes nothing. Needs teacher scores and two documents.
    """
    texts = [_maybe_diluted(text, noise, rng, max_words) for text in group.doc_texts]
    doc_ids = _marked_ids(group, texts, "noise")
    labels = list(group.labels)
    teacher = None if group.teacher is None else list(group.teacher)
    if twin:
        if teacher is None or len(texts) < 2:
            raise ValueError(f"group {group.qid}: a twin needs teacher scores and at least two documents")
        top = max(range(len(texts) - 1), key=teacher.__getitem__)
        original = group.doc_texts[top]
        other = surrounded_by_noise(original, noise, rng, max_words) if texts[top] == original else original
        doc_ids[-1] = f"{group.doc_ids[top]}#twin"
        texts[-1], labels[-1], teacher[-1] = other, labels[top], teacher[top]
    return Group(f"{group.qid}#noise", group.query, doc_ids, texts, labels, teacher, f"{group.source}+noise")


def _marked_ids(group: Group, texts: Sequence[str], mark: str) -> list[str]:
    """The group's doc ids, ``<id>#<mark>`` where a copy's text differs from the original."""
    return [
        d if new == old else f"{d}#{mark}"
        for d, new, old in zip(group.doc_ids, texts, group.doc_texts, strict=True)
    ]


def _maybe_diluted(text: str, noise: Sequence[str], rng: random.Random, max_words: int) -> str:
    return surrounded_by_noise(text, noise, rng, max_words) if rng.random() < 0.5 else text


def surrounded_by_noise(
    text: str, noise: Sequence[str], rng: random.Random, max_words: int, unrelated_to: str = ""
) -> str:
    """``text`` with 1 to about ``max_words - len(text)`` words of noise before, after or around it.

    With ``unrelated_to`` (a query), noise sentences that share a content word with it are skipped: noise
    must not answer the query, or a target that says "the passage's own score" would teach the model to
    ignore an answer. Without it the noise is drawn as before, sentence for sentence.
    """
    budget = rng.randint(1, max(1, max_words - len(text.split())))
    place = rng.choice(NOISE_PLACES)
    before = rng.randint(0, budget) if place == "around" else budget if place == "before" else 0
    avoid = content_stems(unrelated_to)
    parts = [_noise_text(noise, before, rng, avoid), text, _noise_text(noise, budget - before, rng, avoid)]
    return " ".join(p for p in parts if p)


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS  # a tuple: a set makes each lookup one probe

    return frozenset(STOPWORDS_EN_PLUS)


def content_words(text: str) -> list[str]:
    """The lower-cased words of three or more letters outside the English stopword list, in order."""
    stopwords = _stopwords()
    return [w for w in (w.lower() for w in _WORD.findall(text)) if len(w) > 2 and w not in stopwords]


# Cached: the noise draws test the same sentences against each query again and again.
@functools.lru_cache(maxsize=1 << 16)
def content_stems(text: str) -> frozenset[str]:
    """The first five letters of each content word: a crude stem, so "completed" and "completion"
    meet and unrelated text stays so."""
    return frozenset(w[:5] for w in content_words(text))


# Random passages drawn for one stretch of noise before giving up on finding enough sentences unrelated
# to the query (a long query shares a word with most text): the stretch is then shorter, never related.
MAX_NOISE_DRAWS = 200


def _noise_text(
    noise: Sequence[str], words: int, rng: random.Random, avoid: frozenset[str] = frozenset()
) -> str:
    """Whole sentences of random passages, about ``words`` words (never cut mid-sentence), none sharing
    a stem with ``avoid``."""
    sentences: list[str] = []
    count, draws = 0, 0
    while count < words and draws < MAX_NOISE_DRAWS:
        draws += bool(avoid)  # unfiltered noise always fills its budget: no cap, the draws as before
        for sentence in split_sentences(rng.choice(noise)):
            if count >= words:
                break
            if avoid and avoid & content_stems(sentence):
                continue
            sentences.append(sentence)
            count += len(sentence.split())
    return " ".join(sentences)


def with_glued_words(group: Group, rng: random.Random) -> Group:
    """A copy of ``group`` in which about half the documents have runs of words without the spaces
    between them ("Foreachdatasetand..."), as text extracted from PDFs often has; scores and labels
    unchanged, since the words still say the same thing.
    """
    texts = [glue_words(text, rng) if rng.random() < 0.5 else text for text in group.doc_texts]
    return Group(
        f"{group.qid}#glued",
        group.query,
        _marked_ids(group, texts, "glued"),
        texts,
        list(group.labels),
        None if group.teacher is None else list(group.teacher),
        f"{group.source}+glued",
    )


def glue_words(text: str, rng: random.Random, runs: int = 3, longest: int = 30) -> str:
    """``text`` with 1 to ``runs`` runs of 4 to ``longest`` words joined without spaces."""
    words = text.split()
    if len(words) < 4:
        return text
    for _ in range(rng.randint(1, runs)):
        size = rng.randint(4, min(longest, len(words)))
        start = rng.randint(0, len(words) - size)
        words[start : start + size] = ["".join(words[start : start + size])]
        if len(words) < 4:
            break
    return " ".join(words)


# Graded labels of a teacher's first, second and third documents in a teacher-labelled dev group.
TEACHER_GRADES = (3, 2, 1)
TEACHER_LABELLED = "teacher-labels:"  # source prefix of such groups


def teacher_labelled(group: Group) -> Group:
    """A copy of a teacher-scored group whose labels are the teacher's order (its top three documents
    graded 3, 2 and 1, the rest 0), so NDCG@10 against them measures how much of the teacher's ranking a
    student keeps on groups it never trained on, where no human judged anything.
    """
    if group.teacher is None:
        raise ValueError(f"group {group.qid!r} has no teacher scores to take labels from")
    order = sorted(range(len(group.teacher)), key=lambda i: -group.teacher[i])
    labels = [0] * len(order)
    for grade, index in zip(TEACHER_GRADES, order, strict=False):
        labels[index] = grade
    return Group(
        f"{group.qid}#teacher",
        group.query,
        list(group.doc_ids),
        list(group.doc_texts),
        labels,
        list(group.teacher),
        TEACHER_LABELLED + group.source,
    )
