"""``scripts.server.LocalStack`` against a stand-in of Prefect's REST API (no Prefect server):
creating a run rides a busy server's 503 answers without ever creating two runs, and gives up
on anything else at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts import server
from scripts.server import LocalStack, StackConfig, StackError

CREATE = "/api/deployments/dep-1/create_flow_run"
BUSY = 503  # Prefect's "try again": nothing was stored


class FakePrefect(ThreadingHTTPServer):
    """Finds deployment ``f/d`` (id ``dep-1``); answers its create_flow_run with ``answers``,
    one status per POST (the last one repeated), and a run whose id is ``run-<n>``."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.posts: list[dict[str, Any]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakePrefect

    def do_GET(self) -> None:
        if self.path == "/api/deployments/name/f/d":
            self._answer(200, {"id": "dep-1"})
        else:
            self._answer(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != CREATE:
            self._answer(404, {"detail": "Not Found"})
            return
        self.server.posts.append(body)
        answers = self.server.answers
        status = answers[min(len(self.server.posts), len(answers)) - 1]
        if status == 201:
            self._answer(201, {"id": f"run-{len(self.server.posts)}"})
        elif status == BUSY:
            self._answer(status, {"exception_message": "Service Unavailable"})
        else:
            self._answer(status, {"detail": f"refused with {status}"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep the test's output quiet


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses between attempts, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(server, "_pause", slept.append)
    return slept


@contextmanager
def fake_prefect(answers: list[int]) -> Iterator[FakePrefect]:
    httpd = FakePrefect(answers)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def stack_on(httpd: FakePrefect, tmp_path: Path) -> LocalStack:
    port = int(httpd.server_address[1])
    return LocalStack(StackConfig(root=tmp_path, home=tmp_path, logs=tmp_path, port=port))


WAITS = list(server._CREATE_RUN_WAITS)


@pytest.mark.parametrize(
    ("answers", "run_id", "slept"),
    [
        pytest.param([201], "run-1", [], id="at-once"),
        pytest.param([BUSY, 201], "run-2", WAITS[:1], id="one-busy"),
        # More 503s in a row than any other call of the stack rides (4 waits).
        pytest.param([BUSY] * 5 + [201], "run-6", WAITS, id="a-long-busy-spell"),
    ],
)
def test_creating_a_run_rides_a_busy_server(
    answers: list[int], run_id: str, slept: list[float], waits: list[float], tmp_path: Path
) -> None:
    with fake_prefect(answers) as httpd:
        stack = stack_on(httpd, tmp_path)
        assert stack.create_flow_run("f/d", {"n": 1}, work_queue="q") == run_id
        assert waits == slept
        # Every attempt is the same request: one idempotency key, so a 503 that stored the run
        # after all cannot lead to a second run.
        assert len(httpd.posts) == len(answers)
        assert all(post == httpd.posts[0] for post in httpd.posts)
        first = httpd.posts[0]
        assert first["parameters"] == {"n": 1} and first["work_queue_name"] == "q"
        assert len(first["idempotency_key"]) == 32


def test_two_runs_created_one_after_the_other_carry_two_keys(
    waits: list[float], tmp_path: Path
) -> None:
    with fake_prefect([201]) as httpd:
        stack = stack_on(httpd, tmp_path)
        stack.create_flow_run("f/d")
        stack.create_flow_run("f/d")
        keys = {post["idempotency_key"] for post in httpd.posts}
        assert len(keys) == 2


@pytest.mark.parametrize(
    ("answers", "posts", "said"),
    [
        pytest.param([BUSY], len(WAITS) + 1, "HTTP 503", id="busy-past-the-last-wait"),
        pytest.param([409], 1, "HTTP 409", id="a-refusal-is-not-retried"),
        pytest.param([500], 1, "HTTP 500", id="a-crash-is-not-retried"),
    ],
)
def test_creating_a_run_gives_up_with_the_server_answer(
    answers: list[int], posts: int, said: str, waits: list[float], tmp_path: Path
) -> None:
    with fake_prefect(answers) as httpd:
        stack = stack_on(httpd, tmp_path)
        with pytest.raises(StackError, match=said):
            stack.create_flow_run("f/d")
        assert len(httpd.posts) == posts
        assert waits == WAITS[: posts - 1]


def test_other_calls_keep_their_shorter_patience(waits: list[float], tmp_path: Path) -> None:
    with fake_prefect([BUSY]) as httpd:
        stack = stack_on(httpd, tmp_path)
        with pytest.raises(StackError, match="HTTP 503"):
            stack.api("POST", "/deployments/dep-1/create_flow_run", {})
        assert waits == list(server._BUSY_WAITS)
        assert len(httpd.posts) == len(server._BUSY_WAITS) + 1


@pytest.mark.parametrize(
    ("answers", "status", "slept"),
    [
        pytest.param([409], 409, [], id="a-refusal-comes-back-at-once"),
        pytest.param([BUSY, BUSY, 201], 201, WAITS[:2], id="busy-then-created"),
        pytest.param([BUSY], 503, WAITS, id="busy-past-the-last-wait"),
    ],
)
def test_answer_gives_any_status_once_the_server_is_not_busy(
    answers: list[int], status: int, slept: list[float], waits: list[float], tmp_path: Path
) -> None:
    with fake_prefect(answers) as httpd:
        stack = stack_on(httpd, tmp_path)
        got, text = stack.answer("POST", "/deployments/dep-1/create_flow_run", {"x": 1})
        assert got == status
        said = {
            201: {"id": f"run-{len(httpd.posts)}"},
            409: {"detail": "refused with 409"},
            503: {"exception_message": "Service Unavailable"},
        }
        assert json.loads(text) == said[status]
        assert waits == slept
        assert httpd.posts == [{"x": 1}] * (len(slept) + 1)
