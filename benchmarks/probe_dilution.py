"""Dilution curve and everyday probes of a reranker (quality, not speed).

Each WikiQA test answer sentence is scored alone and inside 50-1,000 tokens of sentences on other
topics, placed before, after or around it (``turborank.eval.probes``). Prints, per noise length and
place, the mean score inside noise over the mean score alone and the share of probes that keep at
least 0.8 of their score; then the hand-written probes of the model card's "known failure modes".

    python benchmarks/probe_dilution.py [--model DIR] [--probes 243] [--long-documents auto|truncate|chunk]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import hardware

from turborank import Reranker
from turborank.eval.probes import PASS_RATIO, dilution_curve, wikiqa_probes

WIKIQA_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiqa-answer-selection"

# (what it tests, query, documents best first): the first document should rank first.
EVERYDAY = [
    (
        "factual confusable",
        "capital of Australia",
        [
            "Canberra is the capital city of Australia, chosen as a compromise between Sydney and Melbourne.",
            "Melbourne is the capital of the Australian state of Victoria and the country's second city.",
        ],
    ),
    (
        "paraphrase without answer",
        "when was the Eiffel Tower completed",
        [
            "The Eiffel Tower in Paris was finished in March 1889, in time for the World's Fair.",
            "Many visitors ask when the Eiffel Tower was completed and how long it took to build the tower.",
        ],
    ),
    (
        "negation",
        "grains that do not contain gluten",
        [
            "Rice, corn, millet, sorghum and quinoa are naturally gluten-free grains.",
            "Wheat, barley and rye contain gluten, a protein that gives dough its elasticity.",
        ],
    ),
    (
        "non-English (German)",
        "Wie hoch ist der Mount Everest?",
        [
            "Der Mount Everest ist mit 8.848 Metern der höchste Berg der Erde.",
            "Der Rhein ist ein Fluss in Mitteleuropa, der in den Alpen entspringt.",
        ],
    ),
    (
        "answer at the end of a long passage",
        "when was the Eiffel Tower completed",
        [
            " ".join(["The city council met on Tuesday to discuss the new budget for road repairs."] * 20)
            + " The Eiffel Tower in Paris was completed in 1889.",
            "The Statue of Liberty was dedicated in New York Harbor in 1886.",
        ],
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    parser.add_argument("--probes", type=int, default=None, help="first N probes (default: all 243)")
    parser.add_argument(
        "--long-documents",
        choices=("auto", "truncate", "chunk"),
        default="auto",
        help="auto (default: what the model declares), truncate or chunk",
    )
    parser.add_argument("--data", type=Path, default=WIKIQA_TEST, help="the wikiqa-answer-selection folder")
    args = parser.parse_args()

    reranker = Reranker.from_pretrained(args.model) if args.model else Reranker.from_pretrained()
    print(f"# {reranker.name} ({args.model or 'shipped'})")
    mode = reranker.long_documents if args.long_documents == "auto" else args.long_documents
    print(f"# {hardware()}; long_documents={args.long_documents} ({mode}), {reranker.max_length} tokens\n")

    def count_tokens(text: str) -> int:
        return len(reranker.tokenizer.encode_texts([text])[0])

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        return reranker.compute_score(pairs, long_documents=args.long_documents, show_progress_bar=False)

    probes = wikiqa_probes(args.data / "test.candidates.jsonl", args.probes)
    print(f"{len(probes)} probes (WikiQA test answers); pass = score inside noise >= {PASS_RATIO} x alone\n")
    print("| noise tokens | place | mean score ratio | share of probes kept |")
    print("|---|---|---|---|")
    for point in dilution_curve(score, probes, count_tokens):
        print(f"| {point.tokens} | {point.place} | {point.mean_ratio:.3f} | {point.share_kept:.3f} |")

    print("\n| probe | query | scores (best document first) | right order |")
    print("|---|---|---|---|")
    for what, query, documents in EVERYDAY:
        scores = score([(query, d) for d in documents])
        ok = scores[0] == max(scores)
        print(f"| {what} | {query} | {' / '.join(f'{s:.3f}' for s in scores)} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
