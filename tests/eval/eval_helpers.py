"""Shared paths for the eval tests. Real data lives outside the repo (research use only) and may be absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
SMALL_MODEL = REPO / "tests" / "fixtures" / "small"


def shared_dataset(name: str) -> Path:
    """The folder of a shared dataset, or skip the test when /work/shared is not mounted."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {name} not available at {path}")
    return path


def write_beir(root: Path, corpus: dict, queries: dict, qrels: dict, split: str = "test") -> Path:
    """Write a tiny BEIR folder: corpus {id: (title, text)}, queries {id: text}, qrels {qid: {doc: grade}}."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as out:
        for doc_id, (title, text) in corpus.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for qid, text in queries.items():
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{qid}\t{doc}\t{grade}" for qid, docs in qrels.items() for doc, grade in docs.items()]
    (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root
