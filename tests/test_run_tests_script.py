"""scripts/run_tests.py, the README's test command: installs what the test extras lack, fails on exit 5."""

import importlib.util
import os
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "scripts" / "run_tests.py"


def load_script():
    spec = importlib.util.spec_from_file_location("run_tests", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(tmp_path, test_file: str) -> subprocess.CompletedProcess:
    """The script on a throwaway test file (not the suite: each run would import torch again)."""
    (tmp_path / "test_case.py").write_text(test_file)
    # Third-party pytest plugins of this environment take seconds to import and play no part here.
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "-q", "-p", "no:cacheprovider", "test_case.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )


def test_only_absent_or_too_old_requirements_of_the_test_extras_are_installed():
    requirements = [
        "numpy>=1.0",  # a core dependency: the install command's job
        'pytest>=1; extra == "dev"',  # installed and recent enough
        'pytest>=999; extra == "dev"',  # installed but too old
        'no-such-package-for-turborank>=1.2; extra == "eval"',
        'no-such-package-for-turborank>=1.2; extra == "train"',  # shared by two extras: listed once
        'another-missing-package; extra == "docs"',  # not a test extra
    ]
    assert load_script().missing_requirements(requirements) == [
        "pytest>=999",
        "no-such-package-for-turborank>=1.2",
    ]


def test_a_run_that_collects_no_tests_fails(tmp_path):
    result = run_script(tmp_path, "def helper():\n    pass\n")
    assert result.returncode == 1
    assert "collected no tests" in result.stderr


def test_pytest_passes_and_failures_come_through(tmp_path):
    assert run_script(tmp_path, "def test_passes():\n    assert True\n").returncode == 0
    assert run_script(tmp_path, "def test_fails():\n    assert False\n").returncode == 1
