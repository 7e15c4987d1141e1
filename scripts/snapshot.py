"""`scripts/snapshot.py OUTDIR`: everything a user sees, normalised, to compare two checkouts.

Run it in each checkout and compare the folders with ``diff -r``::

    cd CHECKOUT && PYTHONPATH=CHECKOUT .venv/bin/python scripts/snapshot.py /tmp/snap

It writes the ``--help`` of every command, each flow's parameter schema as a deployment gets it,
the Prefect task names, ``deployments/*.yaml``, and a demo campaign against the bundled
simulator (a send, a follow-up, a cancel, a dry run in English, a money stop, a usage error):
exit codes, stdout, the ``error:`` lines and the report folder after each, with ``.xlsx`` files
as CSV text. What differs from one run to the next (times of day, durations, ports, temporary
paths, run ids) becomes a placeholder, so two snapshots of one checkout are identical.

The campaign runs on a fixed clock (Tuesday 12 January 2027, 11:00 in Paris) so that which
territories are sent at once and which are scheduled does not depend on the hour it is run: the
project's modules (and the simulator's) see ``datetime.now()`` start at that moment and run a
hundred times slower than real time (a slow machine still plans within the same minute);
Prefect keeps the real clock. Sends go one at a time (``--concurrency 1``), so the simulator
numbers its messages in the same order every time. Only the standard library and the project
are used: it runs in any checkout, old or new. It is NOT a test (nothing is asserted) and writes
nothing in the checkout; each command's whole stderr is kept beside it, in ``OUTDIR.stderr/``.
"""

from __future__ import annotations

import argparse
import builtins
import csv
import datetime as _dt
import importlib
import importlib.abc
import importlib.util
import io
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

PROJECT = ("flows", "tasks", "smspartner", "scripts")
COMMANDS = (
    "flows.survey_campaign",
    "flows.follow_up",
    "flows.cancel_campaign",
    "flows.erase_person",
    "flows.never_text",
    "flows.purge_personal_data",
    "smspartner.simulator",
)
NEVER_TEXT_VERBS = ("import", "add", "check", "export", "count", "forget-import")
FIXED_NOW = _dt.datetime(2027, 1, 12, 10, 0, tzinfo=_dt.UTC)  # Tuesday, 11:00 in Paris
CLOCK_ENV = "SNAPSHOT_CLOCK_ANCHOR"  # the real POSIX time at which the fixed clock started
SLOWER = 100  # the fixed clock runs this many times slower than real time
SIM_KEY = "sim-test-key"  # the simulator's built-in key; not a real credential
CAMPAIGN = "snapshot-demo"


# -- the fixed clock (in a child process) ----------------------------------------------------------

_REAL_DATETIME = _dt.datetime


def fixed_now(anchor: float, tz: Any = None) -> _dt.datetime:
    """The fixed clock: FIXED_NOW at the real time ``anchor``, then SLOWER times slower."""
    elapsed = _REAL_DATETIME.now(_dt.UTC).timestamp() - anchor
    moment = FIXED_NOW + _dt.timedelta(seconds=elapsed / SLOWER)
    return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)


def shifted_datetime(anchor: float) -> type:
    """A stand-in for ``datetime.datetime`` whose ``now()`` reads the fixed clock; every
    instance it makes is a plain ``datetime`` (pickles and types stay the project's own)."""

    class _Meta(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, _REAL_DATETIME)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, _REAL_DATETIME)

    class datetime(_REAL_DATETIME, metaclass=_Meta):  # the name the project's code reads
        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            return _REAL_DATETIME(*args, **kwargs)

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return fixed_now(anchor, tz)

        @classmethod
        def utcnow(cls) -> Any:
            return fixed_now(anchor, _dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            return fixed_now(anchor)

        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
            return handler.generate_schema(_REAL_DATETIME)  # pydantic: a datetime field

    return datetime


def clock_builtins(anchor: float) -> dict[str, Any]:
    """Builtins whose ``__import__`` hands ``from datetime import datetime`` the shifted clock:
    given to the project's modules only, so Prefect, pydantic and SQLAlchemy keep the real one."""
    shim = types.ModuleType("datetime")
    shim.__dict__.update(_dt.__dict__)
    shim.datetime = shifted_datetime(anchor)  # type: ignore[attr-defined]
    real_import = builtins.__import__

    def _import(name: str, *args: Any, **kwargs: Any) -> Any:
        # __import__(name, globals, locals, fromlist, level), positional in CPython
        fromlist = args[2] if len(args) > 2 else kwargs.get("fromlist")
        level = args[3] if len(args) > 3 else kwargs.get("level", 0)
        if name == "datetime" and level == 0 and fromlist:
            return shim
        return real_import(name, *args, **kwargs)

    return {**builtins.__dict__, "__import__": _import}


class _ClockLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, clock: dict[str, Any]) -> None:
        self._inner, self._clock = inner, clock

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = self._clock
        self._inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_code, get_data, is_package...
        return getattr(self._inner, name)


