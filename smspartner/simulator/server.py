"""The simulator on the network: an HTTP/1.1 keep-alive server in a daemon thread
(``SimulatorServer``, ``run_simulator``), or in a process of its own (``start_process``, which
runs ``python -m smspartner.simulator``).

The request line holds the query string, hence the key: only paths are logged, at DEBUG, on the
``smspartner.simulator`` logger.
"""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from smspartner.simulator import admin, api
from smspartner.simulator.reply import Reply, fail
from smspartner.simulator.state import SimulatorState

__all__ = ["SimulatorServer", "run_simulator", "start_process"]

log = logging.getLogger("smspartner.simulator")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool reuses connections
    # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        reply = self._reply(method, split.path, split.query, raw)
        if reply.close:
            self._abort()
            return
        payload = reply.payload()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", f"{reply.content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a read timeout shorter than a slow send): expected.
            log.debug("client gone before the answer to %s", split.path)
            self.close_connection = True

    def _reply(self, method: str, path: str, query_string: str, raw: bytes) -> Reply:
        state = self.server.state
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        if path.startswith("/_sim/"):
            return admin.answer(state, method, path[len("/_sim/") :], raw)
        if path.startswith("/v1/"):
            latency = state.faults.latency_ms
            if latency > 0:
                time.sleep(latency / 1000)
            return api.answer(state, method, path[len("/v1/") :], query, raw)
        return fail(404, "Not found", 404)

    def _abort(self) -> None:
        # Linger 0 makes close() send a RST: the client sees a dead connection, not an answer.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line holds the query string, hence the key: log the path only.
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        # http.server's own messages may quote the raw request line; keep them out of logs.
        return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        self.state = state
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        with self.state.lock:
            self.state.connections_opened += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts in tests) are expected; no traceback on stderr.
        log.debug("connection error from a client", exc_info=True)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SimulatorServer:
    """Runs the simulator on ``host:port`` (port 0 picks a free one) in a daemon thread."""

    def __init__(
        self, state: SimulatorState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.state = state or SimulatorState()
        self.host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``SMSPartnerClient``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}/_sim"

    def start(self) -> SimulatorServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._port), self.state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="smspartner-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_open_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def run_simulator(**state_kwargs: Any) -> Iterator[SimulatorServer]:
    """A started simulator on a free port of 127.0.0.1, stopped on exit."""
    with SimulatorServer(SimulatorState(**state_kwargs)) as server:
        yield server


def start_process(
    *args: str, timeout: float = 30.0, **popen: Any
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m smspartner.simulator ARGS`` as a process of its own and return it
    with its URL once it listens (the demo, ``make server`` and the benchmarks use it).
    ``popen`` goes to ``subprocess.Popen`` (cwd, env, stderr...); stdout is read here."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "smspartner.simulator", *args], stdout=subprocess.PIPE, **popen
    )
    stdout = proc.stdout
    assert stdout is not None
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)  # a child that hangs must not hang its parent
    line = (got[0] if got else b"").decode(errors="replace")
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line.strip() or 'no answer'}")
    return proc, line.rsplit(" ", 1)[-1].strip()
