"""CPU feature detection and the dtype decision it drives (any capability can be forced in a test)."""

import logging

import pytest
import torch
from conftest import run_with_avx2_kernels

from turborank import api, cpu
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
    "Intel Xeon", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
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


def test_a_onednn_cap_removes_what_its_kernels_may_not_use():
    avx2 = ZEN4.capped_at("AVX2")
    assert avx2.isa == "AVX2" and not (avx2.vnni or avx2.native_bf16)
    assert avx2.describe() == "AMD EPYC 9B14 (AVX2, kernels capped by ONEDNN_MAX_CPU_ISA=AVX2)"
    vnni = SAPPHIRE_RAPIDS.capped_at("avx512_core_vnni")  # oneDNN takes either case
    assert vnni.vnni and not (vnni.native_bf16 or vnni.amx)
    bf16 = SAPPHIRE_RAPIDS.capped_at("AVX512_CORE_BF16")
    assert bf16.native_bf16 and not bf16.amx
    assert ZEN4.capped_at("AVX512_CORE_AMX") == ZEN4  # above what the CPU has: nothing to remove
    assert cpu_dtype(None, avx2) == torch.float32


def test_an_unknown_cap_is_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="turborank.cpu"):
        assert ZEN4.capped_at("AVX3") == ZEN4
    assert "not a oneDNN ISA level" in caplog.text


def test_the_cap_is_read_from_the_environment(monkeypatch):
    monkeypatch.setattr(cpu, "hardware_features", lambda: ZEN4)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    cpu_features.cache_clear()
    try:
        assert cpu_features() == ZEN4.capped_at("AVX2")
    finally:
        cpu_features.cache_clear()


AVX2_CHILD = """
import json, sys, torch
from turborank import Reranker
reranker = Reranker.from_pretrained(sys.argv[1], device="cpu", dtype="auto")
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "dtype": str(reranker.dtype),
                  "cpu": reranker.info()["cpu"]}))
"""


def test_avx2_kernels_forced_on_this_machine_pick_float32(small_dir):
    """A process told to use AVX2 kernels only (what an AVX2-only server runs) never takes bf16, which
    oneDNN would then emulate at several times float32's cost."""
    child = run_with_avx2_kernels(AVX2_CHILD, str(small_dir))
    assert child["dtype"] == "torch.float32"
    assert child["capability"] in ("AVX2", "DEFAULT")  # DEFAULT: a CPU without AVX2 at all
    assert "AVX-512" not in child["cpu"] and "AVX512-BF16" not in child["cpu"]
