"""SMSPartnerClient against the simulator over real HTTP: parsing, error mapping, retries, secrecy.

Nothing is mocked. Odd answers (the vendor's own fixture bodies, HTML error pages, 429s) are
served by the simulator's canned-response hook; faults come from its FaultConfig; waits are
recorded through the client's ``sleep`` hook instead of slept.
"""

from __future__ import annotations

import ast
import http.client
import json
import logging
import re
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st

from smspartner import (
    AuthError,
    CancelError,
    InsufficientCredits,
    Kind,
    NotFound,
    RateLimited,
    Refusal,
    Rejected,
    SendOutcome,
    ServerError,
    SMSPartnerClient,
    SMSPartnerError,
    StatusEntry,
    TransportError,
    normalise_status,
    parse_gateway_date,
    schedule_at,
)
from smspartner._parse import error_type_of, interpret
from smspartner.client import ending_of, public_url
from smspartner.models import Exchange
from smspartner.outcome import Ending
from smspartner.simulator import FaultConfig, SimulatorServer, run_simulator

KEY = "sk-live-7Qw9-SECRET-zz81"
GATEWAY = Path(__file__).resolve().parents[1] / "smspartner"
PARIS = ZoneInfo("Europe/Paris")
NUMBERS = ["+33612345678", "0712345678", "+33698765432"]

# Verbatim copies of /work/shared/fixtures/smspartner/*.json (the bodies of SMS Partner's own Go
# client test data), kept here so the tests run from a plain clone; a test below checks the copies
# against the shared folder when it is present.
FIXTURES: dict[str, str] = {
    "bulk_status.json": """{
    "success": true,
    "code": 200,
    "message_id": "2270142",
    "StatutResponse_List": [{
        "phoneNumber": "+212620123456",
        "status": "Delivered",
        "stopSMS": false,
        "date": "1534615206"
    }]
}""",
    "cancel_sms.json": """{
    "success": true,
    "code": 200,
    "message": "L'envoi du SMS a été annulé."
}""",
    "credits.json": """{
    "code": 200,
    "credits": {
        "balance": "0.900",
        "creditHlr": 180,
        "creditSms": 20,
        "creditSmsLowCost": 37,
        "currency": "EUR",
        "solde": "0.900",
        "toSend": 0
    },
    "success": true,
    "user": {
        "username": "example@gmail.com"
    }
}""",
    "multi_status.json": """{
    "success": true,
    "code": 200,
    "StatutResponse_List": [{
            "success": true,
            "code": 200,
            "phoneNumber": "+212620123456",
            "messageId": 2270142,
            "status": "Delivered",
            "date": "1534615206",
            "stopSms": "0",
            "isSpam": "0"
        },
        {
            "success": false,
            "code": 4,
            "phoneNumber": "+212621123456",
            "messageId": 2270110,
            "status": "Numéro introuvable"
        }
    ]
}""",
    "send_bulksms.json": """{
    "success": true,
    "code": 200,
    "message_id": 2254444,
    "currency": "EUR",
    "cost": 0.076,
    "nbSMS": 2,
    "SMSResponse_List": [{
            "success": true,
            "code": 200,
            "nbSms": 1,
            "cost": 0.038,
            "phoneNumber": "+336xxxxxxx1"
        },
        {
            "success": true,
            "code": 200,
            "nbSms": 1,
            "cost": 0.038,
            "phoneNumber": "+336xxxxxxx2"
        }
    ]
}""",
    "send_sms.json": """{
    "success": true,
    "code": 200,
    "message_id": 2270142,
    "nb_sms": 1,
    "cost": 0.04,
    "currency": "EUR",
    "scheduledDeliveryDate": "2018-08-18 20:00:00"
}""",
    "send_sms_error.json": """{
    "success": false,
    "code": 9,
    "error": [{
        "elementId": "children[message].data",
        "message": "Le message est requis"
    }, {
        "elementId": "children[phoneNumbers].data",
        "message": "Ce numero de telephone n'est pas valide (922264)"
    }, {
        "elementId": "children[sender].data",
        "message": "L'emetteur ne peut pas etre plus long que 11 caracteres"
    }, {
        "elementId": "children[scheduledDeliveryDate].data",
        "message": "La date (21/11/2014 \\u00e0 :) est anterieure a la date actuelle."
    }, {
        "elementId": "children[minute].data",
        "message": "La minute est requise"
    }, {
        "elementId": "children[time].data",
        "message": "L'heure est requise"
    }]
}""",
    "status.json": """{
    "success": true,
    "code": 200,
    "number": "+212620123456",
    "messageId": "2270142",
    "stopSms": false,
    "date": "1534615206",
    "statut": "Delivered",
    "cost": 0.04,
    "countryCode": "MA",
    "currency": "EUR"
}""",
}
SHARED_FIXTURES = Path("/work/shared/fixtures/smspartner")
TS_1534615206 = datetime(2018, 8, 18, 18, 0, 6, tzinfo=UTC)
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)  # the simulator's clock in these tests


def fixture(name: str) -> dict:
    return json.loads(FIXTURES[name])


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with run_simulator(api_keys=[KEY], credits=100.0, clock=lambda: T0) as server:
        yield server


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make_client(
    sim: SimulatorServer, waits: list[float]
) -> Iterator[Callable[..., SMSPartnerClient]]:
    made: list[SMSPartnerClient] = []

    def make(**kwargs: object) -> SMSPartnerClient:
        options: dict = {
            "timeout": (1.0, 2.0),
            "max_retries": 3,
            "backoff": 0.01,
            "sleep": waits.append,
        }
        options.update(kwargs)
        base_url = str(options.pop("base_url", sim.url))
        api_key = str(options.pop("api_key", KEY))
        client = SMSPartnerClient(api_key, base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., SMSPartnerClient]) -> SMSPartnerClient:
    return make_client()


def v1_requests(sim: SimulatorServer, path: str | None = None) -> list[dict]:
    return [r for r in sim.state.requests if path is None or r["path"] == path]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def next_slot(hours: int = 24) -> datetime:
    """A delivery slot ``hours`` after the simulator's (fixed) time."""
    return T0 + timedelta(hours=hours)


def quoted_values(outcome: SendOutcome, element: str = "phoneNumbers") -> list[str]:
    """The values the validation messages about ``element`` quote in parentheses."""
    found: list[str] = []
    for element_id, text in outcome.errors:
        if element in element_id:
            found.extend(m.strip() for m in re.findall(r"\(([^()]*)\)", text))
    return found


def assert_outcome_has_no_key(outcome: SendOutcome) -> None:
    texts = [outcome.reason, repr(outcome), str(outcome)]
    texts += [f"{e} {m}" for e, m in outcome.errors]
    for text in texts:
        assert KEY not in text


