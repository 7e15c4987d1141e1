"""scripts/check_imports.py: every third-party import of the shipped packages is declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.check_imports import check, declared, problems, requirement_name, top_level_imports

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("prefect>=3.9,<4", "prefect"),
        ("psycopg[binary]>=3.3,<4", "psycopg"),
        ("PyYAML>=6.0,<7", "pyyaml"),
        ("jours_feries_france>=0.7", "jours-feries-france"),
        ("ruamel.yaml", "ruamel-yaml"),
    ],
)
def test_requirement_name_is_the_normalized_distribution(requirement: str, name: str) -> None:
    assert requirement_name(requirement) == name


def test_declared_splits_runtime_from_the_dev_group() -> None:
    pyproject = {
        "project": {"dependencies": ["SQLAlchemy>=2.1,<3"]},
        "dependency-groups": {"dev": ["pytest>=9", {"include-group": "lint"}]},
    }
    assert declared(pyproject) == (frozenset({"sqlalchemy"}), frozenset({"pytest"}))


def test_top_level_imports_include_lazy_ones_and_skip_relative_ones() -> None:
    source = "import yaml.parser\nfrom . import sibling\ndef f():\n    from rich.console import C\n"
    assert list(top_level_imports(source)) == [(1, "yaml"), (4, "rich")]


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(source, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import yaml\n", ["imports yaml (PyYAML)"]),
        ("import sqlalchemy\n", []),  # declared
        ("import json\n", []),  # the standard library
        ("from tasks import plan\n", []),  # the project's own
        ("import sibling\n", []),  # a module beside it
        ("import nowhere\n", ["imports nowhere (not installed)"]),
    ],
)
def test_problems_name_each_undeclared_import(
    tmp_path: Path, source: str, flagged: list[str]
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    _write(folder, "sibling.py", "")
    path = _write(folder, "m.py", source)
    index = {"yaml": ["PyYAML"], "sqlalchemy": ["SQLAlchemy"]}
    found = problems([path], frozenset({"sqlalchemy"}), lambda n: index.get(n, []), tmp_path)
    assert list(found) == [f"tasks/m.py:1: {what}, not declared" for what in flagged]


def test_the_project_declares_what_it_imports() -> None:
    assert check(REPO) == []
