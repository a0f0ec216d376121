"""What this CPU can do fast: the instruction sets that decide int8 and bf16 kernels.

Read once from ``/proc/cpuinfo`` (Linux); elsewhere torch's own probe (``AVX2`` / ``AVX512``) gives the
vector width and the int8/bf16 extensions count as absent, which only ever picks the safe choice.
"""

from __future__ import annotations

import functools
import logging
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CPUINFO = Path("/proc/cpuinfo")
# int8 dot products that accumulate into 32 bits (no 16-bit intermediate that can saturate).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
AMX_FLAGS = frozenset({"amx_int8", "amx_tile"})
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclass(frozen=True)
class CpuFeatures:
    """CPU model name and the ISA flags turborank's kernel choices depend on."""

    model: str
    flags: frozenset[str]

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def vnni(self) -> bool:
        return bool(self.flags & VNNI_FLAGS)

    @property
    def amx(self) -> bool:
        return bool(self.flags & AMX_FLAGS)

    @property
    def native_bf16(self) -> bool:
        """bf16 matmuls in hardware (AVX512-BF16 or AMX); elsewhere torch emulates them, slower than fp32."""
        return bool(self.flags & BF16_FLAGS)

    @property
    def isa(self) -> str:
        """The relevant extensions present, e.g. ``"AVX2 AVX-512 VNNI AVX512-BF16"``."""
        names = {
            "AVX2": self.avx2,
            "AVX-512": self.avx512,
            "VNNI": self.vnni,
            "AVX512-BF16": "avx512_bf16" in self.flags,
            "AMX": self.amx,
        }
        return " ".join(name for name, present in names.items() if present) or "no AVX2"

    def describe(self) -> str:
        return f"{self.model} ({self.isa})"


def parse_cpuinfo(text: str) -> CpuFeatures:
    """Model name and flags of the first processor listed in a ``/proc/cpuinfo`` text."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuFeatures(model or platform.processor() or platform.machine(), flags)


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU (cached: it does not change while the process runs)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text())
    except OSError:
        capability = torch.backends.cpu.get_cpu_capability()  # "AVX2", "AVX512", "DEFAULT", ...
        flags = {"avx2"} if capability.startswith("AVX") else set()
        if capability.startswith("AVX512"):
            flags.add("avx512f")
        return CpuFeatures(platform.processor() or platform.machine(), frozenset(flags))


def cpu_dtype(requested: torch.dtype | None, features: CpuFeatures) -> torch.dtype:
    """The CPU compute dtype for a request: None means "auto" (the fastest that keeps scores accurate).

    Without native bf16 (no AVX512-BF16, no AMX) torch emulates bf16 matmuls: 6x slower than float32
    on an AVX2 EPYC (issue 14). "auto" then takes float32; an explicit bfloat16 is kept, with a warning.
    """
    if requested is None:
        if features.native_bf16:
            return torch.bfloat16
        log.info(
            "dtype='auto' on %s: float32, because this CPU has no native bf16 (AVX512-BF16 or AMX)",
            features.describe(),
        )
        return torch.float32
    if requested == torch.bfloat16 and not features.native_bf16:
        log.warning(
            "dtype=bfloat16 on %s: this CPU has no native bf16 (AVX512-BF16 or AMX), so torch emulates it "
            "and runs several times slower than float32 (6x on an AVX2 EPYC); use dtype='float32' "
            "(or 'auto', which picks the fast dtype for this CPU)",
            features.describe(),
        )
    return requested
