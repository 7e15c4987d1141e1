"""What the simulator answers: one HTTP reply, and the API's two error envelopes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as-is instead of JSON-encoding ``body``
    content_type: str = "application/json"
    close: str | None = None  # "reset" or "drop": close the connection without answering

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def fail(code: int, message: str, status: int = 200) -> Reply:
    """The API's envelope for a refusal: ``success`` false and its code."""
    return Reply(status, {"success": False, "code": code, "message": message})


def invalid(errors: list[tuple[str, str]], code: int = 9) -> Reply:
    """The API's envelope for a request that does not validate: HTTP 400 and the error list."""
    items = [{"elementId": element, "message": text} for element, text in errors]
    return Reply(400, {"success": False, "code": code, "error": items})
