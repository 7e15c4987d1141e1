"""`make server`: the Prefect UI on 127.0.0.1 with the deployments, a worker and the simulator.

No account and nothing leaves the machine. Started in this order, each as a child process:

1. the SMS Partner simulator on a free port;
2. a Prefect server (SQLite under ``data/state/prefect-server``) on 127.0.0.1:4200, or on a
   free port when 4200 is taken;
3. the process work pool ``surveys`` and the Secret block ``smspartner-api-key`` holding the
   simulator's key (the worker has no key in its environment: it reads the block);
4. the deployments of ``deployments/prefect.yaml``, with Prefect's own deploy command;
5. a worker started at the repository root, pointed at the simulator and at a ledger of its own.

Then it prints where the UI is and waits; Ctrl-C stops everything it started.

``LocalStack`` does the same for the end-to-end tests, in a temporary folder, optionally with
the Prefect server and the ledger on PostgreSQL and several workers. Several machines are played
on one host by giving each worker a clone of its own (its working directory, and the one its
flows run in when the deployments' pull step reads ``SURVEY_PROJECT_DIR``), variables of its own
(``SURVEY_DATA_DIR``, ...) and a work queue of its own, so a test knows which machine ran what.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Final

from smspartner.simulator import DEFAULT_API_KEY, start_process
from tasks.runtime import API_KEY_ENV, BASE_URL_ENV, SECRET_BLOCK

REPO = Path(__file__).resolve().parents[1]
POOL = "surveys"
PREFECT_FILE = "deployments/prefect.yaml"
LEDGER_URL_ENV = "SURVEY_LEDGER_URL"  # read by the flows
SUPPRESSION_ENV = "SURVEY_SUPPRESSION_LIST"  # read by the flows
# The clone a worker's flows run in, for a pull step that reads it on the worker (one clone per
# machine, at any path); set by LocalStack to each worker's own directory.
PROJECT_DIR_ENV = "SURVEY_PROJECT_DIR"
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
DEFAULT_UI_PORT = 4200
# Variables of the caller's shell that must not reach the stack: a real key or gateway, another
# Prefect server or profile, another ledger.
_FOREIGN_PREFIXES = ("PREFECT_", "SMSPARTNER_", "SURVEY_")

# Prefect answers "503 Service Unavailable" for an error its clients may retry (SQLite busy on a
# loaded machine, a database connection dropped): nothing was stored, the request may be sent
# again, as Prefect's own client does. Seconds to wait before each new attempt:
_BUSY_WAITS: Final = (0.5, 1.0, 1.5, 2.0)
# Creating a run is what a test then waits on: it rides a longer busy spell (15.5 s in all).
_CREATE_RUN_WAITS: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
_pause = time.sleep  # between attempts; a test replaces it

_SAVE_BLOCK_SCRIPT = (
    "import os, sys\n"
    "from prefect.blocks.system import Secret\n"
    "Secret(value=os.environ.pop('_SURVEY_SECRET_VALUE')).save(sys.argv[1], overwrite=True)\n"
)


class StackError(RuntimeError):
    """A process of the stack did not start: str() says which, and the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without anything that could point the stack elsewhere."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(_FOREIGN_PREFIXES)}


