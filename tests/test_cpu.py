"""CPU feature detection and the dtype decision it drives (any capability can be forced in a test)."""

import logging

import pytest
import torch

from turborank import api
from turborank.cpu import CpuFeatures, cpu_dtype, cpu_features, parse_cpuinfo

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma bmi2
processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma bmi2
"""
AVX2_ONLY = parse_cpuinfo(CPUINFO)
ZEN4 = CpuFeatures("AMD EPYC 9B14", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
SAPPHIRE_RAPIDS = CpuFeatures(
    "Intel Xeon", frozenset({"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"})
)


def test_cpuinfo_gives_the_model_and_the_flags_that_matter():
    assert AVX2_ONLY.model == "AMD EPYC 7B12"
    assert AVX2_ONLY.avx2 and not (
        AVX2_ONLY.avx512 or AVX2_ONLY.vnni or AVX2_ONLY.amx or AVX2_ONLY.native_bf16
    )
    assert AVX2_ONLY.isa == "AVX2"
    assert ZEN4.isa == "AVX2 AVX-512 VNNI AVX512-BF16" and not ZEN4.amx
    assert SAPPHIRE_RAPIDS.amx and SAPPHIRE_RAPIDS.native_bf16
    assert ZEN4.describe() == "AMD EPYC 9B14 (AVX2 AVX-512 VNNI AVX512-BF16)"


def test_this_machine_is_detected():
    features = cpu_features()
    assert features.model
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        assert features.avx512


def test_auto_takes_float32_without_native_bf16_and_says_why(caplog):
    with caplog.at_level(logging.INFO, logger="turborank.cpu"):
        assert cpu_dtype(None, AVX2_ONLY) == torch.float32
    assert "no native bf16" in caplog.text and "AMD EPYC 7B12" in caplog.text
    assert cpu_dtype(None, ZEN4) == torch.bfloat16
    assert cpu_dtype(None, SAPPHIRE_RAPIDS) == torch.bfloat16


def test_explicit_bf16_without_native_support_is_kept_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="turborank.cpu"):
        assert cpu_dtype(torch.bfloat16, AVX2_ONLY) == torch.bfloat16
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "dtype='float32'" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="turborank.cpu"):
        assert cpu_dtype(torch.bfloat16, ZEN4) == torch.bfloat16
        assert cpu_dtype(torch.float32, AVX2_ONLY) == torch.float32
    assert not caplog.records


@pytest.mark.parametrize(("features", "expected"), [(AVX2_ONLY, torch.float32), (ZEN4, torch.bfloat16)])
def test_from_pretrained_resolves_auto_by_the_cpu(small_dir, monkeypatch, features, expected):
    monkeypatch.setattr(api, "cpu_features", lambda: features)
    reranker = api.Reranker.from_pretrained(small_dir, device="cpu", dtype="auto")
    assert reranker.dtype == expected
    assert reranker.info()["cpu"] == features.describe()
