"""Packaging basics a user or a type checker relies on: version, type marker, exports, licence."""

import pytest
from conftest import REPO

import turborank
from turborank.cli import main

PACKAGE = REPO / "src" / "turborank"


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_flag_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"turborank {turborank.__version__}"


def test_the_distribution_version_is_read_from_the_package():
    # One place for the version, so --version and `pip show` cannot disagree.
    config = pyproject()
    assert "version" in config["project"]["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "turborank.__version__"}


def test_the_package_is_marked_as_typed_and_ships_the_marker():
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["turborank"]


def test_long_documents_is_exported_at_the_top_level():
    from turborank.chunking import LongDocuments

    assert turborank.LongDocuments is LongDocuments and "LongDocuments" in turborank.__all__


def test_the_license_file_is_the_declared_apache_2():
    assert pyproject()["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