class _ClockFinder(importlib.abc.MetaPathFinder):
    """Gives every module of the project the shifted clock's builtins as it is imported."""

    def __init__(self, clock: dict[str, Any]) -> None:
        self._clock = clock

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".")[0] not in PROJECT:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ClockLoader(spec.loader, self._clock)
                return spec
        return None


def run_child(module: str, args: Sequence[str]) -> None:
    """``python -m module args`` on the shifted clock, with the project from PYTHONPATH."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
    clock = clock_builtins(float(os.environ[CLOCK_ENV]))
    sys.meta_path.insert(0, _ClockFinder(clock))
    sys.argv = [module, *args]
    runpy.run_module(module, {"__builtins__": clock}, run_name="__main__", alter_sys=True)


def print_flows(repo: Path) -> None:
    """The flows' names and parameter schemas (as ``prefect deploy`` sends them), the
    deployments' entrypoints resolved, and every Prefect task name, as JSON on stdout."""
    import prefect
    from prefect.flows import load_flow_from_entrypoint

    text = (repo / "deployments" / "prefect.yaml").read_text("utf-8")
    entrypoints = re.findall(r"entrypoint:\s*(\S+)", text)
    out: dict[str, Any] = {"entrypoints": {}, "tasks": sorted(task_names(prefect.Task))}
    for entry in entrypoints:
        flow: Any = load_flow_from_entrypoint(entry)
        out["entrypoints"][entry] = describe_flow(flow)
    print(json.dumps(out, indent=2, ensure_ascii=False))


def describe_flow(flow: Any) -> dict[str, Any]:
    schema = flow.parameters
    dump = getattr(schema, "model_dump_for_openapi", None) or schema.model_dump
    return {
        "name": flow.name,
        "description": flow.description,
        "parameters": dump(),
        "log_prints": flow.log_prints,
        "persist_result": flow.persist_result,
        "retries": flow.retries,
        "timeout_seconds": flow.timeout_seconds,
    }


def task_names(task_type: type) -> set[str]:
    """The name of every Prefect task under ``tasks/`` and ``flows/``, wherever it lives."""
    import pkgutil

    names: set[str] = set()
    for package in ("tasks", "flows"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            tasks = [v for v in vars(module).values() if isinstance(v, task_type)]
            names.update(str(getattr(t, "name", "")) for t in tasks)
    return names


# -- normalising what varies from run to run -------------------------------------------------------

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_LOCAL_URL = re.compile(r"(127\.0\.0\.1|localhost):\d{2,5}")
_ISO_SECONDS = re.compile(
    r"\b(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"
)
# A run's duration in words: "0,9 s", "1.3 s", and a whole "1 s" where the report shows it.
_RUN_TIME = re.compile(r"\b\d+[.,]\d s\b|(?<=<dd>)\d+ s(?=</dd>)")
_DURATION_KEYS = re.compile(r"(seconds|duration|elapsed)", re.IGNORECASE)
_TIME_KEYS = re.compile(r"(_at|checked|generated|created|updated|started|ended|time)$")


class Normaliser:
    """Replaces the parts of a text that vary between two runs of one checkout."""

    def __init__(self, paths: dict[str, str]) -> None:
        # Longest first, so a temporary folder inside another is named by its own placeholder.
        self._paths = sorted(paths.items(), key=lambda kv: -len(kv[0]))

    def text(self, value: str) -> str:
        for path, name in self._paths:
            value = value.replace(path, name)
        value = _UUID.sub("<uuid>", value)
        value = _LOCAL_URL.sub(r"\1:<port>", value)
        value = _RUN_TIME.sub("<n> s", value)
        return _ISO_SECONDS.sub(self._instant, value)

    @staticmethod
    def _instant(match: re.Match[str]) -> str:
        # A planned slot falls on a whole minute; a moment a run read off its clock does not.
        day, minute, second, fraction, zone = match.groups()
        if second == "00" and not (fraction or "").strip(".0"):
            return match.group(0)
        return f"<time {zone or ''}>".replace(" >", ">")

    def json_value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: self.json_value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.json_value(v, key) for v in value]
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and _DURATION_KEYS.search(key):
            return "<seconds>"
        if isinstance(value, str):
            if _TIME_KEYS.search(key) and _ISO_SECONDS.search(value):
                return "<time>"
            return self.text(value)
        return value

    def output(self, text: str) -> str:
        """stdout: each JSON line normalised field by field, other lines as text."""
        lines = []
        for line in text.splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:
                lines.append(self.text(line))
                continue
            lines.append(json.dumps(self.json_value(parsed), indent=1, ensure_ascii=False))
        return "\n".join(lines) + "\n"