class LocalServer(ThreadingHTTPServer):
    """A throwaway HTTP server on 127.0.0.1 for answers the simulator does not give."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.stop = threading.Event()
        self.seen: list[dict[str, str]] = []  # headers of each request a handler served

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[LocalServer]:
    server = LocalServer(handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        return

    def take_request(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append(dict(self.headers))


class DripBodyHandler(QuietHandler):
    """Headers at once, then one byte of a 1000-byte body every 0.2 s."""

    def drip(self) -> None:
        self.take_request()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                if self.server.stop.wait(0.2):
                    break
                self.wfile.write(b" ")
        except OSError:
            pass  # the client gave up: what the test wants
        self.close_connection = True

    do_GET = do_POST = drip


class DripHeadersHandler(QuietHandler):
    """The status line and headers one byte every 0.2 s: each read is within the read timeout,
    only a deadline on the whole call stops it."""

    def drip(self) -> None:
        self.take_request()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"x" * 200
        try:
            for byte in head:
                if self.server.stop.wait(0.2):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except OSError:
            pass  # the client gave up: what the test wants
        self.close_connection = True

    do_GET = do_POST = drip


class PlainJSONHandler(QuietHandler):
    """A plain-HTTP server (no TLS) answering every request with an accepted send."""

    def answer(self) -> None:
        self.take_request()
        payload = json.dumps(fixture("send_sms.json")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = answer


# --- happy paths against the simulator -------------------------------------------------------


def test_credits_reads_balance_and_counts(client: SMSPartnerClient) -> None:
    credits = client.credits()
    assert credits.balance == pytest.approx(100.0)
    assert credits.currency == "EUR"
    assert credits.credit_sms == int(100.0 / 0.045)
    assert credits.to_send == 0


def test_send_survey_is_recorded_as_sent_and_charged(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    result = client.send_survey(NUMBERS, "SURVEY-42", tag="c1-chunk-0001")

    assert result.message_id is not None
    assert (result.nb_sms, result.cost, result.currency) == (3, pytest.approx(0.135), "EUR")
    assert result.scheduled is None
    [send] = sim.state.sends
    assert send["message_id"] == result.message_id
    assert send["numbers"] == NUMBERS
    assert (send["tag"], send["survey_id"], send["schedule"]) == (
        "c1-chunk-0001",
        "SURVEY-42",
        None,
    )
    assert sim.state.accepted_numbers() == ["+33612345678", "+33712345678", "+33698765432"]
    assert client.credits().balance == pytest.approx(100.0 - 0.135)


def test_scheduled_send_carries_the_paris_wall_clock_time(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    when = next_slot(hours=30)
    result = client.send_survey(NUMBERS[:1], "S", tag="sched", schedule=schedule_at(when))

    assert result.scheduled == when.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")
    assert parse_gateway_date(result.scheduled) == when
    [send] = sim.state.sends
    assert datetime.fromisoformat(send["scheduled_at"]) == when
    assert client.credits().to_send == 1


def test_stop_list_add_and_remove(client: SMSPartnerClient) -> None:
    assert client.stop_list() == []
    stop_id = client.add_stop("0611111111")
    assert stop_id is not None
    [entry] = client.stop_list()
    assert (entry.id, entry.phone_number) == (stop_id, "+33611111111")
    assert entry.created_at is not None
    assert client.add_stop("+33611111111") is None  # already listed: code 3, no error
    client.remove_stop(stop_id)
    assert client.stop_list() == []


def test_statuses_by_message_by_number_and_in_bulk(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sent = client.send_survey(NUMBERS, "S", tag="st")
    assert sent.message_id is not None
    waiting = client.status_by_message(sent.message_id)
    assert {e.status for e in waiting} == {"Waiting"}
    assert all(e.message_id == sent.message_id for e in waiting)

    sim.state.advance(60)
    by_message = client.status_by_message(sent.message_id)
    expected = {n: sim.state.planned_outcome(n) for n in sim.state.accepted_numbers()}
    assert {e.phone_number: (e.status, e.stop) for e in by_message} == expected

    one = client.message_status(sent.message_id, "+33612345678")
    assert (one.phone_number, one.message_id) == ("+33612345678", sent.message_id)
    assert (one.status, one.stop) == expected["+33612345678"]
    assert one.date is not None and one.date.tzinfo is not None

    pairs = [("+33612345678", sent.message_id), ("+33600000000", sent.message_id)]
    found, missing = client.multi_status(pairs)
    assert (found.status, found.stop) == expected["+33612345678"]
    assert missing.status == "Numéro introuvable"


def test_status_by_tag_follows_pagination(make_client: Callable[..., SMSPartnerClient]) -> None:
    with run_simulator(api_keys=[KEY], status_page_size=3) as small_pages:
        client = make_client(base_url=small_pages.url)
        numbers = [f"+336000000{i:02d}" for i in range(8)]
        client.send_survey(numbers[:5], "S", tag="paged")
        client.send_survey(numbers[5:], "S", tag="paged")

        entries = client.status_by_tag("paged")
        assert sorted(e.phone_number for e in entries) == numbers
        pages = [
            r["params"].get("page") for r in small_pages.state.requests if r["method"] == "GET"
        ]
        assert pages == [None, "2", "3"]
        assert len(client.status_by_tag("paged", page=3)) == 2


def test_status_by_tag_stops_when_the_gateway_ignores_the_page(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    page = {
        "success": True,
        "code": 200,
        "currentPage": 1,
        "total": 4,
        "StatutResponse_List": [
            {"phoneNumber": "+33600000001", "status": "Delivered", "stopSMS": False},
            {"phoneNumber": "+33600000002", "status": "Waiting", "stopSMS": False},
        ],
    }
    sim.state.add_canned("bulk-status-by-tag", page, times=5)
    assert len(client.status_by_tag("t")) == 2
    assert len(v1_requests(sim)) == 2


def test_cancel_a_scheduled_send_refunds_it(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    sent = client.send_survey(NUMBERS, "S", schedule=schedule_at(next_slot(hours=2)))
    assert sent.message_id is not None
    client.cancel(sent.message_id)
    assert sim.state.sends[0]["cancelled"] is True
    assert sim.state.accepted_numbers() == []
    assert client.credits().balance == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("setup", "expected_type", "code"),
    [
        ("unknown", NotFound, 4),
        ("cancelled", CancelError, 5),
        ("soon", CancelError, 6),
        ("immediate", CancelError, 7),
    ],
)
def test_cancel_errors_are_typed(
    client: SMSPartnerClient,
    sim: SimulatorServer,
    setup: str,
    expected_type: type[SMSPartnerError],
    code: int,
) -> None:
    message_id = 999_999
    if setup == "cancelled":
        sent = client.send_survey(NUMBERS[:1], "S", schedule=schedule_at(next_slot(hours=2)))
        assert sent.message_id is not None
        message_id = sent.message_id
        client.cancel(message_id)
    elif setup == "soon":
        sent = client.send_survey(NUMBERS[:1], "S", schedule=schedule_at(next_slot(hours=2)))
        assert sent.message_id is not None
        message_id = sent.message_id
        sim.state.advance(2 * 3600 - 4 * 60)  # the scheduled time is now < 5 minutes away
    elif setup == "immediate":
        sent = client.send_survey(NUMBERS[:1], "S")
        assert sent.message_id is not None
        message_id = sent.message_id

    with pytest.raises(expected_type) as caught:
        client.cancel(message_id)
    assert type(caught.value) is expected_type
    assert caught.value.code == code


def test_unknown_tag_is_not_found(client: SMSPartnerClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.status_by_tag("never-sent")
    assert caught.value.code == 4


def test_pooled_connection_is_reused(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    for i in range(10):
        client.credits()
        client.send_survey(NUMBERS[:1], "S", tag=f"reuse-{i}")
    assert sim.state.connections_opened == 1


# --- local validation: refused before any request --------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "kwargs"),
    [
        ([], {}),
        ([f"+336{i:08d}" for i in range(501)], {}),
        (NUMBERS, {"tag": "Has-Upper"}),
        (NUMBERS, {"tag": "has space"}),
        (NUMBERS, {"tag": "x" * 21}),
        (NUMBERS, {"tag": ""}),
        (["+33612345678", ""], {}),
        (["+33612345678,+33612345679"], {}),
        (NUMBERS, {"schedule": {"scheduledDeliveryDate": "2030-01-01", "time": 9, "minute": 0}}),
        (NUMBERS, {"schedule": {"scheduledDeliveryDate": "01/01/2030", "time": 9, "minute": 7}}),
        (NUMBERS, {"schedule": {"scheduledDeliveryDate": "01/01/2030", "time": 25, "minute": 0}}),
        (NUMBERS, {"schedule": {"scheduledDeliveryDate": "31/02/2030", "time": 9, "minute": 0}}),
        (NUMBERS, {"schedule": {"scheduledDeliveryDate": "01/01/2030", "time": 9}}),
    ],
)
def test_send_survey_validates_locally(
    client: SMSPartnerClient, sim: SimulatorServer, numbers: list[str], kwargs: dict
) -> None:
    with pytest.raises(ValueError):
        client.send_survey(numbers, "S", **kwargs)
    assert v1_requests(sim) == []


def test_a_single_string_is_not_a_list_of_numbers(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    with pytest.raises(TypeError):
        client.send_survey("+33612345678", "S")
    assert v1_requests(sim) == []


def test_500_numbers_is_allowed(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    result = client.send_survey([f"+336{i:08d}" for i in range(500)], "S")
    assert result.nb_sms == 500
    assert len(sim.state.accepted_numbers()) == 500


def test_schedule_at_uses_paris_time_and_5_minute_steps() -> None:
    summer = datetime(2030, 7, 1, 7, 5, tzinfo=UTC)  # 09:05 in Paris (UTC+2)
    assert schedule_at(summer) == {"scheduledDeliveryDate": "01/07/2030", "time": 9, "minute": 5}
    winter = datetime(2030, 1, 1, 23, 30, tzinfo=UTC)  # 00:30 the next day in Paris (UTC+1)
    assert schedule_at(winter) == {"scheduledDeliveryDate": "02/01/2030", "time": 0, "minute": 30}
    with pytest.raises(ValueError):
        schedule_at(datetime(2030, 7, 1, 7, 7, tzinfo=UTC))
    with pytest.raises(ValueError):
        schedule_at(datetime(2030, 7, 1, 7, 5))
    with pytest.raises(ValueError):  # 02:30 happens twice in Paris that night
        schedule_at(datetime(2030, 10, 27, 0, 30, tzinfo=UTC))


# --- the vendor's fixture bodies --------------------------------------------------------------


def test_fixture_copies_match_the_shared_folder() -> None:
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("shared fixtures folder not present")
    for name, text in FIXTURES.items():
        assert json.loads(text) == json.loads((SHARED_FIXTURES / name).read_text()), name


def test_fixture_send_sms(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    sim.state.add_canned("sondage/to/send", fixture("send_sms.json"))
    result = client.send_survey(NUMBERS[:1], "S")
    assert result == SendOutcome(
        Kind.ACCEPTED,
        "accepted",
        http_status=200,
        message_id=2270142,
        nb_sms=1,
        cost=0.04,
        currency="EUR",
        scheduled="2018-08-18 20:00:00",
    )
    assert not hasattr(result, "raw")  # the outcome is what the answer proves, not the answer
    assert len(v1_requests(sim)) == 1
    assert sim.state.sends == []  # a canned answer: the simulator itself sent nothing


def test_fixture_send_bulksms_counts_nbSMS(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    sim.state.add_canned("sondage/to/send", fixture("send_bulksms.json"))
    result = client.send_survey(NUMBERS[:2], "S")
    assert (result.message_id, result.nb_sms, result.cost) == (2254444, 2, 0.076)
    assert result.scheduled is None


def test_fixture_credits_with_string_balance_and_old_keys(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_canned("me", fixture("credits.json"))
    credits = client.credits()
    assert (credits.balance, credits.currency, credits.credit_sms, credits.to_send) == (
        0.9,
        "EUR",
        20,
        0,
    )
    assert credits.raw["credits"]["creditSmsLowCost"] == 37


def test_fixture_single_status_uses_statut_and_unix_date(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_canned("message-status", fixture("status.json"))
    entry = client.message_status(2270142, "+212620123456")
    assert entry == StatusEntry("+212620123456", "Delivered", False, TS_1534615206, 2270142)


def test_fixture_multi_status_with_string_flags_and_not_found(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_canned("multi-status", fixture("multi_status.json"))
    found, missing = client.multi_status([("+212620123456", 2270142), ("+212621123456", 2270110)])
    assert found == StatusEntry("+212620123456", "Delivered", False, TS_1534615206, 2270142)
    assert missing == StatusEntry("+212621123456", "Numéro introuvable", False, None, 2270110)


def test_fixture_bulk_status_with_string_message_id(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_canned("bulk-status", fixture("bulk_status.json"))
    [entry] = client.status_by_message(2270142)
    assert entry == StatusEntry("+212620123456", "Delivered", False, TS_1534615206, 2270142)


def test_fixture_cancel(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    sim.state.add_canned("message-cancel", fixture("cancel_sms.json"))
    client.cancel(2270142)
    assert v1_requests(sim, "message-cancel")[0]["params"] == {"messageId": "2270142"}


def test_fixture_validation_error_in_french(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    sim.state.add_canned("sondage/to/send", fixture("send_sms_error.json"), status=400)
    outcome = client.send_survey(NUMBERS[:1], "S")
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.CONTENT)
    assert (outcome.code, outcome.http_status) == (9, 400)
    assert (outcome.message_id, outcome.nb_sms, outcome.retry_after) == (None, None, None)
    assert len(outcome.errors) == 6
    assert ("children[minute].data", "La minute est requise") in outcome.errors
    assert quoted_values(outcome) == ["922264"]  # kept as sent in the raw validation list
    assert outcome.reason == "code 9; children[message].data: Le message est requis"
    assert "\n" not in outcome.reason
    assert len(v1_requests(sim)) == 1  # a refusal is final: not retried


# --- error mapping ----------------------------------------------------------------------------


def test_wrong_key_is_auth_error(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(api_key="not-the-key")
    with pytest.raises(AuthError) as caught:
        client.credits()
    assert (caught.value.code, caught.value.http_status) == (10, 200)
    assert caught.value.retryable is False

    outcome = client.send_survey(NUMBERS, "S")
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.ACCOUNT)
    assert (outcome.code, outcome.http_status, outcome.message_id) == (10, 200, None)
    assert outcome.reason.startswith("code 10")
    assert len(v1_requests(sim)) == 2
    assert waits == []
    assert sim.state.sends == []


@pytest.mark.parametrize(
    ("status", "body", "kind", "refusal", "code"),
    [
        (200, {"success": False, "code": 1, "message": "Clé API requise"}, "refused", "account", 1),
        (400, {"success": False, "code": 2, "message": "Numéro requis"}, "refused", "content", 2),
        (200, {"success": False, "code": 11, "message": "Crédits"}, "refused", "credits", 11),
        (200, {"success": False, "code": 22, "message": "Hors créneau"}, "refused", "slot", 22),
        (200, {"success": False, "code": 23, "message": "Jour interdit"}, "refused", "slot", 23),
        (
            200,
            {"success": False, "code": 96, "message": "IP non autorisée"},
            "refused",
            "account",
            96,
        ),
        (400, {"success": False, "code": 50, "message": "Maximum 500"}, "refused", "content", 50),
        (400, {"success": False, "code": 77, "message": "?"}, "unknown", None, None),
        (400, {"success": False, "message": "no code"}, "unknown", None, None),
        (500, {"success": False, "code": 500, "message": "Erreur"}, "unknown", None, None),
        (200, {"success": True, "code": 200, "nb_sms": 3}, "unknown", None, None),
        (200, {"code": 200, "message_id": 5}, "unknown", None, None),
        (200, "[1, 2]", "unknown", None, None),
        (200, "", "unknown", None, None),
        (401, "<html>Unauthorized</html>", "unknown", None, None),
        (404, "<html>Not Found</html>", "unknown", None, None),
        (302, "", "unknown", None, None),
    ],
)
def test_answers_map_to_outcomes(
    client: SMSPartnerClient,
    sim: SimulatorServer,
    waits: list[float],
    status: int,
    body: object,
    kind: str,
    refusal: str | None,
    code: int | None,
) -> None:
    sim.state.add_canned("sondage/to/send", body, status=status)
    outcome = client.send_survey(NUMBERS, "S")
    # A 404 page from a proxy, a 401 HTML page or an undocumented code prove nothing: unknown.
    assert (outcome.kind, outcome.refusal) == (Kind(kind), Refusal(refusal) if refusal else None)
    assert (outcome.code, outcome.http_status, outcome.message_id) == (code, status, None)
    assert outcome.reason and "\n" not in outcome.reason
    assert len(v1_requests(sim, "sondage/to/send")) == 1
    assert waits == []


def test_errors_key_variant_is_read(client: SMSPartnerClient, sim: SimulatorServer) -> None:
    body = {
        "success": False,
        "code": 9,
        "errors": [
            {"elementId": "children[phoneNumbers].data", "message": "Invalid phone number (0600)"}
        ],
    }
    sim.state.add_canned("sondage/to/send", body, status=400)
    outcome = client.send_survey(NUMBERS, "S")
    assert (outcome.kind, outcome.refusal, outcome.code) == (Kind.REFUSED, Refusal.CONTENT, 9)
    assert outcome.errors == (("children[phoneNumbers].data", "Invalid phone number (0600)"),)
    assert quoted_values(outcome) == ["0600"]


def test_simulator_validation_reaches_the_caller(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_stop("+33698765432")
    outcome = client.send_survey([*NUMBERS, "12ab"], "S")
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.CONTENT)
    assert (outcome.code, outcome.http_status) == (9, 400)
    assert sorted(quoted_values(outcome)) == ["+33698765432", "12ab"]
    assert "+33698765432" not in outcome.reason  # masked for people, kept in .errors
    assert sim.state.sends == []
    assert len(v1_requests(sim, "sondage/to/send")) == 1


def test_insufficient_credits_then_topped_up(make_client: Callable[..., SMSPartnerClient]) -> None:
    with run_simulator(api_keys=[KEY], credits=0.1) as poor:
        client = make_client(base_url=poor.url)
        outcome = client.send_survey(NUMBERS, "S")
        assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.CREDITS)
        assert (outcome.code, outcome.http_status) == (11, 200)
        assert poor.state.sends == []
        poor.state.credits = 1.0
        accepted = client.send_survey(NUMBERS, "S")
        assert (accepted.kind, accepted.nb_sms) == (Kind.ACCEPTED, 3)
        [send] = poor.state.sends
        assert send["message_id"] == accepted.message_id


# --- retries: where, how often, how long ------------------------------------------------------


def test_429_on_get_honours_retry_after(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.add_canned("me", {"success": False}, status=429, headers={"Retry-After": "2.5"})
    assert client.credits().balance == pytest.approx(100.0)
    assert waits == [2.5]


def test_429_on_send_is_refused_once_and_left_to_the_caller(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.add_canned("sondage/to/send", "", status=429, headers={"Retry-After": "1"}, times=2)
    for expected_requests in (1, 2):
        outcome = client.send_survey(NUMBERS, "S", tag="after-429")
        assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.RATE_LIMITED)
        assert (outcome.http_status, outcome.retry_after, outcome.code) == (429, 1.0, None)
        assert len(v1_requests(sim, "sondage/to/send")) == expected_requests
        assert sim.state.sends == []
    assert waits == []  # the client never sleeps for a send: the caller's scheduler does
    # The caller's own retry goes through once the gateway lets it.
    assert client.send_survey(NUMBERS, "S", tag="after-429").kind is Kind.ACCEPTED
    assert len(sim.state.sends) == 1


def test_persistent_429_one_request_for_a_send_max_retries_for_a_read(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.faults = FaultConfig(rate_limit_rate=1.0, retry_after=0.25)
    outcome = client.send_survey(NUMBERS, "S")
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.RATE_LIMITED)
    assert (outcome.http_status, outcome.retry_after) == (429, 0.25)
    assert waits == []
    assert len(v1_requests(sim)) == 1
    assert sim.state.sends == []

    with pytest.raises(RateLimited) as caught:
        client.credits()
    assert caught.value.retry_after == 0.25
    assert waits == [0.25, 0.25, 0.25]
    assert len(v1_requests(sim, "me")) == 4


def test_long_retry_after_is_left_to_the_caller(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(max_backoff=10.0)
    sim.state.add_canned("me", "", status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as caught:
        client.credits()
    assert caught.value.retry_after == 120.0
    assert waits == []


def test_5xx_on_get_is_retried_with_bounded_jittered_backoff(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(backoff=0.5, max_backoff=0.8)
    sim.state.add_canned("me", "<html>502 Bad Gateway</html>", status=502, times=3)
    assert client.credits().balance == pytest.approx(100.0)
    assert len(v1_requests(sim, "me")) == 4
    assert len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 0 <= wait <= min(0.8, 0.5 * 2**attempt)


def test_5xx_html_page_gives_a_short_server_error(
    client: SMSPartnerClient, sim: SimulatorServer
) -> None:
    sim.state.add_canned("me", "<html>" + "x" * 5000 + "</html>", status=502, times=4)
    with pytest.raises(ServerError) as caught:
        client.credits()
    assert caught.value.http_status == 502
    assert caught.value.retryable is True
    assert "<html>" not in str(caught.value) and len(str(caught.value)) < 120


def test_5xx_on_send_is_unknown_and_not_retried(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.faults = FaultConfig(error_5xx_rate=1.0, seed=1)
    for attempt in range(3):  # the three 5xx answers the simulator draws from
        outcome = client.send_survey(NUMBERS, "S", tag="t5xx")
        assert (outcome.kind, outcome.refusal, outcome.code) == (Kind.UNKNOWN, None, None)
        assert outcome.http_status in (500, 502, 503)
        assert outcome.reason == f"HTTP {outcome.http_status}"
        assert len(v1_requests(sim, "sondage/to/send")) == attempt + 1
    assert waits == []
    assert sim.state.sends == []


def test_connection_refused_read_retried_send_refused_not_connected(
    make_client: Callable[..., SMSPartnerClient], waits: list[float]
) -> None:
    client = make_client(base_url=closed_port_url())
    with pytest.raises(TransportError) as caught:
        client.credits()
    assert caught.value.may_have_landed is False
    assert caught.value.retryable is True
    assert len(waits) == 3

    waits.clear()
    outcome = client.send_survey(NUMBERS, "S")
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)
    assert (outcome.http_status, outcome.code, outcome.message_id) == (None, None, None)
    assert "could not connect" in outcome.reason
    assert waits == []  # one attempt: the caller owns the retry of sends


def test_connect_timeout_is_not_landed(
    make_client: Callable[..., SMSPartnerClient], waits: list[float]
) -> None:
    # A listening socket whose accept queue is full drops further SYNs: connect() times out.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        host, port = listener.getsockname()
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((host, port))
            fillers.append(filler)
        try:
            client = make_client(
                base_url=f"http://{host}:{port}/v1", timeout=(0.2, 1.0), max_retries=1
            )
            outcome = client.send_survey(NUMBERS, "S")
            sent_waits = list(waits)
            with pytest.raises(TransportError) as caught:
                client.credits()
        finally:
            for filler in fillers:
                filler.close()
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)
    assert "timeout" in outcome.reason
    assert sent_waits == []
    assert caught.value.may_have_landed is False
    assert "timeout" in str(caught.value)
    assert len(waits) == 1


def test_read_timeout_on_send_may_have_landed_and_is_not_retried(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(timeout=(1.0, 0.2))
    sim.state.faults = FaultConfig(latency_ms=500)
    outcome = client.send_survey(NUMBERS, "S", tag="slow")
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert (outcome.http_status, outcome.message_id) == (None, None)
    assert outcome.reason == "POST sondage/to/send: no answer within 0.2s"
    assert waits == []
    # The gateway went on and accepted it: exactly why the caller must reconcile by tag.
    assert wait_for(lambda: len(sim.state.sends) == 1)
    assert len(v1_requests(sim, "sondage/to/send")) == 1
    sim.state.faults = FaultConfig()
    assert len(client.status_by_tag("slow")) == 3


def test_read_timeout_on_get_is_retried(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(timeout=(1.0, 0.1), max_retries=2)
    sim.state.faults = FaultConfig(latency_ms=300)
    with pytest.raises(TransportError) as caught:
        client.credits()
    assert caught.value.may_have_landed is True
    assert len(waits) == 2
    assert wait_for(lambda: len(v1_requests(sim, "me")) == 3)


def test_reset_before_handling_is_unknown_and_records_nothing(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.faults = FaultConfig(reset_rate=1.0)
    outcome = client.send_survey(NUMBERS, "S", tag="reset")
    # From the client's side a lost connection may have landed; here it did not.
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert outcome.http_status is None
    assert "connection lost" in outcome.reason
    assert waits == []
    assert sim.state.sends == []
    assert [r["status"] for r in v1_requests(sim)] == ["reset"]


def test_drop_after_accept_is_unknown_and_reconciled_by_tag(
    client: SMSPartnerClient, sim: SimulatorServer, waits: list[float]
) -> None:
    sim.state.faults = FaultConfig(drop_after_accept_rate=1.0)
    outcome = client.send_survey(NUMBERS, "S", tag="dropped-1")
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert (outcome.http_status, outcome.message_id) == (None, None)
    assert waits == []
    [send] = sim.state.sends
    assert send["tag"] == "dropped-1"
    assert [r["status"] for r in v1_requests(sim, "sondage/to/send")] == ["drop"]

    sim.state.faults = FaultConfig()
    landed = client.status_by_tag("dropped-1")
    assert sorted(e.phone_number for e in landed) == sorted(sim.state.accepted_numbers())


# --- the key stays secret ---------------------------------------------------------------------


def assert_no_key(error: BaseException) -> None:
    texts = [str(error), repr(error), *map(str, error.args)]
    texts += traceback.format_exception(error)
    texts += [f"{e} {m}" for e, m in getattr(error, "errors", [])]
    for text in texts:
        assert KEY not in text
    # No requests exception (whose text holds the URL) is chained to what the caller gets.
    assert error.__cause__ is None and error.__context__ is None


def test_api_key_never_in_errors_nor_logs(
    make_client: Callable[..., SMSPartnerClient],
    sim: SimulatorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(timeout=(1.0, 0.2), max_retries=1)
    assert KEY not in repr(client)
    client.credits()
    sim.state.add_canned("me", {"success": False, "code": 10, "message": f"bad key {KEY}"})
    sim.state.add_canned(
        "sondage/to/send",
        {"success": False, "code": 9, "error": [{"elementId": KEY, "message": f"echo {KEY}"}]},
        status=400,
    )
    sim.state.add_canned(
        "sondage/to/send", {"success": False, "code": 30, "message": f"compte {KEY} bloqué"}
    )
    sim.state.add_canned("sondage/to/send", f"<html>proxy error for {KEY}</html>", status=502)
    closed = make_client(base_url=closed_port_url(), max_retries=1)
    failing: list[Callable[[], object]] = [
        client.credits,
        lambda: client.status_by_tag("unknown-tag"),
        closed.credits,
    ]

    def under(faults: FaultConfig, call: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            sim.state.faults = faults
            return call()

        return run

    failing += [
        under(FaultConfig(error_5xx_rate=1.0), client.credits),
        under(FaultConfig(rate_limit_rate=1.0, retry_after=0), client.credits),
        under(FaultConfig(latency_ms=400), client.credits),
        under(FaultConfig(reset_rate=1.0), client.credits),
    ]
    raised = 0
    for call in failing:
        with pytest.raises(SMSPartnerError) as caught:
            call()
        assert_no_key(caught.value)
        raised += 1
    assert raised == 7

    def send() -> SendOutcome:
        return client.send_survey(NUMBERS, "S", tag="secret")

    sends: list[Callable[[], SendOutcome]] = [
        under(FaultConfig(), send),  # canned code 9 echoing the key in the validation list
        send,  # canned code 30 echoing it in the message
        send,  # canned 502 page echoing it
        lambda: closed.send_survey(NUMBERS, "S"),
        under(FaultConfig(error_5xx_rate=1.0), send),
        under(FaultConfig(rate_limit_rate=1.0, retry_after=0), send),
        under(FaultConfig(latency_ms=400), send),
        under(FaultConfig(reset_rate=1.0), send),
        under(FaultConfig(drop_after_accept_rate=1.0), send),
        under(FaultConfig(), send),
    ]
    outcomes = [call() for call in sends]
    for outcome in outcomes:
        assert_outcome_has_no_key(outcome)
    assert outcomes[0].errors == (("***", "echo ***"),)
    assert outcomes[0].reason == "code 9; ***: echo ***"
    assert (outcomes[1].refusal, outcomes[1].reason) == (
        Refusal.ACCOUNT,
        "code 30: compte *** bloqué",
    )
    assert [o.kind for o in outcomes[2:3]] + [outcomes[-1].kind] == [Kind.UNKNOWN, Kind.ACCEPTED]

    urllib3_messages = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("apiKey=***" in m for m in urllib3_messages), "urllib3 did not log the GET URL"
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert KEY not in str(record.msg) and KEY not in str(record.args)
    assert any(r.name == "smspartner" and "GET me" in r.getMessage() for r in caplog.records)
    assert any(
        r.name == "smspartner" and "sondage/to/send -> refused" in r.getMessage()
        for r in caplog.records
    )


# --- guards: body size, deadline, TLS, answers that prove nothing ----------------------------


def padded_send_answer(size: int) -> dict:
    """An accepted-send answer of exactly ``size`` bytes as the simulator encodes it."""
    body = {"success": True, "code": 200, "message_id": 7, "nb_sms": 3, "pad": ""}
    body["pad"] = "x" * (size - len(json.dumps(body, ensure_ascii=False).encode()))
    assert len(json.dumps(body, ensure_ascii=False).encode()) == size
    return body


def test_send_answer_larger_than_max_body_is_unknown(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(max_body=2048)
    sim.state.add_canned("sondage/to/send", padded_send_answer(2048))
    sim.state.add_canned("sondage/to/send", padded_send_answer(2049))

    exact = client.send_survey(NUMBERS, "S")
    assert (exact.kind, exact.message_id, exact.nb_sms) == (Kind.ACCEPTED, 7, 3)

    outcome = client.send_survey(NUMBERS, "S")
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert (outcome.http_status, outcome.message_id) == (200, None)
    assert outcome.reason == "POST sondage/to/send: answer larger than 2048 bytes"
    assert len(v1_requests(sim, "sondage/to/send")) == 2
    assert waits == []
    # The connection was dropped mid-body; the next call still works.
    assert client.send_survey(NUMBERS, "S").kind is Kind.ACCEPTED
    assert len(sim.state.sends) == 1


def test_read_answer_larger_than_max_body_is_a_retried_transport_error(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer, waits: list[float]
) -> None:
    client = make_client(max_body=512)
    huge = {"success": True, "code": 200, "credits": {"balance": "1.0"}, "pad": "x" * 10_000}
    sim.state.add_canned("me", huge, times=4)
    with pytest.raises(TransportError) as caught:
        client.credits()
    assert caught.value.may_have_landed is True
    assert str(caught.value) == "GET me: answer larger than 512 bytes"
    assert len(v1_requests(sim, "me")) == 4
    assert len(waits) == 3
    assert client.credits().balance == pytest.approx(100.0)  # the canned answers are used up


def test_a_dripping_body_ends_at_the_deadline(
    make_client: Callable[..., SMSPartnerClient], waits: list[float]
) -> None:
    with local_server(DripBodyHandler) as server:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        client = make_client(base_url=base_url, deadline=1.0, max_retries=0)
        started = time.monotonic()
        outcome = client.send_survey(NUMBERS, "S", tag="drip")
        send_took = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(TransportError) as caught:
            client.credits()
        read_took = time.monotonic() - started
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert (outcome.http_status, outcome.message_id) == (200, None)
    assert outcome.reason == "POST sondage/to/send: answer not complete within 1s"
    assert 0.9 <= send_took < 1.5
    assert str(caught.value) == "GET me: answer not complete within 1s"
    assert caught.value.may_have_landed is True
    assert read_took < 1.5
    assert waits == []
    assert len(server.seen) == 2
    for headers in server.seen:  # no compression: max_body counts the bytes we decode
        assert headers.get("Accept-Encoding") == "identity"


@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("bulk-status-by-tag", lambda c: c.status_by_tag("some-tag")),
        ("bulk-status", lambda c: c.status_by_message(2270142)),
        ("multi-status", lambda c: c.multi_status([("+33612345678", 2270142)])),
    ],
)
def test_status_answer_without_its_list_is_an_error_not_nobody(
    client: SMSPartnerClient,
    sim: SimulatorServer,
    waits: list[float],
    path: str,
    call: Callable[[SMSPartnerClient], object],
) -> None:
    sim.state.add_canned(path, {"success": True})
    with pytest.raises(SMSPartnerError) as caught:
        call(client)
    assert type(caught.value) is SMSPartnerError  # not NotFound: it proves nothing either way
    assert "no status list" in str(caught.value)
    assert len(v1_requests(sim, path)) == 1
    assert waits == []


class GarbageHandler(QuietHandler):
    """Reads the request, then answers bytes that are not HTTP and hangs up."""

    def answer(self) -> None:
        self.take_request()
        self.wfile.write(b"\x00\x01 not HTTP at all\r\n\r\n")
        self.close_connection = True

    do_GET = do_POST = answer


class BrokenChunksHandler(QuietHandler):
    """Reads the request, then starts a chunked answer and hangs up in the middle of a chunk."""

    def answer(self) -> None:
        self.take_request()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n20\r\n{"success": true, "me'
        )
        self.close_connection = True

    do_GET = do_POST = answer


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (GarbageHandler, "connection lost after sending (an answer that is not HTTP)"),
        (BrokenChunksHandler, "answer cut"),
    ],
    ids=["not-http", "chunk-cut"],
)
def test_an_answer_broken_after_the_request_was_read_may_have_landed(
    make_client: Callable[..., SMSPartnerClient],
    waits: list[float],
    handler: type[QuietHandler],
    reason: str,
) -> None:
    with local_server(handler) as server:
        client = make_client(base_url=f"http://127.0.0.1:{server.port}/v1", max_retries=1)
        outcome = client.send_survey(NUMBERS, "S", tag="broken")
        with pytest.raises(TransportError) as caught:
            client.credits()
    assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
    assert outcome.reason == f"POST sondage/to/send: {reason}"
    assert caught.value.may_have_landed is True
    assert len(server.seen) == 3  # the send once (never retried), the read twice
    assert len(waits) == 1


def _pool(reason: Exception) -> urllib3.exceptions.MaxRetryError:
    return urllib3.exceptions.MaxRetryError(None, "/v1/sondage/to/send", reason)


# The exceptions as requests and urllib3 wrap them for each way a call can end. The TLS ones
# carry the text a failed handshake shows too: the ending comes from the types, the decision
# from whether the request was written (smspartner.outcome.may_have_landed), never the text.
WRONG_VERSION = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:2580)")
ENDINGS = [
    pytest.param(
        requests.exceptions.ConnectionError(
            _pool(
                urllib3.exceptions.NameResolutionError(
                    "gw.example", None, socket.gaierror(-2, "Name or service not known")
                )
            )
        ),
        Ending.DNS,
        id="dns",
    ),
    pytest.param(
        requests.exceptions.ConnectionError(
            _pool(urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused"))
        ),
        Ending.REFUSED,
        id="refused",
    ),
    pytest.param(
        requests.exceptions.ConnectTimeout(
            _pool(urllib3.exceptions.ConnectTimeoutError(None, "connect timed out"))
        ),
        Ending.CONNECT_TIMEOUT,
        id="connect-timeout",
    ),
    pytest.param(
        requests.exceptions.SSLError(_pool(urllib3.exceptions.SSLError(WRONG_VERSION))),
        Ending.TLS,
        id="tls-wrong-version",
    ),
    pytest.param(
        requests.exceptions.SSLError(
            _pool(urllib3.exceptions.SSLError(ssl.SSLCertVerificationError(1, "HANDSHAKE")))
        ),
        Ending.TLS,
        id="tls-certificate",
    ),
    pytest.param(
        requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
            )
        ),
        Ending.RESET,
        id="reset",
    ),
    pytest.param(
        requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", http.client.RemoteDisconnected("closed without response")
            )
        ),
        Ending.RESET,
        id="closed",
    ),
    pytest.param(
        requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", http.client.BadStatusLine("\x00 not HTTP")
            )
        ),
        Ending.PROTOCOL,
        id="garbage",
    ),
    pytest.param(
        requests.exceptions.ReadTimeout(
            urllib3.exceptions.ReadTimeoutError(None, "/v1/sondage/to/send", "Read timed out.")
        ),
        Ending.READ_TIMEOUT,
        id="read-timeout",
    ),
    pytest.param(
        urllib3.exceptions.ProtocolError(
            "Connection broken", urllib3.exceptions.IncompleteRead(10, 20)
        ),
        Ending.CUT,
        id="partial-body",
    ),
    pytest.param(
        requests.exceptions.ChunkedEncodingError(
            urllib3.exceptions.ProtocolError("Response ended prematurely")
        ),
        Ending.CUT,
        id="chunked",
    ),
    pytest.param(requests.exceptions.InvalidHeader("odd header"), Ending.OTHER, id="other"),
]


@pytest.mark.parametrize(("error", "ending"), ENDINGS)
def test_ending_of(error: Exception, ending: Ending) -> None:
    assert ending_of(error) is ending


def test_the_endings_table_meets_every_ending_an_exception_can_give() -> None:
    made = {p.values[1] for p in ENDINGS}
    # Too large and the deadline are the client's own decisions, not exceptions.
    assert made == set(Ending) - {Ending.TOO_LARGE, Ending.DEADLINE}


def test_tls_handshake_failure_is_not_connected(
    make_client: Callable[..., SMSPartnerClient], waits: list[float]
) -> None:
    # A plain-HTTP server behind an https:// URL: the handshake fails (WRONG_VERSION_NUMBER)
    # before any byte of the request is sent.
    with local_server(PlainJSONHandler) as server:
        client = make_client(base_url=f"https://127.0.0.1:{server.port}/v1", max_retries=2)
        outcome = client.send_survey(NUMBERS, "S")
        sent_waits = list(waits)
        with pytest.raises(TransportError) as caught:
            client.credits()
    assert server.seen == []  # no request ever reached a handler
    assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)
    assert (outcome.http_status, outcome.message_id) == (None, None)
    assert sent_waits == []
    assert caught.value.may_have_landed is False
    assert len(waits) == 2


# --- pure parsing rules -----------------------------------------------------------------------


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_paris_wall_clock_dates_parse_to_utc(local: datetime) -> None:
    # The text cannot tell the two 02:xx hours of the autumn change apart: the first is read.
    local = local.replace(microsecond=0, fold=0)
    parsed = parse_gateway_date(local.strftime("%Y-%m-%d %H:%M:%S"))
    assert parsed == local.replace(tzinfo=PARIS).astimezone(UTC)
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@given(st.integers(min_value=0, max_value=4_102_444_800))
def test_unix_timestamps_parse_as_int_or_string(seconds: int) -> None:
    expected = datetime.fromtimestamp(seconds, UTC)
    assert parse_gateway_date(seconds) == expected
    assert parse_gateway_date(str(seconds)) == expected
    if seconds >= 100_000_000:  # milliseconds are told apart from seconds from 1973 on
        assert parse_gateway_date(seconds * 1000) == expected


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "31/12/2020", True, [], "2020-13-01 00:00:00"]
)
def test_unreadable_dates_are_none(value: object) -> None:
    assert parse_gateway_date(value) is None


def test_iso_dates_with_offset() -> None:
    assert parse_gateway_date("2018-03-05T10:34:52.355+0000") == datetime(
        2018, 3, 5, 10, 34, 52, 355000, tzinfo=UTC
    )


@given(
    st.sampled_from(["Delivered", "Not delivered", "Waiting", "DELIVRD", "UNDELIV", "PENDING"]),
    st.sampled_from([str.lower, str.upper, str.title, lambda s: s]),
    st.sampled_from(["", " ", "\t"]),
)
def test_status_spellings_normalise(status: str, case: Callable[[str], str], pad: str) -> None:
    expected = {"DELIVRD": "Delivered", "UNDELIV": "Not delivered", "PENDING": "Waiting"}
    assert normalise_status(pad + case(status) + pad) == expected.get(status, status)


def test_unknown_status_text_is_kept() -> None:
    assert normalise_status("Numéro introuvable") == "Numéro introuvable"
    assert normalise_status(None) == ""


# What a read's answer that is not a success raises: by code, then by HTTP status; codes 5 to 7
# are refusals of a cancel only (elsewhere they are per-request codes).
@pytest.mark.parametrize(
    ("code", "status", "cancel", "error_type"),
    [
        (1, 200, False, AuthError),
        (10, 400, True, AuthError),
        (None, 401, False, AuthError),
        (None, 403, True, AuthError),
        (11, 200, False, InsufficientCredits),
        (4, 200, True, NotFound),
        (4, 404, False, NotFound),
        (5, 200, True, CancelError),
        (6, 200, True, CancelError),
        (7, 200, True, CancelError),
        (5, 200, False, Rejected),
        (7, 200, False, Rejected),
        (3, 200, True, Rejected),
        (9, 400, False, Rejected),
        (None, 400, False, SMSPartnerError),
        (None, 404, True, SMSPartnerError),
    ],
)
def test_error_type_of_a_refused_read(
    code: int | None, status: int, cancel: bool, error_type: type[SMSPartnerError]
) -> None:
    assert error_type_of(code, status, cancel) is error_type


def envelope(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("exchange", "error_type", "text"),
    [
        (Exchange(None, failure="GET me: no answer within 30s"), TransportError, "no answer"),
        (Exchange(429, retry_after=2.0), RateLimited, "GET me: HTTP 429, rate limited"),
        (Exchange(503, b"<html>down</html>"), ServerError, "HTTP 503, the answer is not JSON"),
        (
            Exchange(500, envelope(code=500, message="boom " + KEY)),
            ServerError,
            "GET me: HTTP 500, boom ***",
        ),
        (Exchange(302), SMSPartnerError, "GET me: unexpected redirect (HTTP 302)"),
        (Exchange(401, b"<html>"), AuthError, "HTTP 401, the answer is not a JSON object"),
        (Exchange(200, b"[1, 2]"), SMSPartnerError, "HTTP 200, the answer is not a JSON object"),
        (
            Exchange(
                400, envelope(success=False, code=9, error=[{"elementId": KEY, "message": "m"}])
            ),
            Rejected,
            "GET me: HTTP 400, code 9; 1 validation error(s), first ***: m",
        ),
        (
            Exchange(200, envelope(success=False, code=10, message="Clé API incorrecte")),
            AuthError,
            "GET me: HTTP 200, code 10: Clé API incorrecte",
        ),
    ],
)
def test_interpret_maps_an_answer_to_one_error_without_the_key(
    exchange: Exchange, error_type: type[SMSPartnerError], text: str
) -> None:
    error = interpret("GET me", exchange, False, KEY)
    assert type(error) is error_type
    assert text in str(error) and KEY not in str(error)
    assert KEY not in repr(getattr(error, "errors", ""))


def test_interpret_returns_the_body_of_a_success() -> None:
    body = {"success": True, "code": 200, "credits": {"balance": "1.5"}}
    assert interpret("GET me", Exchange(200, envelope(**body)), False, KEY) == body
    bom = Exchange(200, b"\xef\xbb\xbf" + envelope(code="200", stopId=3))
    assert interpret("POST stop-sms/add", bom, False, KEY) == {"code": "200", "stopId": 3}


# The modules that decide what an answer means are pure, so they are tested as tables: they
# import no HTTP stack, no socket, and nothing of the simulator or the project.
PURE_GATEWAY_MODULES = ["errors.py", "outcome.py", "models.py", "_parse.py"]
HTTP_STACK = {"requests", "urllib3", "http", "socket", "ssl", "httpx"}


def imported_roots(path: Path) -> set[str]:
    """Every module a file imports (top level or inside functions), as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", PURE_GATEWAY_MODULES)
