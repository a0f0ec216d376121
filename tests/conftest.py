from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared"
GOLDEN_NAMES = ("small", "mini12")


def load_expected(name: str) -> dict:
    return json.loads((FIXTURES / name / "expected.json").read_text())


@pytest.fixture(scope="session")
def small_dir() -> Path:
    return FIXTURES / "small"


@pytest.fixture(scope="session")
def small_reranker(small_dir):
    from turborank import Reranker

    return Reranker.from_pretrained(small_dir, device="cpu")