def _children(pid: int) -> list[int]:
    """Every descendant of a process, read from /proc (empty where /proc is absent)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """Stop a child started in its own session, and whatever it started (flow runs included)."""
    if proc.poll() is not None:
        return
    descendants = _children(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    if proc.stdout is not None:
        proc.stdout.close()
    # Flow runs live in process groups of their own: stop any the worker left behind.
    for pid in descendants:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class StackConfig:
    """What to start. Paths are absolute; ``root`` is the clone deployed from, where the
    server, the simulator and the Prefect CLI run, and every worker without a directory of its
    own in ``worker_dirs``."""

    root: Path
    home: Path  # PREFECT_HOME: the server's SQLite database lives here unless database_url
    logs: Path  # one log file per process
    port: int = 0  # the Prefect server's; 0 picks a free one
    database_url: str | None = None  # e.g. postgresql+asyncpg://user@host/db
    ledger_url: str | None = None  # the send ledger; default SQLite under home
    # An opt-out list every worker imports at each run (SURVEY_SUPPRESSION_LIST); none by default.
    suppression_list: Path | None = None
    workers: Sequence[str] = ("worker-1",)
    # Several machines on one host, by worker name: its clone (working directory, and where its
    # flows run through SURVEY_PROJECT_DIR), variables added to its environment (they win), and
    # the one work queue of the pool it polls (created at start; default: every queue).
    worker_dirs: Mapping[str, Path] = field(default_factory=dict)
    worker_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    worker_queues: Mapping[str, str] = field(default_factory=dict)
    worker_limit: int | None = None  # flow runs at once per worker
    api_key: str = field(default_factory=lambda: "sim-" + secrets.token_hex(8))
    use_secret_block: bool = True  # else the key is in the workers' environment
    poll_seconds: int = 2  # how often a worker asks for runs (Prefect's default is 10)
    # How often flow runs send heartbeats: deployments/automations.yaml crashes a deployment
    # run silent for 90 s, and Prefect's default (180 s) would crash every healthy long run.
    heartbeat_seconds: int = 30
    simulator_args: Sequence[str] = ()
    start_timeout: float = 120.0


class LocalStack:
    """Simulator, Prefect server, work pool, deployments and workers, as child processes."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.simulator_url = ""  # http://127.0.0.1:N/v1 once started
        self.processes: dict[str, subprocess.Popen[Any]] = {}
        self._logs: list[IO[Any]] = []
        # Each worker's own variables; restart_worker(name, env) changes them.
        self.extra_env: dict[str, dict[str, str]] = {
            name: dict(env) for name, env in config.worker_env.items()
        }

    # -- addresses and environments -------------------------------------------------------------

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    @property
    def simulator_admin_url(self) -> str:
        return self.simulator_url.rsplit("/v1", 1)[0]

    @property
    def ledger_url(self) -> str:
        return self.config.ledger_url or f"sqlite:///{self.config.home / 'ledger.sqlite'}"

    def cli_env(self) -> dict[str, str]:
        """For the Prefect CLI: this stack's server and home, nothing from the caller's shell."""
        env = clean_environ()
        env.update(
            PREFECT_HOME=str(self.config.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PWD=str(self.config.root),  # what {{ $PWD }} in prefect.yaml resolves to
        )
        return env

    def worker_dir(self, name: str) -> Path:
        """The clone a worker starts in: its own in ``worker_dirs``, else the root."""
        return Path(self.config.worker_dirs.get(name, self.config.root))

    def worker_env(self, name: str | None = None) -> dict[str, str]:
        """A worker's environment: the simulator, the ledger, its clone, then its own variables."""
        directory = self.config.root if name is None else self.worker_dir(name)
        env = self.cli_env()
        env.update(
            {
                "PWD": str(directory),
                PROJECT_DIR_ENV: str(directory),
                BASE_URL_ENV: self.simulator_url,
                LEDGER_URL_ENV: self.ledger_url,
                "PREFECT_WORKER_QUERY_SECONDS": str(self.config.poll_seconds),
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(self.config.heartbeat_seconds),
            }
        )
        if self.config.suppression_list is not None:  # else the flows read none
            env[SUPPRESSION_ENV] = str(self.config.suppression_list)
        if not self.config.use_secret_block:
            env[API_KEY_ENV] = self.config.api_key
        if name is not None:
            env.update(self.extra_env.get(name, {}))
        return env

    # -- processes --------------------------------------------------------------------------------

    def _log(self, name: str) -> IO[Any]:
        self.config.logs.mkdir(parents=True, exist_ok=True)
        handle = open(self.config.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.config.logs / f"{name}.log"
        if not path.exists():
            return f"(no log {path})"
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _spawn(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        stdout: Any = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[Any]:
        log = self._log(name)
        proc = subprocess.Popen(
            list(args),
            cwd=cwd or self.config.root,
            env=dict(env),
            stdout=stdout if stdout is not None else log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us only; we stop them in order
        )
        self.processes[name] = proc
        return proc

    def prefect(
        self, *args: str, timeout: float = 180.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the Prefect CLI against this stack, from the clone's root."""
        done = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=self.config.root,
            env=self.cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise StackError(
                f"prefect {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def start(self) -> LocalStack:
        try:
            self._start_simulator()
            self._start_server()
            self.prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
            for queue in dict.fromkeys(self.config.worker_queues.values()):
                self._create_queue(queue)
            if self.config.use_secret_block:
                self._save_secret()
            self.deploy()
            for name in self.config.workers:
                self.start_worker(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_simulator(self) -> None:
        args = ("--port", "0", "--api-key", self.config.api_key, *self.config.simulator_args)
        log = self._log("simulator")
        try:
            proc, self.simulator_url = start_process(
                *args,
                cwd=self.config.root,
                env=clean_environ(),
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # stopped in order by us, not by a terminal's Ctrl-C
            )
        except RuntimeError as exc:
            raise StackError(f"{exc}\n{self.log_tail('simulator')}") from None
        self.processes["simulator"] = proc

    def _start_server(self) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)

        def spawn() -> subprocess.Popen[Any]:
            env = self.cli_env()  # its API URL names the port: made again for a new one
            # A busy SQLite answers 503 ("retry"): say why in the server's log.
            env["PREFECT_SERVER_LOG_RETRYABLE_ERRORS"] = "true"
            env["PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT"] = "false"
            if self.config.database_url:
                env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.config.database_url
            args = [sys.executable, "-m", "prefect", "server", "start"]
            return self._spawn(
                "server", [*args, "--host", "127.0.0.1", "--port", str(self.port)], env
            )

        proc = spawn()
        retries = 0 if self.config.port else 3
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                # A free port found earlier may be taken by another process before the server
                # binds it (two test stacks starting at once): another free port, unless fixed.
                if retries and "already in use" in self.log_tail("server", 5):
                    retries -= 1
                    self.port = free_port()
                    proc = spawn()
                    continue
                raise StackError(
                    f"the Prefect server exited {proc.returncode}:\n{self.log_tail('server')}"
                )
            with contextlib.suppress(OSError, StackError):
                if self.api("GET", "/health") is True:
                    return
            time.sleep(0.5)
        raise StackError(
            f"the Prefect server did not answer in {self.config.start_timeout:.0f} s:"
            f"\n{self.log_tail('server')}"
        )

    def _save_secret(self) -> None:
        env = {**self.cli_env(), "_SURVEY_SECRET_VALUE": self.config.api_key}
        done = subprocess.run(
            [sys.executable, "-c", _SAVE_BLOCK_SCRIPT, SECRET_BLOCK],
            cwd=self.config.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(
                f"could not save the Secret block {SECRET_BLOCK!r}:\n{done.stderr[-3000:]}"
            )

    def _create_queue(self, queue: str) -> None:
        try:
            self.api("POST", f"/work_pools/{POOL}/queues", {"name": queue})
        except StackError as exc:
            if "HTTP 409" not in str(exc):  # 409: it exists already
                raise

    def deploy(self) -> subprocess.CompletedProcess[str]:
        """The documented command, from the clone's root."""
        return self.prefect("--no-prompt", "deploy", "--prefect-file", PREFECT_FILE, "--all")

    def start_worker(self, name: str) -> subprocess.Popen[Any]:
        """Start a worker in its clone; returns once the server has its first heartbeat."""
        args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--name", name]
        if self.config.worker_limit:
            args += ["--limit", str(self.config.worker_limit)]
        if name in self.config.worker_queues:
            args += ["--work-queue", self.config.worker_queues[name]]
        # A restarted worker is already known to the server: wait for a heartbeat of this one.
        since = datetime.now(UTC) - timedelta(seconds=1)
        proc = self._spawn(name, args, self.worker_env(name), cwd=self.worker_dir(name))
        deadline = time.monotonic() + self.config.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(f"worker {name} exited {proc.returncode}:\n{self.log_tail(name)}")
            workers = self.api("POST", f"/work_pools/{POOL}/workers/filter", {})
            if any(
                w["name"] == name and _after(w.get("last_heartbeat_time"), since) for w in workers
            ):
                return proc
            time.sleep(0.5)
        raise StackError(f"worker {name} did not report in:\n{self.log_tail(name)}")

    def stop_worker(self, name: str) -> None:
        """Stop one worker (and any flow run it still has)."""
        proc = self.processes.pop(name, None)
        if proc is not None:
            stop_process(proc)

    def restart_worker(
        self, name: str, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[Any]:
        """Stop a worker and start it again; ``env``, when given, replaces its own variables
        (a machine reconfigured, e.g. another ``SURVEY_DATA_DIR``)."""
        self.stop_worker(name)
        if env is not None:
            self.extra_env[name] = dict(env)
        return self.start_worker(name)

    def stop(self) -> None:
        """Workers first (they may be running flows), then the server, then the simulator."""
        order = sorted(self.processes, key=lambda n: {"server": 1, "simulator": 2}.get(n, 0))
        for name in order:
            stop_process(self.processes[name])
        self.processes.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP -------------------------------------------------------------------------------------

    def api(
        self, method: str, path: str, body: Any = None, waits: Sequence[float] = _BUSY_WAITS
    ) -> Any:
        """Call the Prefect REST API of this stack; JSON in, JSON out. A 503 is tried again
        after each of ``waits`` seconds."""
        return _http(method, self.api_url + path, body, waits)

    def answer(self, method: str, path: str, body: Any = None) -> tuple[int, str]:
        """(HTTP status, body as text) of a call to the Prefect API, whatever the status (for a
        test of what the server refuses); a busy server is asked again as ``create_flow_run``
        does, so a 503 comes back only when it stayed busy."""
        status, payload = _exchange(method, self.api_url + path, body, _CREATE_RUN_WAITS)
        return status, payload.decode()

    def create_flow_run(
        self,
        deployment: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        work_queue: str | None = None,
    ) -> str:
        """A run of ``flow-name/deployment-name`` scheduled now, in ``work_queue`` when given
        (then only the workers polling that queue take it), as the UI's Custom run creates it;
        returns the flow run's id. A busy server (503) is asked again, with the same
        idempotency key: should a refused attempt have stored the run after all, the server
        answers with that run rather than create a second one."""
        flow_name, _, name = deployment.partition("/")
        found = self.api("GET", f"/deployments/name/{flow_name}/{name}", waits=_CREATE_RUN_WAITS)
        body: dict[str, Any] = {
            "parameters": dict(parameters or {}),
            "idempotency_key": uuid.uuid4().hex,
        }
        if work_queue:
            body["work_queue_name"] = work_queue
        create = f"/deployments/{found['id']}/create_flow_run"
        run = self.api("POST", create, body, waits=_CREATE_RUN_WAITS)
        return str(run["id"])

    def wait_for_run(self, flow_run_id: str, timeout: float = 240) -> dict[str, Any]:
        """The flow run once in a final state (COMPLETED, FAILED, CRASHED or CANCELLED)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run: dict[str, Any] = self.api("GET", f"/flow_runs/{flow_run_id}")
            if run["state_type"] in FINAL_STATES:
                return run
            time.sleep(1)
        tails = "\n".join(f"--- {w} ---\n{self.log_tail(w, 40)}" for w in self.config.workers)
        raise StackError(f"flow run {flow_run_id} not finished after {timeout:.0f} s:\n{tails}")

    def simulator_state(self) -> dict[str, Any]:
        """What the simulator accepted (``sends``, ``accepted_numbers``, ...)."""
        state: dict[str, Any] = _http("GET", self.simulator_admin_url + "/_sim/state")
        return state


def _after(stamp: str | None, since: datetime) -> bool:
    """Whether an ISO 8601 time from the Prefect API is later than ``since``."""
    if not stamp:
        return False
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since


def _http(method: str, url: str, body: Any = None, waits: Sequence[float] = _BUSY_WAITS) -> Any:
    """JSON in, JSON out; ``StackError`` for an answer that is not a success (a 503 is asked
    again after each of ``waits`` seconds first)."""
    status, payload = _exchange(method, url, body, waits)
    if not 200 <= status < 300:
        raise StackError(f"{method} {url}: HTTP {status} {payload[:500]!r}")
    return json.loads(payload) if payload else None


def _exchange(method: str, url: str, body: Any, waits: Sequence[float]) -> tuple[int, bytes]:
    """(HTTP status, body) of a call, whatever the status, once the server is not busy: a 503
    is asked again after each of ``waits`` seconds, and returned after the last."""
    data = None if body is None else json.dumps(body).encode()
    for wait in (*waits, None):
        request = urllib.request.Request(  # noqa: S310 - our own 127.0.0.1 servers
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or wait is None:
                return exc.code, exc.read()
            _pause(wait)
    raise AssertionError("unreachable")


# -- make server ---------------------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM as well as Ctrl-C: the children run in sessions of their own, only we stop them.
    raise KeyboardInterrupt


def main() -> int:
    state = REPO / "data" / "state"
    # The simulator starts empty every time, and so does the ledger of `make server` (with its
    # never-text store): remembered sends would hold back the sample numbers for a month. The
    # suppression list of earlier versions goes too.
    for leftover in [*state.glob("server-ledger.sqlite*"), state / "server-suppression.csv"]:
        leftover.unlink(missing_ok=True)
    config = StackConfig(
        root=REPO,
        home=state / "prefect-server",  # keeps the runs' history from one start to the next
        logs=state / "server-logs",
        port=DEFAULT_UI_PORT if port_is_free(DEFAULT_UI_PORT) else free_port(),
        ledger_url=f"sqlite:///{state / 'server-ledger.sqlite'}",
        api_key=DEFAULT_API_KEY,
    )
    stack = LocalStack(config)
    for s in (signal.SIGINT, signal.SIGTERM):  # even where a launcher left SIGINT ignored
        signal.signal(s, _interrupt)
    print(
        "Starting the gateway simulator, a Prefect server, the deployments and a worker "
        "(about a minute) ...",
        flush=True,
    )
    try:
        stack.start()
        print(
            f"""
Prefect UI            {stack.ui_url}
  Deployments > weekly-survey > Run > Custom run: fill in the form, Submit, and open the run;
  its Artifacts tab has the campaign's summary, one row per API call and the report's folder.
Gateway simulator     {stack.simulator_url}
  what it received:   {stack.simulator_admin_url}/_sim/state
API key               in the Secret block '{SECRET_BLOCK}' (the simulator's test key)
Reports               {REPO / "data" / "reports"}/<campaign>/
Logs                  {config.logs}/

Ctrl-C stops everything.""",
            flush=True,
        )
        while True:
            time.sleep(1)
            dead = [n for n, p in stack.processes.items() if p.poll() is not None]
            if dead:
                print(f"error: {', '.join(dead)} stopped; see {config.logs}/", file=sys.stderr)
                return 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        print("Stopping ...", flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
