#!/usr/bin/env python3
"""The README's test command: install whatever the test extras lack, then run pytest.

Usage, from the repository root: ``python scripts/run_tests.py [pytest arguments]`` (default ``-q``:
the whole suite).

The requirements come from the installed turborank's own metadata (pyproject's extras), so this file
lists no package. Only missing or too-old ones are installed, so an up-to-date machine needs no
network, and torch is never among them: it is installed first, as the CPU wheel, by the README's
install command. pytest's exit 5 (no tests collected) fails here, so a broken selection never passes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # packaging arrives with huggingface_hub; pip always carries its own copy
    from pip._vendor.packaging.requirements import Requirement

TEST_EXTRAS = ("server", "eval", "onnx", "train", "dev", "clients", "score", "ray")
NO_TESTS_COLLECTED = 5
INSTALL_COMMAND = "pip install torch==2.13.0 && pip install -e ."
REPO = Path(__file__).resolve().parents[1]


def missing_requirements(requirements: Iterable[str], extras: Sequence[str] = TEST_EXTRAS) -> list[str]:
    """The requirements of ``extras`` that are not installed at a fitting version, without their markers
    (ready for ``pip install``). ``requirements`` are ``importlib.metadata.requires`` strings.
    """
    missing = []
    for text in requirements:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or not any(marker.evaluate({"extra": extra}) for extra in extras):
            continue  # a core dependency (the install command's job) or another extra's
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not requirement.specifier.contains(installed, prereleases=True):
            requirement.marker = None
            missing.append(str(requirement))
    return list(dict.fromkeys(missing))  # extras share requirements (httpx, bm25s): name each once


def warn_if_another_checkout_is_tested() -> None:
    spec = importlib.util.find_spec("turborank")
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    if origin is not None and not origin.is_relative_to(REPO / "src"):
        print(
            f"warning: turborank is imported from {origin.parent}, not from this checkout: the tests would "
            f"run against that copy (run '{INSTALL_COMMAND}' here, or set PYTHONPATH=src)",
            file=sys.stderr,
        )


def main(argv: Sequence[str]) -> int:
    try:
        requirements = metadata.requires("turborank") or []
    except metadata.PackageNotFoundError:
        print(
            f"turborank is not installed in {sys.executable}: run the README's install command first "
            f"({INSTALL_COMMAND})",
            file=sys.stderr,
        )
        return 2
    missing = missing_requirements(requirements)
    if missing:
        print(f"installing the test requirements that are missing: {' '.join(missing)}", file=sys.stderr)
        installed = subprocess.call([sys.executable, "-m", "pip", "install", *missing])
        if installed != 0:
            print("pip could not install the test requirements (see above)", file=sys.stderr)
            return installed
    warn_if_another_checkout_is_tested()
    status = subprocess.call([sys.executable, "-m", "pytest", *(argv or ["-q"])])
    if status == NO_TESTS_COLLECTED:
        print("pytest collected no tests: failing, since nothing was checked", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
