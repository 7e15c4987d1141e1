"""The layers of tasks/ hold: every module's imports, read from its source (ast, lazy imports too).

Three kinds of module (shared/architecture.md; tasks/__init__.py draws the map):

- **steps** (tasks/steps/, the Prefect ring) and tasks/runtime.py: the only modules that import
  Prefect;
- **rules**: pure decisions from explicit inputs; no Prefect, SQLAlchemy, requests/urllib3, no
  tasks.runtime, no ledger store (only its nouns, tasks.ledger.model), no clock, no files;
- **io**: files, databases, the gateway; no Prefect.

``KIND`` below names every module of tasks/ with its kind; ``face`` is a package's __init__ (it
re-exports, and counts as outside the ring). A module on disk that the table misses fails, and so
does a name in the table with no module: a new module must be given its kind.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

KIND: dict[str, str] = {
    # the package faces
    "tasks": "face",
    "tasks.ledger": "face",
    "tasks.numbers": "face",
    "tasks.recipients": "face",
    "tasks.reporting": "face",
    # environment, Secret blocks, data paths, pooled clients and stores
    "tasks.runtime": "runtime",
    # rules: pure
    "tasks.errors": "rules",
    "tasks.outcomes": "rules",
    "tasks.row_columns": "rules",
    "tasks.plan": "rules",
    "tasks.accounting": "rules",
    "tasks.money": "rules",
    "tasks.sendcore": "rules",
    "tasks.slots": "rules",
    "tasks.approval": "rules",
    "tasks.cancellation": "rules",
    "tasks.delivery": "rules",
    "tasks.i18n": "rules",
    "tasks.numbers.reference": "rules",
    "tasks.numbers.fast": "rules",
    "tasks.numbers.prefix_table": "rules",
    "tasks.numbers.masking": "rules",
    "tasks.numbers.entries": "rules",
    "tasks.recipients.columns": "rules",
    "tasks.recipients.frame": "rules",
    "tasks.recipients.sql_guard": "rules",
    "tasks.recipients.limits": "rules",
    "tasks.ledger.model": "rules",
    "tasks.reporting.summary": "rules",
    "tasks.reporting.markdown": "rules",
    "tasks.reporting.slot_words": "rules",
    "tasks.reporting.terminal": "rules",
    "tasks.inbox": "rules",
    "tasks.audience": "rules",
    "tasks.sample": "rules",
    "tasks.pressure": "rules",
    "tasks.witnesses": "rules",
    "tasks.retire": "rules",
    # io: files, databases, the gateway
    "tasks.files": "io",
    "tasks.inbox_io": "io",
    "tasks.folders": "io",
    "tasks.dburl": "io",
    "tasks.rows_file": "io",
    "tasks.sending": "io",
    "tasks.nevertext": "io",
    "tasks.cancel_io": "io",
    "tasks.delivery_io": "io",
    "tasks.privacy": "io",
    "tasks.progress": "io",
    "tasks.alerts": "io",
    "tasks.alerts.__main__": "entry",  # `python -m tasks.alerts`: a command, as a flow is
    "tasks.recipients.load": "io",
    "tasks.recipients.remote": "io",
    "tasks.recipients.text": "io",
    "tasks.recipients.excel": "io",
    "tasks.recipients.sql": "io",
    "tasks.recipients.suppression": "io",
    "tasks.ledger.schema": "io",
    "tasks.ledger.engine": "io",
    "tasks.ledger.store": "io",
    "tasks.ledger.cap": "io",
    "tasks.ledger.pseudonyms": "io",
    "tasks.ledger.retention": "io",
    "tasks.ledger.owners": "io",
    "tasks.ledger.draws": "io",
    "tasks.witness_io": "io",
    "tasks.reporting.html": "io",
    "tasks.reporting.tables": "io",
    "tasks.reporting.folder": "io",
}
STEPS = "tasks.steps"  # the package and everything in it

PREFECT = ("prefect",)
LEDGER_STORE = tuple(
    f"tasks.ledger.{m}"
    for m in ("schema", "engine", "store", "cap", "pseudonyms", "retention", "owners", "draws")
)
# What a rules module must not import: prefixes (the module or anything inside it) ...
RULES_MUST_NOT = (
    *PREFECT,
    "sqlalchemy",
    "requests",
    "urllib3",
    "tasks.runtime",
    *LEDGER_STORE,
    "smspartner.client",
    "smspartner._transport",
    "smspartner.simulator",
)
# ... and exact names: the ledger's face loads its store (the nouns are in tasks.ledger.model).
RULES_MUST_NOT_EXACTLY = ("tasks.ledger",)
CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
}
CLOCK_NAMES = {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"}  # from time import
FILES = {"read_text", "write_text", "read_bytes", "write_bytes", "mkdir", "unlink", "iterdir"}
FILES |= {"read_csv", "read_excel", "read_parquet", "to_csv", "to_excel", "to_parquet"}


# -- reading a module ------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules_under(folder: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((REPO / folder).rglob("*.py"))}


def kind_of(name: str) -> str | None:
    if name == STEPS or name.startswith(STEPS + "."):
        return "steps"
    return KIND.get(name)


def imported_names(source: str, name: str, is_package: bool) -> set[str]:
    """Every module ``source`` imports, absolute, lazy imports included. ``from a import b``
    counts as importing ``a`` and ``a.b`` (``b`` may be a module: ``from tasks import ledger``)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def clock_reads(source: str) -> list[str]:
    """Calls that read the clock: ``datetime.now(...)``, ``dt.datetime.now()``, ``time.time()``,
    and the names ``from time import monotonic`` brings in."""
    tree = ast.parse(source)
    from_time = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "time"
        for alias in node.names
        if alias.name in CLOCK_NAMES
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func)
        owner, _, attr = dotted.rpartition(".")
        if (owner.rpartition(".")[2], attr) in CLOCK or (not owner and attr in from_time):
            found.append(f"line {node.lineno}: {dotted}()")
    return found


