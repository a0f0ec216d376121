"""What this CPU can do fast: the instruction sets that decide int8 and bf16 kernels.

Read once from ``/proc/cpuinfo`` (Linux); elsewhere torch's own probe (``AVX2`` / ``AVX512``) gives the
vector width and the int8/bf16 extensions count as absent, which only ever picks the safe choice.
``ONEDNN_MAX_CPU_ISA`` (oneDNN's own cap on the kernels torch's matmuls use) lowers what counts as
present, so ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` makes an AVX-512 or AMX machine run, and
choose, as an AVX2-only one would: that is how tests and benchmarks show the AVX2 path here.
"""

from __future__ import annotations

import functools
import logging
import os
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
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # DNNL_: the name before oneDNN 2.0
# oneDNN's ISA levels, lowest first, and the cpuinfo flags each level lets kernels use beyond the one
# before it; a cap removes the flags of every level above it. The AVX10_1_512* names are oneDNN's newer
# names of the FP16 and AMX levels (aliases: no flags of their own).
ONEDNN_ISA_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("SSE41", frozenset()),
    ("AVX", frozenset()),
    ("AVX2", frozenset({"avx2"})),
    ("AVX2_VNNI", frozenset({"avx_vnni"})),
    ("AVX2_VNNI_2", frozenset()),
    ("AVX512_CORE", frozenset({"avx512f"})),
    ("AVX512_CORE_VNNI", frozenset({"avx512_vnni"})),
    ("AVX512_CORE_BF16", frozenset({"avx512_bf16"})),
    ("AVX512_CORE_FP16", frozenset()),
    ("AVX10_1_512", frozenset()),
    ("AVX512_CORE_AMX", AMX_FLAGS | {"amx_bf16"}),
    ("AVX512_CORE_AMX_FP16", frozenset()),
    ("AVX10_1_512_AMX", frozenset()),
    ("AVX10_1_512_AMX_FP16", frozenset()),
    ("ALL", frozenset()),
)


@dataclass(frozen=True)
class CpuFeatures:
    """CPU model name and the ISA flags turborank's kernel choices depend on."""

    model: str
    flags: frozenset[str]
    cap: str | None = None  # "ONEDNN_MAX_CPU_ISA=AVX2" when a cap removed flags the hardware has

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
        capped = f", kernels capped by {self.cap}" if self.cap else ""
        return f"{self.model} ({self.isa}{capped})"

    def capped_at(self, level: str, variable: str = ISA_CAP_VARIABLES[0]) -> CpuFeatures:
        """These features as oneDNN sees them with ``variable=level``; an unknown level caps nothing,
        as oneDNN ignores it too."""
        names = [name for name, _ in ONEDNN_ISA_LEVELS]
        if level.upper() not in names:
            log.warning("%s=%s is not a oneDNN ISA level (%s): ignored", variable, level, ", ".join(names))
            return self
        above = ONEDNN_ISA_LEVELS[names.index(level.upper()) + 1 :]
        removed = frozenset().union(*(flags for _, flags in above))
        if not self.flags & removed:
            return self
        return CpuFeatures(self.model, self.flags - removed, f"{variable}={level}")


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
    """This machine's CPU, as capped by ``ONEDNN_MAX_CPU_ISA`` (cached: neither changes while the process
    runs, since oneDNN reads the variable once)."""
    features = hardware_features()
    for variable in ISA_CAP_VARIABLES:
        if os.environ.get(variable):
            return features.capped_at(os.environ[variable], variable)
    return features


def hardware_features() -> CpuFeatures:
    """The CPU's own model and flags."""
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
