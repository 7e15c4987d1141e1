"""The wire: one pooled ``requests`` session, the whole-call deadline, the body cap, and how a
call that raised ended. Nothing here reads what an answer means (``_parse``, ``outcome``).

- ``Transport.exchange`` makes one request and returns the ``Exchange`` it produced; it raises
  nothing, so no ``requests`` exception (whose text holds the URL, hence the key) escapes.
- urllib3's connection classes are subclassed (``_Watched``) to note when the request's first
  byte is written and to arm the deadline once it is out: a server dripping its headers a byte
  at a time cannot hold a worker past the deadline, and a failure is read as "may have landed"
  from that moment only (``outcome.may_have_landed``), never from an error's text.
- TLS verification stays on; proxies and the CA bundle come from the environment, read once.
- ``install_log_redaction`` stars ``apiKey=...`` out of the GET URLs urllib3 logs at DEBUG.

Private to the package: ``client.py`` is its one user.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from smspartner._parse import retry_after_seconds
from smspartner.models import Exchange, public_url
from smspartner.outcome import Ending, may_have_landed

log = logging.getLogger("smspartner")

# --- log redaction ------------------------------------------------------------------------------

_URLLIB3_LOGGERS: Final = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)
_APIKEY_IN_TEXT: Final = re.compile(r"""(?i)(api_?key["']?\s*[=:]\s*["']?)[^&\s'",}]+""")


class RedactApiKey(logging.Filter):
    """Rewrites a record whose message holds ``apiKey=...`` so the value reads ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        if "apikey" in text.lower() or "api_key" in text.lower():
            record.msg = _APIKEY_IN_TEXT.sub(r"\1***", text)
            record.args = None
        return True


def install_log_redaction() -> None:
    """Attach ``RedactApiKey`` to urllib3's loggers (idempotent).

    urllib3 logs ``"GET /v1/me?apiKey=... HTTP/1.1" 200`` at DEBUG; logger-level filters run
    before any handler, so every handler sees the redacted text.
    """
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactApiKey) for f in logger.filters):
            logger.addFilter(RedactApiKey())


install_log_redaction()


# --- the whole-call deadline and the write watch -----------------------------------------------


class _Watch:
    """One call on the wire. Holds the whole-call deadline: a timer that shuts the call's socket
    down when it passes, so a server dripping its status line or headers a byte at a time (each
    within the read timeout) cannot hold a worker past the deadline. And whether the request's
    first byte was written: a failure before that proves nothing left, any failure after it may
    come after the gateway acted (``smspartner.outcome.may_have_landed``)."""

    def __init__(self, until: float) -> None:
        self.until = until
        self.expired = False
        self.written = False
        self._timer: threading.Timer | None = None

    def arm(self, sock: socket.socket | None) -> None:
        if sock is None or self._timer is not None:
            return

        def expire() -> None:
            self.expired = True
            with contextlib.suppress(OSError):  # already closed: nothing left to stop
                sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(max(0.0, self.until - time.monotonic()), expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


_calls = threading.local()  # the current call's _Watch, per worker thread


class _Watched:
    """Records on the current call's watch when the request starts to be written, and arms its
    deadline once the request is out, before the answer is read."""

    sock: socket.socket | None

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is None:
            # A new plain-HTTP connection is opened lazily by the first write: open it (and for
            # HTTPS the pool already did, handshake included) before anything counts as written.
            self.connect()  # type: ignore[attr-defined]
        watch = getattr(_calls, "watch", None)
        if watch is not None:
            watch.written = True
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        watch = getattr(_calls, "watch", None)
        if watch is not None:
            watch.arm(self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """Requests' adapter with connections that honour the whole-call deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


# --- how a call that raised ended ---------------------------------------------------------------

# Exception types for each ending, most specific first (NameResolutionError is a
# NewConnectionError, which is a ConnectTimeoutError; RemoteDisconnected is both a reset and an
# HTTPException; a TLS failure wrapped in a reset is TLS).
_ENDING_TYPES: Final[tuple[tuple[Ending, tuple[type[BaseException], ...]], ...]] = (
    (Ending.DNS, (urllib3.exceptions.NameResolutionError, socket.gaierror)),
    (Ending.REFUSED, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)),
    (
        Ending.CONNECT_TIMEOUT,
        (urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout),
    ),
    (Ending.TLS, (ssl.SSLError, urllib3.exceptions.SSLError, requests.exceptions.SSLError)),
    (
        Ending.READ_TIMEOUT,
        (urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError),
    ),
    (Ending.CUT, (http.client.IncompleteRead, requests.exceptions.ChunkedEncodingError)),
    (Ending.RESET, (ConnectionError,)),
    (
        Ending.PROTOCOL,
        (
            http.client.HTTPException,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.HeaderParsingError,
        ),
    ),
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and those it wraps (requests wraps urllib3, which wraps the socket's)."""
    found: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(found) < 16:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is f for f in found):
            continue
        found.append(item)
        todo.append(getattr(item, "reason", None))  # MaxRetryError, NewConnectionError...
        todo.extend(item.args)
        todo.extend((item.__cause__, item.__context__))
    return found


def ending_of(exc: BaseException) -> Ending:
    """How a call ended, from the types of the exception and of what it wraps (pure; never from
    an error's text, which OpenSSL words the same before and after the request is written)."""
    causes = _causes(exc)
    for ending, types in _ENDING_TYPES:
        if any(isinstance(cause, types) for cause in causes):
            return ending
    return Ending.OTHER


_SAID: Final = {
    Ending.REFUSED: "connection refused",
    Ending.DNS: "name not found",
    Ending.CONNECT_TIMEOUT: "connect timeout",
    Ending.TLS: "TLS error",
    Ending.RESET: "connection reset",
    Ending.PROTOCOL: "an answer that is not HTTP",
    Ending.READ_TIMEOUT: "read timeout",
    Ending.CUT: "answer cut",
    Ending.TOO_LARGE: "answer too large",
    Ending.DEADLINE: "deadline passed",
    Ending.OTHER: "transport error",
}


def _lost(where: str, exc: BaseException, written: bool, read_timeout: float) -> Exchange:
    """The exchange of a call that raised before its answer came (never the exception's text,
    which holds the URL and so the key)."""
    ending = ending_of(exc)
    landed = may_have_landed(ending, written)
    if ending is Ending.READ_TIMEOUT:
        what = f"no answer within {read_timeout:g}s"
    elif not landed:
        what = f"could not connect ({_SAID[ending]})"
    else:
        what = f"connection lost after sending ({_SAID[ending]})"
    return Exchange(None, connected=landed, failure=f"{where}: {what}")


# --- the session --------------------------------------------------------------------------------


def _session(public_base: str, auth: tuple[str, str] | None, pool_size: int) -> requests.Session:
    """A session for the gateway: pooled, TLS verified, no compression, no retries of its own."""
    session = requests.Session()
    # The environment (proxies, CA bundle) is read once here rather than on every request:
    # requests re-reads it per call, which cost more CPU than the call on a busy fan-out.
    session.proxies = requests.utils.get_environ_proxies(public_base)
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.trust_env = False
    if auth is not None:
        session.auth = auth
    session.headers.update(
        {
            "Accept": "application/json",
            # No compression: the body cap counts the bytes a decoder would hand us.
            "Accept-Encoding": "identity",
            "User-Agent": "sms-survey-campaigns/smspartner",
        }
    )
    # urllib3 must not retry on its own: retrying lives in the client's _call, in one layer.
    adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """One pooled session to ``base_url``; thread-safe (no per-call state on the object)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: tuple[float, float],
        deadline: float,
        max_body: int,
        pool_size: int,
    ) -> None:
        # Credentials in the URL (a proxy's or a gateway's basic auth) become the session's auth
        # and leave the URL, which messages, logs and repr show.
        split = urlsplit(base_url)
        auth = (
            (split.username or "", split.password or "")
            if split.username or split.password
            else None
        )
        self.base_url = public_url(base_url).rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.max_body = max_body
        self._session = _session(self.base_url, auth, pool_size)
        install_log_redaction()

    def close(self) -> None:
        self._session.close()

    def exchange(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> Exchange:
        """One HTTP request and its answer as received, nothing raised: no requests exception
        (whose text holds the URL and so the key) reaches the caller. The body is read within
        ``max_body`` bytes and the whole call within ``deadline`` seconds, so a huge or dripping
        answer cannot hold memory or a worker."""
        where = f"{method} {path}"
        started = time.monotonic()
        watch = _calls.watch = _Watch(started + self.deadline)
        try:
            exchange = self._exchange_within(where, method, path, query, body, watch, started)
        finally:
            watch.cancel()
            _calls.watch = None
        if watch.expired:  # armed once the request is out: what it did is unknown
            failure = f"{where}: answer not complete within {self.deadline:g}s"
            landed = may_have_landed(Ending.DEADLINE, watch.written)
            exchange = replace(exchange, connected=landed, failure=failure)
        elapsed = time.monotonic() - started
        log.debug("%s %s -> %s in %.3fs", method, path, exchange.status, elapsed)
        return exchange

    def _exchange_within(
        self,
        where: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        watch: _Watch,
        started: float,
    ) -> Exchange:
        try:
            response = self._session.request(
                method,
                f"{self.base_url}/{path}",
                params=query,
                json=dict(body) if body is not None else None,
                timeout=self.timeout,
                allow_redirects=False,  # a redirect would carry the key to another URL
                stream=True,
            )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            return _lost(where, exc, watch.written, self.timeout[1])
        return self._read(where, response, watch, started)

    def _read(
        self, where: str, response: requests.Response, watch: _Watch, started: float
    ) -> Exchange:
        status = response.status_code
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        parts: list[bytes] = []
        failure = ""
        ending: Ending | None = None
        try:
            ending, failure = self._read_body(where, response, parts, started)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            ending = ending_of(exc)
            how = "" if ending is Ending.CUT else f" ({_SAID[ending]})"
            failure = f"{where}: answer cut{how}"
        finally:
            response.close()
        landed = ending is None or may_have_landed(ending, watch.written)
        return Exchange(status, b"".join(parts), retry_after, connected=landed, failure=failure)

    def _read_body(
        self, where: str, response: requests.Response, parts: list[bytes], started: float
    ) -> tuple[Ending | None, str]:
        """Read the body into ``parts`` until its end, the body cap or the deadline: (how the
        read stopped early, what to say) or (None, "") for a whole body."""
        size = 0
        while True:
            if time.monotonic() - started > self.deadline:
                return Ending.DEADLINE, f"{where}: answer not complete within {self.deadline:g}s"
            block = response.raw.read1(65536)
            if not block:
                return None, ""
            size += len(block)
            if size > self.max_body:
                return Ending.TOO_LARGE, f"{where}: answer larger than {self.max_body} bytes"
            parts.append(block)