def file_access(source: str) -> list[str]:
    """Calls that touch the file system: ``open(...)``, ``path.read_text()``, ``df.to_csv()``..."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"line {node.lineno}: open()")
        elif isinstance(func, ast.Attribute) and func.attr in FILES:
            found.append(f"line {node.lineno}: .{func.attr}()")
    return found


def hits(imported: set[str], prefixes: tuple[str, ...], exact: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        m for m in imported if m in exact or any(m == p or m.startswith(p + ".") for p in prefixes)
    )


def source_of(name: str) -> tuple[str, bool]:
    path = modules_under("tasks").get(name)
    assert path is not None, f"{name} is not on disk: update KIND"
    return path.read_text(encoding="utf-8"), path.name == "__init__.py"


def imports_of(name: str) -> set[str]:
    source, is_package = source_of(name)
    return imported_names(source, name, is_package)


# -- the table -------------------------------------------------------------------------------------


def test_every_module_of_tasks_has_a_kind() -> None:
    unclassified = sorted(n for n in modules_under("tasks") if kind_of(n) is None)
    assert unclassified == [], "give each a kind in KIND (tests/test_layers.py)"


def test_every_module_in_the_table_exists() -> None:
    missing = sorted(set(KIND) - set(modules_under("tasks")))
    assert missing == [], "a module left or was renamed: update KIND"


# -- the rules of each kind ------------------------------------------------------------------------

RULES = sorted(n for n, kind in KIND.items() if kind == "rules")
NOT_THE_RING = sorted(n for n, kind in KIND.items() if kind in {"rules", "io", "face"})


def rules_breaches(name: str) -> set[str]:
    """The modules ``name`` imports that a rules module must not (the outermost of each)."""
    found = hits(imports_of(name), RULES_MUST_NOT, RULES_MUST_NOT_EXACTLY)
    return {m for m in found if not any(m.startswith(f + ".") for f in found)}


@pytest.mark.parametrize("name", RULES)
def test_a_rules_module_imports_no_framework_store_or_client(name: str) -> None:
    assert rules_breaches(name) == set()


@pytest.mark.parametrize("name", RULES)
def test_a_rules_module_imports_no_io_module_nor_the_ring(name: str) -> None:
    # A pure rule that called an io module (or a step) would be impure one call away.
    impure = tuple(n for n, kind in KIND.items() if kind in {"io", "runtime"}) + (STEPS,)
    assert hits(imports_of(name), impure) == []


@pytest.mark.parametrize("name", RULES)
def test_a_rules_module_reads_neither_clock_nor_files(name: str) -> None:
    source, _ = source_of(name)
    assert clock_reads(source) == [], "take the time as an argument"
    assert file_access(source) == [], "take the content as an argument, or move it to an io module"


@pytest.mark.parametrize("name", NOT_THE_RING)
def test_outside_the_ring_nothing_imports_prefect(name: str) -> None:
    assert hits(imports_of(name), PREFECT) == []


def offenders(
    folder: str, prefixes: tuple[str, ...], checked: Callable[[str], bool] = lambda _: True
) -> dict[str, list[str]]:
    """Every module under ``folder`` (classified or not) that imports one of ``prefixes``."""
    found = {}
    for name, path in modules_under(folder).items():
        if not checked(name):
            continue
        source = path.read_text(encoding="utf-8")
        bad = hits(imported_names(source, name, path.name == "__init__.py"), prefixes)
        if bad:
            found[name] = bad
    return found


def test_only_the_ring_and_runtime_import_prefect_anywhere_in_tasks() -> None:
    """The architecture's grep, on every module: prefect only in tasks/steps/ and runtime."""
    assert offenders("tasks", PREFECT, lambda n: kind_of(n) not in {"steps", "runtime"}) == {}