def xlsx_as_csv(path: Path) -> str:
    """Every sheet of an .xlsx file as CSV text (cell values as stored), standard library only."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(path) as book:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in book.namelist():
            root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))  # noqa: S314 - our own run's file
            shared = ["".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")) for si in root]
        sheets = sorted(n for n in book.namelist() if n.startswith("xl/worksheets/sheet"))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for sheet in sheets:
            writer.writerow([f"# {sheet}"])
            root = ElementTree.fromstring(book.read(sheet))  # noqa: S314 - our own run's file
            for row in root.iter(f"{{{ns['m']}}}row"):
                writer.writerow([_cell(c, shared, ns) for c in row.findall("m:c", ns)])
    return out.getvalue()


def _cell(cell: ElementTree.Element, shared: list[str], ns: dict[str, str]) -> str:
    kind = cell.get("t", "n")
    ref = cell.get("r", "")
    if kind == "inlineStr":
        value = "".join(t.text or "" for t in cell.iter(f"{{{ns['m']}}}t"))
    else:
        v = cell.find("m:v", ns)
        value = "" if v is None or v.text is None else v.text
        if kind == "s" and value:
            value = shared[int(value)]
    return f"{ref}[{kind}]={value}"


# -- running commands ------------------------------------------------------------------------------


class Snapshot:
    def __init__(self, out: Path, repo: Path, work: Path) -> None:
        self.out, self.repo, self.work = out, repo, work
        self.data = work / "data"
        self.norm = Normaliser(
            {
                str(work.resolve()): "<work>",
                str(work): "<work>",
                str(repo.resolve()): "<repo>",
                sys.executable: "<python>",
            }
        )
        self.env = self._base_env()

    def _base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SURVEY_", "SMSPARTNER_", "PREFECT_", CLOCK_ENV))
        }
        env.update(
            PYTHONPATH=str(self.repo),
            PYTHONHASHSEED="0",
            COLUMNS="100",
            TZ="UTC",
            PREFECT_HOME=str(self.work / "prefect-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            SURVEY_DATA_DIR=str(self.data),
            SURVEY_LEDGER_URL=f"sqlite:///{self.work / 'ledger.sqlite'}",
            SURVEY_PSEUDONYM_KEY="5a" * 32,  # fixed, so hashes do not vary
            SMSPARTNER_API_KEY=SIM_KEY,
        )
        return env

    def write(self, name: str, text: str) -> None:
        path = self.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")

    def run(self, argv: Sequence[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv],
            cwd=cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def child(self, module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run([__file__, "--child", module, *args], self.work, **env)

    def record(self, name: str, done: subprocess.CompletedProcess[str]) -> None:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        traceback = "Traceback" in done.stderr
        # The whole stderr (Prefect's log lines) beside the snapshot, not in it: to read, not diff.
        raw = self.out.with_name(self.out.name + ".stderr") / f"{name}.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(done.stderr, "utf-8")
        if traceback:
            print(f"snapshot: a traceback on stderr, see {raw}", file=sys.stderr)
        text = (
            f"exit code: {done.returncode}\n"
            f"traceback on stderr: {traceback}\n"
            "-- error lines --\n" + self.norm.text("\n".join(errors)) + "\n"
            "-- stdout --\n" + self.norm.output(done.stdout)
        )
        self.write(f"{name}.txt", text)


def check_checkout(snap: Snapshot) -> None:
    """Stop unless the project's modules come from the checkout being snapshot."""
    done = snap.run(["-c", "import flows, tasks, smspartner; print(tasks.__path__[0])"], snap.work)
    where = done.stdout.strip()
    if done.returncode != 0 or Path(where).resolve().parent != snap.repo.resolve():
        raise SystemExit(f"the project's modules come from {where!r}, not {snap.repo}")


def snapshot_help(snap: Snapshot) -> None:
    for module in COMMANDS:
        done = snap.run(["-m", module, "--help"], snap.work)
        snap.write(f"help/{module}.txt", f"exit {done.returncode}\n{snap.norm.text(done.stdout)}")
    for verb in NEVER_TEXT_VERBS:
        done = snap.run(["-m", "flows.never_text", verb, "--help"], snap.work)
        name = f"help/flows.never_text.{verb}.txt"
        snap.write(name, f"exit {done.returncode}\n{snap.norm.text(done.stdout)}")


