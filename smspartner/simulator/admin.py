"""The test-control endpoints, outside ``/v1`` and without a key (the simulator's own, not the
vendor's): ``GET /_sim/state``, ``POST /_sim/faults`` (the ``FaultConfig`` fields; the faults
become exactly what was posted), ``POST /_sim/credits`` ``{"credits": x}``, ``POST /_sim/stop``
``{"numbers": [...]}``, ``POST /_sim/advance`` ``{"seconds": s}``, ``POST /_sim/canned``
``{"path", "status", "body", "headers", "times"}``, ``POST /_sim/reset``.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from smspartner.simulator.faults import FaultConfig
from smspartner.simulator.reply import Reply, fail
from smspartner.simulator.state import SimulatorState


def answer(state: SimulatorState, method: str, path: str, raw: bytes) -> Reply:
    """Answer one ``/_sim/<path>`` request."""
    path = path.strip("/")
    if method == "GET" and path == "state":
        return Reply(200, state.snapshot())
    if method != "POST":
        return fail(405, "Method not allowed", 405)
    try:
        body = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        return fail(90, "Malformed JSON", 400)
    if not isinstance(body, dict):
        return fail(90, "Malformed JSON", 400)
    try:
        refused = _apply(state, path, body)
    except (KeyError, TypeError, ValueError) as exc:
        return fail(400, f"Bad request: {type(exc).__name__}", 400)
    return refused or Reply(200, {"success": True, "code": 200})


def _apply(state: SimulatorState, path: str, body: dict[str, Any]) -> Reply | None:
    """Do what ``POST /_sim/<path>`` asks; a refusal, or None once done."""
    if path == "faults":
        return _set_faults(state, body)
    if path == "credits":
        with state.lock:
            state.credits = float(body["credits"])
    elif path == "stop":
        for number in body.get("numbers", []):
            state.add_stop(str(number))
    elif path == "advance":
        state.advance(float(body["seconds"]))
    elif path == "canned":
        state.add_canned(
            str(body["path"]),
            body.get("body"),
            status=int(body.get("status", 200)),
            headers=body.get("headers"),
            times=int(body.get("times", 1)),
        )
    elif path == "reset":
        state.reset()
    else:
        return fail(404, "Not found", 404)
    return None


def _set_faults(state: SimulatorState, body: dict[str, Any]) -> Reply | None:
    unknown = set(body) - {f.name for f in fields(FaultConfig)}
    if unknown:
        return fail(400, f"Unknown fault fields: {sorted(unknown)}", 400)
    try:
        state.faults = FaultConfig(**body)
    except (TypeError, ValueError) as exc:
        return fail(400, f"Bad faults: {exc}", 400)
    return None