@pytest.mark.parametrize("name", sorted(n for n, kind in KIND.items() if kind == "io"))
def test_an_io_module_calls_no_step(name: str) -> None:
    assert hits(imports_of(name), (STEPS, "flows")) == []


def test_nothing_in_tasks_imports_a_flow() -> None:
    assert offenders("tasks", ("flows",)) == {}


def test_the_ledger_is_handed_its_configuration() -> None:
    """No module of tasks/ledger/ reaches for tasks.runtime: runtime builds the store."""
    assert offenders("tasks/ledger", ("tasks.runtime",)) == {}


def test_the_gateway_package_never_imports_prefect() -> None:
    assert offenders("smspartner", PREFECT) == {}


# What a rules module must not load, even through another module or a package's face.
HEAVY = ("prefect", "sqlalchemy", "requests", "urllib3")
_IMPORT_WITHOUT = """
import importlib, json, sys
for name in {heavy}:
    sys.modules[name] = None  # any import of it, at any depth, fails
failed = {{}}
for module in {modules}:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        failed[module] = str(exc)
print(json.dumps(failed))
"""


def test_every_rules_module_loads_without_the_framework_a_database_or_http() -> None:
    """The source rules above see direct imports; this sees what importing really loads (a
    package's face, a module imported by an imported module)."""
    script = _IMPORT_WITHOUT.format(heavy=HEAVY, modules=RULES)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


# -- the readers themselves (they must see what they are meant to see) -----------------------------


@pytest.mark.parametrize(
    ("source", "name", "is_package", "expected"),
    [
        ("import prefect", "tasks.plan", False, {"prefect"}),
        ("def f():\n    from prefect import task\n", "tasks.plan", False, {"prefect"}),
        ("from tasks import ledger", "tasks.plan", False, {"tasks", "tasks.ledger"}),
        ("from . import store", "tasks.ledger.cap", False, {"tasks.ledger", "tasks.ledger.store"}),
        ("from .model import Claim", "tasks.ledger", True, {"tasks.ledger.model"}),
        ("from ..runtime import x", "tasks.ledger.store", False, {"tasks.runtime"}),
        ("import sqlalchemy.engine as e", "tasks.plan", False, {"sqlalchemy.engine"}),
    ],
)
def test_imported_names_sees_lazy_and_relative_imports(
    source: str, name: str, is_package: bool, expected: set[str]
) -> None:
    assert expected <= imported_names(source, name, is_package)


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ("from datetime import datetime\nx = datetime.now()", True),
        ("import datetime as dt\nx = dt.datetime.now(dt.UTC)", True),
        ("import time\nx = time.time()", True),
        ("from time import monotonic\nx = monotonic()", True),
        ("from datetime import date\nx = date.today()", True),
        ("def f(now):\n    return now", False),
        ("from datetime import datetime\nx = datetime.fromisoformat('2026-01-01')", False),
        ("from datetime import time\nx = time(9, 0)", False),
    ],
)
def test_clock_reads_tells_a_clock_from_a_value(source: str, reads: bool) -> None:
    assert bool(clock_reads(source)) is reads


@pytest.mark.parametrize(
    ("source", "touches"),
    [
        ("open('x')", True),
        ("p.read_text(encoding='utf-8')", True),
        ("frame.to_csv(path)", True),
        ("text.replace('a', 'b')", False),
        ("'x'.join(parts)", False),
    ],
)
def test_file_access_sees_the_file_system(source: str, touches: bool) -> None:
    assert bool(file_access(source)) is touches


@pytest.mark.parametrize(
    ("imported", "flagged"),
    [
        ({"tasks.ledger"}, ["tasks.ledger"]),
        ({"tasks.ledger.model", "tasks.ledger.model.ChunkRow"}, []),
        ({"tasks.ledger.store"}, ["tasks.ledger.store"]),
        ({"prefect.artifacts"}, ["prefect.artifacts"]),
        ({"prefecture"}, []),
        ({"smspartner.errors"}, []),
    ],
)
def test_hits_matches_whole_module_names(imported: set[str], flagged: list[str]) -> None:
    assert hits(imported, RULES_MUST_NOT, RULES_MUST_NOT_EXACTLY) == flagged