def snapshot_flows(snap: Snapshot) -> None:
    done = snap.run([__file__, "--flows", str(snap.repo)], snap.repo)
    if done.returncode != 0:
        raise SystemExit(f"reading the flows failed:\n{done.stderr[-3000:]}")
    snap.write("flows.json", snap.norm.text(done.stdout))
    for path in sorted((snap.repo / "deployments").glob("*.yaml")):
        snap.write(f"deployments/{path.name}", path.read_text("utf-8"))


def snapshot_folder(snap: Snapshot, folder: Path, name: str) -> None:
    """A report folder's files, normalised; binary files by name only."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        target = f"{name}/{rel}"
        if path.suffix == ".xlsx":
            snap.write(target + ".csv", snap.norm.text(xlsx_as_csv(path)))
        elif path.suffix in (".json", ".html", ".csv", ".md", ".txt"):
            text = path.read_text("utf-8", errors="replace")
            if path.suffix == ".json":
                parsed = snap.norm.json_value(json.loads(text))
                text = json.dumps(parsed, indent=1, ensure_ascii=False) + "\n"
            snap.write(target, snap.norm.text(text))
        else:
            snap.write(target + ".binary", "a binary file\n")


def start_simulator(snap: Snapshot) -> tuple[subprocess.Popen[str], str]:
    args = ["--port", "0", "--credits", "50", "--stop", "+33612345627", "--seed", "7"]
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            "smspartner.simulator",
            *args,
            "--delivery-delay-s",
            "0",
        ],
        cwd=snap.work,
        env=snap.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the simulator did not start: {line.strip() or 'no answer'}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def campaign_steps() -> Iterator[tuple[str, str, list[str], str | None]]:
    """(name, module, arguments, the campaign whose report folder to keep)."""
    recipients = ["--recipients", "data/samples/recipients.csv"]
    send = ["--survey-id", "demo-satisfaction", *recipients, "--concurrency", "1"]
    yield "1-send", "flows.survey_campaign", [*send, "--campaign-id", CAMPAIGN], CAMPAIGN
    yield "2-follow-up", "flows.follow_up", ["--campaign-id", CAMPAIGN], CAMPAIGN
    yield "3-cancel", "flows.cancel_campaign", ["--campaign-id", CAMPAIGN], CAMPAIGN
    dry = [*send, "--campaign-id", "snapshot-dry", "--dry-run", "--lang", "en"]
    yield "4-dry-run-en", "flows.survey_campaign", dry, "snapshot-dry"
    money = [*send, "--campaign-id", "snapshot-money", "--max-cost", "0.1"]
    yield "5-money-stop", "flows.survey_campaign", money, "snapshot-money"
    missing = ["--survey-id", "s", "--recipients", "data/samples/missing.csv"]
    yield "6-missing-file", "flows.survey_campaign", missing, None


def snapshot_campaign(snap: Snapshot) -> None:
    samples = snap.data / "samples"
    samples.mkdir(parents=True)
    shutil.copy(snap.repo / "data" / "samples" / "recipients.csv", samples)
    # The fixed clock starts now, shared by every process (the simulator's too).
    snap.env[CLOCK_ENV] = repr(_dt.datetime.now(_dt.UTC).timestamp())
    sim, url = start_simulator(snap)
    try:
        for name, module, args, campaign in campaign_steps():
            done = snap.child(module, *args, SMSPARTNER_BASE_URL=url)
            snap.record(f"runs/{name}", done)
            folder = snap.data / "reports" / (campaign or "")
            if campaign and folder.is_dir():
                snapshot_folder(snap, folder, f"runs/{name}.report")
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def snapshot(out: Path, repo: Path, keep: bool) -> None:
    for folder in (out, out.with_name(out.name + ".stderr")):
        if folder.exists():
            shutil.rmtree(folder)
    out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="snapshot-"))
    try:
        snap = Snapshot(out, repo, work)
        check_checkout(snap)
        steps: list[Callable[[Snapshot], None]] = [snapshot_help, snapshot_flows, snapshot_campaign]
        for step in steps:
            print(f"snapshot: {step.__name__} ...", file=sys.stderr, flush=True)
            step(snap)
    finally:
        if keep:
            print(f"snapshot: the work folder is kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"snapshot written to {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        run_child(argv[1], argv[2:])
        return 0
    if argv[:1] == ["--flows"]:
        print_flows(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    args = parser.parse_args(argv)
    snapshot(args.outdir.resolve(), args.repo.resolve(), args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
