"""Every third-party module the project imports is declared in ``pyproject.toml``.

The shipped packages (flows/, tasks/, smspartner/, scripts/) may import only what
``[project].dependencies`` declares: a worker installs the runtime lock and nothing else, so a
module that arrives only as some other package's dependency works until that package drops it.
tests/ and bench/ may also import the ``[dependency-groups] dev`` tools. Lazy imports (inside
functions) count like the others.

Run by ``make lint`` (``python -m scripts.check_imports``) in the project's virtualenv: the import
names are mapped to their distributions through the installed metadata (``yaml`` is PyYAML).
Exits 1 with one line per undeclared import, ``path:line: imports NAME (...)``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("flows", "tasks", "smspartner", "scripts")
DEVELOPMENT = ("tests", "bench")
FIRST_PARTY = frozenset(SHIPPED + DEVELOPMENT)


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them (``PyYAML`` == ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """``"psycopg[binary]>=3.3,<4"`` -> ``"psycopg"`` (normalized)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


def declared(pyproject: Mapping[str, object]) -> tuple[frozenset[str], frozenset[str]]:
    """(runtime, development) distribution names that pyproject.toml declares."""
    project = pyproject.get("project", {})
    groups = pyproject.get("dependency-groups", {})
    assert isinstance(project, dict) and isinstance(groups, dict)
    runtime = frozenset(requirement_name(r) for r in project.get("dependencies", []))
    # A group may include another ({include-group = "..."}): only plain strings are requirements.
    dev = frozenset(requirement_name(r) for r in groups.get("dev", []) if isinstance(r, str))
    return runtime, dev


def top_level_imports(source: str) -> Iterator[tuple[int, str]]:
    """(line, top-level module) for every absolute import, lazy ones included."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.partition(".")[0]


def is_local(name: str, folder: Path) -> bool:
    """The project's own packages, and sibling modules (tests import tcp_proxy, helpers...)."""
    if name in FIRST_PARTY or name == "__future__" or name in sys.stdlib_module_names:
        return True
    return (folder / f"{name}.py").exists() or (folder / name / "__init__.py").exists()


def problems(
    files: Iterable[Path],
    allowed: frozenset[str],
    distributions_of: Callable[[str], list[str]],
    relative_to: Path,
) -> Iterator[str]:
    """One line per import in ``files`` of a module no ``allowed`` distribution provides."""
    for path in sorted(files):
        for line, name in top_level_imports(path.read_text(encoding="utf-8")):
            if is_local(name, path.parent):
                continue
            dists = distributions_of(name)
            if any(normalize(d) in allowed for d in dists):
                continue
            where = ", ".join(sorted(set(dists))) if dists else "not installed"
            yield f"{path.relative_to(relative_to)}:{line}: imports {name} ({where}), not declared"


def check(root: Path) -> list[str]:
    """Every problem under ``root``: shipped packages against the runtime dependencies, tests
    and benchmarks against runtime + dev."""
    runtime, dev = declared(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")))
    index = packages_distributions()

    def distributions_of(name: str) -> list[str]:
        return list(index.get(name, []))

    found: list[str] = []
    for folders, allowed in ((SHIPPED, runtime), (DEVELOPMENT, runtime | dev)):
        files = [p for folder in folders for p in (root / folder).rglob("*.py")]
        found.extend(problems(files, allowed, distributions_of, root))
    return found


def main() -> int:
    found = check(ROOT)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
