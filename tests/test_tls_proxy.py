"""A broken TLS proxy in front of the gateway: only a failure before the request was written is
"not sent".

A real TLS-terminating proxy on 127.0.0.1 (a test CA and certificate made here with
``cryptography``) forwards to the simulator over plain HTTP. Two ways it breaks:

- it forwards a send, then writes the gateway's answer as plain bytes on the TLS connection
  (OpenSSL reads them as ``WRONG_VERSION_NUMBER``, the text a failed handshake shows too): the
  send landed, so the chunk must be settled through the status endpoint, never sent again;
- it answers the TLS client hello with plain bytes: nothing was forwarded, the chunk is "not
  sent" and goes out once later.

The simulator's record is the judge: nobody texted twice, and the cost the run reports is what
the simulator charged.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from helpers import TEST_KEY, csv_of
from helpers import fault_mobiles as mobiles

from flows.survey_campaign import Limits, RecipientSource, send_survey_campaign
from smspartner import Kind, Refusal, SMSPartnerClient
from tasks import ledger as lg
from tasks.sending import SendSettings, send_chunk_once

PRICE = 0.038  # the gateway's real price; the campaign's configured estimate is 0.045
SEND_PATH = "/v1/sondage/to/send"


# --- a test CA and a certificate for 127.0.0.1 ------------------------------------------------


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) as PEM files in ``folder``."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test proxy CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "proxy.pem", folder / "proxy.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


# --- the proxy ---------------------------------------------------------------------------------


def read_request(stream: BinaryIO) -> tuple[str, str, dict[str, str], bytes] | None:
    """One HTTP/1.1 request (method, target, headers, body) from the stream; None at its end."""
    line = stream.readline(65537)
    if not line.strip():
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (header := stream.readline(65537)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return method, target, headers, body


class TlsProxy:
    """A TLS-terminating proxy on 127.0.0.1 in front of the simulator.

    ``break_handshakes``: that many of the first connections get plain bytes instead of the TLS
    server hello; nothing of theirs is forwarded. ``plain_after``: the sends (counted from 1 as
    they arrive) forwarded to the simulator and then answered with its answer in plain bytes on
    the established TLS connection, which is then closed. Everything else is proxied as is, with
    keep-alive.
    """

    def __init__(
        self,
        target_url: str,
        cert: Path,
        key: Path,
        *,
        break_handshakes: int = 0,
        plain_after: frozenset[int] = frozenset(),
    ) -> None:
        split = urlsplit(target_url)
        self.target = (split.hostname or "127.0.0.1", split.port or 80)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.break_handshakes = break_handshakes
        self.plain_after = plain_after
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._lock = threading.Lock()
        self.connections = 0
        self.broken_handshakes = 0
        self.sends = 0
        self.forwarded: list[str] = []  # "METHOD /path" of every request the simulator got
        self.plain_answers: list[tuple[int, int]] = []  # (send number, request on its connection)
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> TlsProxy:
        self._spawn(self._accept)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._listener.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            breaking = self.broken_handshakes < self.break_handshakes
            self.broken_handshakes += breaking
        if breaking:
            with raw:
                raw.recv(65536)  # the client hello, answered in plain HTTP
                raw.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        with tls, tls.makefile("rb") as stream, contextlib.suppress(OSError, ValueError):
            on_connection = 0
            while (request := read_request(stream)) is not None:
                on_connection += 1
                method, target, headers, body = request
                plain = False
                if method == "POST" and target.split("?")[0] == SEND_PATH:
                    with self._lock:
                        self.sends += 1
                        plain = self.sends in self.plain_after
                        if plain:
                            self.plain_answers.append((self.sends, on_connection))
                answer = self._forward(method, target, headers, body)
                if plain:
                    # The answer as plain bytes where TLS records belong: the client's TLS
                    # layer fails reading it, after the gateway acted.
                    os.write(tls.fileno(), answer)
                    return
                tls.sendall(answer)

    def _forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        upstream = http.client.HTTPConnection(*self.target, timeout=30)
        try:
            wanted = {k: v for k, v in headers.items() if k in ("content-type", "accept")}
            upstream.request(method, target, body=body or None, headers=wanted)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        with self._lock:
            self.forwarded.append(f"{method} {target.split('?')[0]}")
        head = f"HTTP/1.1 {answer.status} {answer.reason}\r\n"
        for name in ("Content-Type", "Retry-After"):
            if answer.getheader(name):
                head += f"{name}: {answer.getheader(name)}\r\n"
        head += f"Content-Length: {len(content)}\r\n\r\n"
        return head.encode("latin-1") + content


@pytest.fixture
def certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The proxy's certificate and key; the client trusts the test CA (REQUESTS_CA_BUNDLE)."""
    ca, cert, key = make_certificates(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    return cert, key


@contextlib.contextmanager
def proxy_for(simulator: Any, certificates: tuple[Path, Path], **how: Any) -> Iterator[TlsProxy]:
    with TlsProxy(simulator.url, *certificates, **how) as proxy:
        yield proxy


def charged(simulator: Any) -> float:
    return round(sum(s["cost"] for s in simulator.state.sends if not s["cancelled"]), 4)


NUMBERS = ["+33612345678", "+33612345679", "+33612345680"]


# --- the client, one call at a time ----------------------------------------------------------


def test_the_proxy_is_a_working_tls_proxy(simulator: Any, certificates: tuple[Path, Path]) -> None:
    with proxy_for(simulator, certificates) as proxy, SMSPartnerClient(TEST_KEY, proxy.url) as c:
        assert c.credits().balance == pytest.approx(simulator.state.credits)
        outcome = c.send_survey(NUMBERS, "S", tag="through")
        assert c.status_by_tag("through")
    assert outcome.kind is Kind.ACCEPTED
    assert proxy.forwarded == ["GET /v1/me", f"POST {SEND_PATH}", "GET /v1/bulk-status-by-tag"]
    assert proxy.connections == 1  # one kept-alive TLS connection


@pytest.mark.parametrize("reused", [False, True], ids=["new-connection", "kept-alive"])
def test_plain_bytes_after_a_forwarded_send_may_have_landed(
    simulator: Any, certificates: tuple[Path, Path], reused: bool
) -> None:
    with (
        proxy_for(simulator, certificates, plain_after=frozenset({1})) as proxy,
        SMSPartnerClient(TEST_KEY, proxy.url, max_retries=0) as client,
    ):
        if reused:
            client.credits()  # the send then goes over this connection, kept alive
        outcome = client.send_survey(NUMBERS, "S", tag="plain")
        found = client.status_by_tag("plain")
    assert proxy.plain_answers == [(1, 2 if reused else 1)]
    # The gateway accepted it: the answer proves nothing, so the send is unknown, not refused.
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert outcome.reason == "POST sondage/to/send: connection lost after sending (TLS error)"
    assert [s["tag"] for s in simulator.state.sends] == ["plain"]
    assert len(found) == 3


def test_a_handshake_broken_before_anything_is_forwarded_is_not_sent(
    simulator: Any, certificates: tuple[Path, Path]
) -> None:
    with (
        proxy_for(simulator, certificates, break_handshakes=1) as proxy,
        SMSPartnerClient(TEST_KEY, proxy.url, max_retries=0) as client,
    ):
        outcome = client.send_survey(NUMBERS, "S", tag="hello")
        assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)
        assert outcome.reason == "POST sondage/to/send: could not connect (TLS error)"
        assert proxy.forwarded == [] and simulator.state.sends == []
        again = client.send_survey(NUMBERS, "S", tag="hello")
    assert again.kind is Kind.ACCEPTED
    assert proxy.broken_handshakes == 1
    assert [s["tag"] for s in simulator.state.sends] == ["hello"]


