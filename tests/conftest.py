from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from turborank.model import JinaBertConfig, JinaBertForSequenceClassification

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared"
GOLDEN_NAMES = ("small", "mini12")
# Environment of a child process whose torch kernels (oneDNN, ATen) are those of an AVX2-only CPU.
AVX2_KERNELS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def run_with_avx2_kernels(code: str, *args: str) -> object:
    """Run ``code`` (which prints one JSON value last) in a Python child with AVX2 kernels only; the value.
    Kernel caps are read once per process, so the AVX2 path can only be shown in a fresh one."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **AVX2_KERNELS},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_expected(name: str) -> dict:
    return json.loads((FIXTURES / name / "expected.json").read_text())


@pytest.fixture(scope="session")
def small_dir() -> Path:
    return FIXTURES / "small"


@pytest.fixture(scope="session")
def small_reranker(small_dir):
    from turborank import Reranker

    return Reranker.from_pretrained(small_dir, device="cpu")


def tiny_model(**overrides) -> JinaBertForSequenceClassification:
    """A small seeded model (weights larger than BERT init so differences would show), in eval mode."""
    config = JinaBertConfig(
        vocab_size=50,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=6,
        intermediate_size=32,
        **overrides,
    )
    model = JinaBertForSequenceClassification(config)
    model.init_weights(torch.Generator().manual_seed(0))
    for p in model.parameters():
        p.data.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.3)
    return model.eval()