def test_the_gateway_rules_import_no_http_stack(name: str) -> None:
    imported = imported_roots(GATEWAY / name)
    assert not {m for m in imported if m.split(".")[0] in HTTP_STACK | {"prefect", "tasks"}}
    assert not {m for m in imported if m.startswith("smspartner.simulator")}
    assert not {m for m in imported if m in {"smspartner.client", "smspartner._transport"}}


def test_the_client_side_never_imports_the_simulator_nor_the_project() -> None:
    for path in sorted(GATEWAY.glob("*.py")):
        imported = imported_roots(path)
        assert not {m for m in imported if m.startswith("smspartner.simulator")}, path.name
        assert not {m for m in imported if m.split(".")[0] in {"tasks", "flows", "prefect"}}, path


def test_headers_dripped_a_byte_at_a_time_end_at_the_deadline(
    make_client: Callable[..., SMSPartnerClient],
) -> None:
    with local_server(DripHeadersHandler) as server:
        base_url = f"http://127.0.0.1:{server.port}/v1"
        client = make_client(base_url=base_url, deadline=1.0, max_retries=0)
        started = time.monotonic()
        outcome = client.send_survey(NUMBERS, "S", tag="dripheads")
        took = time.monotonic() - started
    # The request went out: whether it landed is unknown, never "not sent".
    assert outcome.kind is Kind.UNKNOWN
    assert outcome.reason == "POST sondage/to/send: answer not complete within 1s"
    assert 0.9 <= took < 1.6


def test_credentials_in_the_gateway_url_are_sent_as_auth_and_shown_nowhere(
    make_client: Callable[..., SMSPartnerClient], sim: SimulatorServer
) -> None:
    port = sim.url.split(":")[2].split("/")[0]
    client = make_client(base_url=f"http://proxyuser:Pr0xyS3cret@127.0.0.1:{port}/v1")
    assert client.credits().balance > 0
    assert "Pr0xyS3cret" not in repr(client) and "Pr0xyS3cret" not in client.base_url
    assert public_url("https://u:pw@gw.example:8443/v1?x=1") == "https://gw.example:8443/v1"