# --- a campaign through the proxy ------------------------------------------------------------


def test_a_campaign_through_a_proxy_answering_in_plain_bytes_texts_nobody_twice(
    campaign_env: Path,
    simulator: Any,
    certificates: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    numbers = mobiles(600)
    simulator.state.cost_per_sms = PRICE
    with proxy_for(simulator, certificates, plain_after=frozenset({2, 5, 9})) as proxy:
        monkeypatch.setenv("SMSPARTNER_BASE_URL", proxy.url)
        state = send_survey_campaign(
            survey_id="tls",
            recipients=RecipientSource(path=str(csv_of(campaign_env / "r.csv", numbers))),
            campaign_id="tls-plain",
            limits=Limits(
                chunk_size=50,
                concurrency=4,
                retry_backoff=0.05,
                settle_seconds=1.0,
                settle_wait_seconds=30.0,
            ),
            return_state=True,
        )
    assert len(proxy.plain_answers) == 3  # three sends landed with an unreadable answer
    texted = Counter(simulator.state.accepted_numbers())
    assert set(texted) == set(numbers)
    assert max(texted.values()) == 1, f"{sum(c > 1 for c in texted.values())} texted twice"
    assert proxy.forwarded.count(f"POST {SEND_PATH}") == 12  # each chunk reached it once
    summary = state.result()
    assert summary["sent"] == 600 and summary["failed"] == 0
    assert summary["cost"] == pytest.approx(charged(simulator), abs=1e-6)
    assert summary["cost"] == pytest.approx(600 * PRICE, abs=1e-6)


def test_chunks_whose_handshake_broke_are_sent_once_later(
    tmp_path: Path, simulator: Any, certificates: tuple[Path, Path]
) -> None:
    ledger = lg.Ledger(f"sqlite:///{tmp_path}/ledger.sqlite")
    plan = [lg.ChunkPlan(i, "FR", None, tuple(mobiles(20, start=20 * i))) for i in range(3)]
    ledger.create_plan("tls-hello", "tls", plan)
    simulator.state.cost_per_sms = PRICE
    waits: list[float] = []
    with (
        proxy_for(simulator, certificates, break_handshakes=2) as proxy,
        SMSPartnerClient(TEST_KEY, proxy.url, max_retries=0) as client,
    ):
        settings = SendSettings(
            campaign_id="tls-hello",
            survey_id="tls",
            base_url=proxy.url,
            ledger_url=ledger.url,
            owner=lg.owner_token("tls"),
            cost_per_recipient=0.045,
        )
        results = [
            send_chunk_once(settings, i, client=client, ledger=ledger, sleep=waits.append)
            for i in range(3)
        ]
    ledger.close()
    # The first chunk's two first attempts never got past the handshake: not sent, tried again
    # after a wait; then every chunk went out once.
    assert proxy.broken_handshakes == 2 and len(waits) == 2
    assert [r.state for r in results] == ["sent"] * 3
    assert proxy.forwarded == [f"POST {SEND_PATH}"] * 3
    assert Counter(simulator.state.accepted_numbers()) == Counter(mobiles(60))
    assert round(sum(r.cost for r in results), 4) == pytest.approx(charged(simulator))
