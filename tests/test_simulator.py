"""The simulator over raw HTTP: documented envelopes, validation, statuses over time, cancel rules,
faults and the admin endpoints. Requests are made with plain ``requests`` (not our client) so the
wire format itself is what is checked.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smspartner.simulator import (
    DEFAULT_API_KEY,
    GARBAGE_KINDS,
    FaultConfig,
    SimulatorServer,
    SimulatorState,
    main,
    run_simulator,
    to_e164,
)

KEY = "sim-secret-Hn4-qq7"
T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Paris (UTC+1)
NUMBERS = ["+33612345678", "0712345678", "+33698765432"]
REPO = Path(__file__).resolve().parents[1]


def fixed_clock() -> datetime:
    return T0


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with run_simulator(api_keys=[KEY], credits=100.0, clock=fixed_clock) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post(http: requests.Session, sim: SimulatorServer, path: str, **body: Any) -> requests.Response:
    return http.post(f"{sim.url}/{path}", json={"apiKey": KEY, **body}, timeout=5)


def get(
    http: requests.Session, sim: SimulatorServer, path: str, **params: Any
) -> requests.Response:
    return http.get(f"{sim.url}/{path}", params={"apiKey": KEY, **params}, timeout=5)


def send(
    http: requests.Session, sim: SimulatorServer, numbers: list[str] = NUMBERS, **extra: Any
) -> requests.Response:
    body = {"phoneNumbers": ",".join(numbers), "sondageIdent": "SURVEY", **extra}
    return post(http, sim, "sondage/to/send", **body)


def admin(
    http: requests.Session, sim: SimulatorServer, endpoint: str, **body: Any
) -> requests.Response:
    return http.post(f"{sim.admin_url}/{endpoint}", json=body, timeout=5)


def element_ids(answer: requests.Response) -> list[str]:
    return [e["elementId"] for e in answer.json()["error"]]


def messages(answer: requests.Response) -> list[str]:
    return [e["message"] for e in answer.json()["error"]]


# --- sending ----------------------------------------------------------------------------------


def test_immediate_send_answer_and_record(http: requests.Session, sim: SimulatorServer) -> None:
    answer = send(http, sim, tag="chunk-1")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"success", "code", "message_id", "nb_sms", "cost", "currency"}
    assert (body["success"], body["code"], body["nb_sms"], body["currency"]) == (
        True,
        200,
        3,
        "EUR",
    )
    assert body["cost"] == pytest.approx(0.135)
    assert isinstance(body["message_id"], int)
    [record] = sim.state.sends
    assert record["numbers"] == NUMBERS
    assert (record["tag"], record["survey_id"], record["nb_sms"]) == ("chunk-1", "SURVEY", 3)
    assert record["received_at"] == T0.isoformat()
    assert (record["scheduled_at"], record["cancelled"]) == (None, False)
    assert sim.state.credits == pytest.approx(100 - 0.135)


def test_message_ids_increase(http: requests.Session, sim: SimulatorServer) -> None:
    ids = [send(http, sim).json()["message_id"] for _ in range(3)]
    assert ids == sorted(set(ids))


def test_scheduled_send_is_read_in_paris_time(http: requests.Session, sim: SimulatorServer) -> None:
    answer = send(http, sim, scheduledDeliveryDate="05/03/2030", time=9, minute=30)
    assert answer.json()["scheduledDeliveryDate"] == "2030-03-05 09:30:00"
    [record] = sim.state.sends
    assert record["scheduled_at"] == datetime(2030, 3, 5, 8, 30, tzinfo=UTC).isoformat()
    assert record["schedule"] == {"scheduledDeliveryDate": "05/03/2030", "time": 9, "minute": 30}


def test_plain_send_with_message_bills_segments(
    http: requests.Session, sim: SimulatorServer
) -> None:
    answer = post(http, sim, "send", phoneNumbers="+33612345678,+33612345679", message="x" * 200)
    assert answer.json()["nb_sms"] == 4
    assert sim.state.sends[0]["kind"] == "sms"


def test_accepted_numbers_counts_every_time_texted(
    http: requests.Session, sim: SimulatorServer
) -> None:
    send(http, sim, ["0612345678"])
    send(http, sim, ["+33612345678", "+33698765432"])
    assert sorted(sim.state.accepted_numbers()) == ["+33612345678", "+33612345678", "+33698765432"]


@pytest.mark.parametrize(
    ("api_key", "code"), [(None, 1), ("", 1), ("wrong", 10)], ids=["absent", "empty", "wrong"]
)
def test_key_checks_use_the_200_envelope(
    http: requests.Session, sim: SimulatorServer, api_key: str | None, code: int
) -> None:
    body: dict[str, Any] = {"phoneNumbers": NUMBERS[0], "sondageIdent": "S"}
    params: dict[str, Any] = {}
    if api_key is not None:
        body["apiKey"] = api_key
        params["apiKey"] = api_key
    for answer in (
        http.post(f"{sim.url}/sondage/to/send", json=body, timeout=5),
        http.get(f"{sim.url}/me", params=params, timeout=5),
    ):
        assert answer.status_code == 200
        assert answer.json()["success"] is False
        assert answer.json()["code"] == code
    assert sim.state.sends == []


INVALID_SENDS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("no numbers", {"phoneNumbers": None}, 2, "", ""),
    ("empty numbers", {"phoneNumbers": " "}, 2, "", ""),
    (
        "501 numbers",
        {"phoneNumbers": ",".join(f"+336{i:08d}" for i in range(501))},
        9,
        "children[phoneNumbers].data",
        "Maximum 500",
    ),
    ("no survey", {"sondageIdent": None}, 9, "children[sondageIdent].data", "required"),
    ("tag upper", {"tag": "Chunk1"}, 9, "children[tag].data", "lowercase"),
    ("tag space", {"tag": "chunk 1"}, 9, "children[tag].data", "no spaces"),
    ("tag long", {"tag": "x" * 21}, 9, "children[tag].data", "20"),
    (
        "no minute",
        {"scheduledDeliveryDate": "05/03/2030", "time": 9},
        9,
        "children[minute].data",
        "Minute is required",
    ),
    (
        "no hour",
        {"scheduledDeliveryDate": "05/03/2030", "minute": 0},
        9,
        "children[time].data",
        "Hour is required",
    ),
    (
        "iso date",
        {"scheduledDeliveryDate": "2030-03-05", "time": 9, "minute": 0},
        9,
        "children[scheduledDeliveryDate].data",
        "Invalid date",
    ),
    (
        "31 feb",
        {"scheduledDeliveryDate": "31/02/2030", "time": 9, "minute": 0},
        9,
        "children[scheduledDeliveryDate].data",
        "Invalid date",
    ),
    (
        "hour 25",
        {"scheduledDeliveryDate": "05/03/2030", "time": 25, "minute": 0},
        9,
        "children[time].data",
        "0 and 24",
    ),
    (
        "minute 7",
        {"scheduledDeliveryDate": "05/03/2030", "time": 9, "minute": 7},
        9,
        "children[minute].data",
        "intervals of 5",
    ),
    (
        "minute 60",
        {"scheduledDeliveryDate": "05/03/2030", "time": 9, "minute": 60},
        9,
        "children[minute].data",
        "intervals of 5",
    ),
    (
        "past",
        {"scheduledDeliveryDate": "04/03/2030", "time": 10, "minute": 55},  # 09:55 UTC < T0
        9,
        "children[scheduledDeliveryDate].data",
        "The date (04/03/2030 10:55) is earlier than the current date.",
    ),
    (
        "garbage number",
        {"phoneNumbers": "+33612345678,12ab,0612345679"},
        9,
        "children[phoneNumbers].data",
        "Invalid phone number (12ab)",
    ),
    ("landline", {"phoneNumbers": "0140000000"}, 9, "children[phoneNumbers].data", "(0140000000)"),
]


@pytest.mark.parametrize(
    ("overrides", "code", "element", "text"),
    [case[1:] for case in INVALID_SENDS],
    ids=[case[0] for case in INVALID_SENDS],
)
def test_invalid_sends_are_rejected_whole(
    http: requests.Session,
    sim: SimulatorServer,
    overrides: dict[str, Any],
    code: int,
    element: str,
    text: str,
) -> None:
    body: dict[str, Any] = {"phoneNumbers": ",".join(NUMBERS), "sondageIdent": "S"}
    body.update(overrides)
    answer = post(http, sim, "sondage/to/send", **{k: v for k, v in body.items() if v is not None})
    assert answer.status_code == 400
    assert (answer.json()["success"], answer.json()["code"]) == (False, code)
    if element:
        found = [
            m for e, m in zip(element_ids(answer), messages(answer), strict=True) if e == element
        ]
        assert any(text in m for m in found), found
    assert sim.state.sends == []
    assert sim.state.credits == 100.0


def test_schedule_exactly_now_is_accepted(http: requests.Session, sim: SimulatorServer) -> None:
    answer = send(http, sim, scheduledDeliveryDate="04/03/2030", time=11, minute=0)
    assert answer.status_code == 200


def test_malformed_json_is_code_90(http: requests.Session, sim: SimulatorServer) -> None:
    answer = http.post(f"{sim.url}/sondage/to/send", data=b"{not json", timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (400, 90)


def test_stop_listed_numbers_reject_the_request_and_are_named(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.add_stop("+33612345678")
    sim.state.add_stop("0698765432")
    answer = send(http, sim, NUMBERS)
    assert (answer.status_code, answer.json()["code"]) == (400, 9)
    assert messages(answer) == [
        "Le numéro est dans la liste STOP (+33612345678)",
        "Le numéro est dans la liste STOP (+33698765432)",
    ]
    assert sim.state.sends == []
    assert send(http, sim, ["0712345678"]).status_code == 200


def test_insufficient_credits_then_credits_added(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.credits = 0.1
    answer = send(http, sim)  # 3 x 0.045 = 0.135
    assert (answer.status_code, answer.json()["success"], answer.json()["code"]) == (200, False, 11)
    assert sim.state.sends == []
    assert admin(http, sim, "credits", credits=0.135).status_code == 200
    assert send(http, sim).json()["success"] is True
    assert sim.state.credits == pytest.approx(0.0)
    assert send(http, sim, NUMBERS[:1]).json()["code"] == 11


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorServer]:
    with run_simulator(api_keys=[KEY], credits=1e9, clock=fixed_clock) as server:
        yield server


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hour=st.integers(min_value=-2, max_value=30), minute=st.integers(min_value=-5, max_value=70))
def test_schedule_accepts_exactly_the_documented_hours_and_minutes(
    shared_sim: SimulatorServer, hour: int, minute: int
) -> None:
    body = {
        "apiKey": KEY,
        "phoneNumbers": NUMBERS[0],
        "sondageIdent": "S",
        "scheduledDeliveryDate": "10/03/2030",
        "time": hour,
        "minute": minute,
    }
    answer = requests.post(f"{shared_sim.url}/sondage/to/send", json=body, timeout=5)
    valid = 0 <= hour <= 24 and 0 <= minute <= 55 and minute % 5 == 0
    assert answer.json()["success"] is valid


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789+ .-abc", max_size=16))
def test_to_e164_accepts_only_french_mobiles_or_international(text: str) -> None:
    result = to_e164(text)
    if result is not None:
        assert re.fullmatch(r"\+[1-9]\d{7,14}", result)
        compact = re.sub(r"[ .\-]", "", text)
        assert compact == result or (compact.startswith("0") and result == "+33" + compact[1:])


# --- statuses over time -----------------------------------------------------------------------


def test_statuses_move_from_waiting_to_final_with_stop_flags(http: requests.Session) -> None:
    state = SimulatorState(
        api_keys=[KEY],
        clock=fixed_clock,
        delivery_delay_s=2,
        not_delivered_rate=0.3,
        stop_rate=0.3,
    )
    numbers = [f"+3361234{i:04d}" for i in range(60)]
    with SimulatorServer(state) as sim:
        message_id = send(http, sim, numbers, tag="wave").json()["message_id"]

        def by_message() -> dict[str, dict]:
            body = get(http, sim, "bulk-status", messageId=message_id).json()
            return {e["phoneNumber"]: e for e in body["StatutResponse_List"]}

        waiting = by_message()
        assert {e["status"] for e in waiting.values()} == {"Waiting"}
        assert not any(e["stopSMS"] for e in waiting.values())
        state.advance(1.9)
        assert {e["status"] for e in by_message().values()} == {"Waiting"}
        assert get(http, sim, "stop-sms/list").json()["data"] == []

        state.advance(0.2)
        final = by_message()
        assert {n: (e["status"], e["stopSMS"]) for n, e in final.items()} == {
            n: state.planned_outcome(n) for n in numbers
        }
        assert {e["status"] for e in final.values()} == {"Delivered", "Not delivered"}
        stopped = sorted(n for n, e in final.items() if e["stopSMS"])
        assert stopped, "with stop_rate 0.3 some of 60 recipients reply STOP"
        assert all(final[n]["status"] == "Delivered" for n in stopped)
        listed = get(http, sim, "stop-sms/list").json()["data"]
        assert sorted(e["phoneNumber"] for e in listed) == stopped
        due = T0 + timedelta(seconds=2)
        assert {e["date"] for e in final.values()} == {str(int(due.timestamp()))}
        assert {e["createdAt"] for e in listed} == {"2030-03-04 11:00:02"}

        again = send(http, sim, [stopped[0]])
        assert again.json()["code"] == 9
        assert "liste STOP" in messages(again)[0]


def test_scheduled_send_waits_for_its_time(http: requests.Session, sim: SimulatorServer) -> None:
    send(http, sim, NUMBERS[:1], tag="later", scheduledDeliveryDate="04/03/2030", time=12, minute=0)

    def status() -> str:
        return get(http, sim, "bulk-status-by-tag", tag="later").json()["StatutResponse_List"][0][
            "status"
        ]

    sim.state.advance(3600 + 1)  # the scheduled time, but the delivery report needs 2 s more
    assert status() == "Waiting"
    sim.state.advance(2)
    assert status() in {"Delivered", "Not delivered"}


def test_status_answers_use_each_documented_shape(
    http: requests.Session, sim: SimulatorServer
) -> None:
    message_id = send(http, sim, tag="shape").json()["message_id"]
    sim.state.advance(5)

    bulk = get(http, sim, "bulk-status", messageId=message_id).json()
    assert bulk["message_id"] == str(message_id)
    entry = bulk["StatutResponse_List"][0]
    assert set(entry) == {"phoneNumber", "status", "stopSMS", "date"}
    assert isinstance(entry["stopSMS"], bool) and entry["date"].isdigit()

    by_tag = get(http, sim, "bulk-status-by-tag", tag="shape").json()
    assert (by_tag["currentPage"], by_tag["total"]) == (1, 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", by_tag["StatutResponse_List"][0]["date"])

    single = get(http, sim, "message-status", messageId=message_id, phoneNumber="0712345678").json()
    assert single["number"] == "+33712345678"
    assert single["messageId"] == str(message_id)
    assert "statut" in single and "status" not in single
    assert isinstance(single["stopSms"], bool)

    pairs = [
        {"phoneNumber": "+33712345678", "messageId": message_id},
        {"phoneNumber": "+33700000000", "messageId": message_id},
    ]
    multi = post(http, sim, "multi-status", SMSStatut_List=pairs).json()
    found, missing = multi["StatutResponse_List"]
    assert found["stopSms"] in {"0", "1"} and found["isSpam"] == "0"
    assert (missing["success"], missing["code"], missing["status"]) == (
        False,
        4,
        "Numéro introuvable",
    )


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("bulk-status", {}, 3),
        ("bulk-status", {"messageId": 424242}, 4),
        ("bulk-status-by-tag", {}, 3),
        ("bulk-status-by-tag", {"tag": "nope"}, 4),
        ("message-status", {"messageId": 1}, 2),
        ("message-status", {"phoneNumber": "+33612345678"}, 3),
        ("message-cancel", {}, 3),
        ("message-cancel", {"messageId": 424242}, 4),
        ("stop-sms/delete", {}, 3),
        ("stop-sms/delete", {"id": 77}, 4),
    ],
)
def test_lookup_errors(
    http: requests.Session, sim: SimulatorServer, path: str, params: dict, code: int
) -> None:
    answer = get(http, sim, path, **params)
    assert (answer.status_code, answer.json()["success"], answer.json()["code"]) == (
        200,
        False,
        code,
    )


def test_status_by_tag_pages(http: requests.Session) -> None:
    with run_simulator(api_keys=[KEY], clock=fixed_clock, status_page_size=2) as sim:
        numbers = [f"+3361111{i:04d}" for i in range(5)]
        send(http, sim, numbers, tag="paged")
        pages = [
            get(http, sim, "bulk-status-by-tag", tag="paged", page=p).json() for p in (1, 2, 3, 4)
        ]
        assert [len(p["StatutResponse_List"]) for p in pages] == [2, 2, 1, 0]
        assert [p["currentPage"] for p in pages] == [1, 2, 3, 4]
        assert {p["total"] for p in pages} == {5}
        listed = [e["phoneNumber"] for p in pages for e in p["StatutResponse_List"]]
        assert listed == numbers


# --- cancel -----------------------------------------------------------------------------------


def scheduled(http: requests.Session, sim: SimulatorServer, local_time: str) -> int:
    hour, minute = map(int, local_time.split(":"))
    answer = send(http, sim, scheduledDeliveryDate="04/03/2030", time=hour, minute=minute)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["message_id"])


def cancel(http: requests.Session, sim: SimulatorServer, message_id: int) -> dict:
    return get(http, sim, "message-cancel", messageId=message_id).json()


def test_cancel_success_refunds_and_unsends(http: requests.Session, sim: SimulatorServer) -> None:
    message_id = scheduled(http, sim, "11:05")  # exactly 5 minutes ahead: still allowed
    assert sim.state.credits == pytest.approx(100 - 0.135)
    answer = cancel(http, sim, message_id)
    assert answer == {"success": True, "code": 200, "message": "L'envoi du SMS a été annulé."}
    assert sim.state.credits == pytest.approx(100.0)
    assert sim.state.sends[0]["cancelled"] is True
    assert sim.state.accepted_numbers() == []
    assert get(http, sim, "bulk-status", messageId=message_id).json()["StatutResponse_List"] == []
    assert cancel(http, sim, message_id)["code"] == 5


def test_cancel_too_late(http: requests.Session, sim: SimulatorServer) -> None:
    message_id = scheduled(http, sim, "11:20")
    sim.state.advance(16 * 60)  # 4 minutes before the send
    assert cancel(http, sim, message_id)["code"] == 6
    sim.state.advance(5 * 60)  # the send time has passed
    assert cancel(http, sim, message_id)["code"] == 7
    assert sim.state.sends[0]["cancelled"] is False


def test_cancel_immediate_send_is_already_sent(
    http: requests.Session, sim: SimulatorServer
) -> None:
    message_id = send(http, sim).json()["message_id"]
    assert cancel(http, sim, message_id)["code"] == 7


# --- stop list and account --------------------------------------------------------------------


def test_stop_list_add_list_delete(http: requests.Session, sim: SimulatorServer) -> None:
    added = post(http, sim, "stop-sms/add", phoneNumber="0611223344").json()
    assert (added["success"], added["code"]) == (True, 200)
    listed = get(http, sim, "stop-sms/list").json()
    assert listed["nbData"] == 1
    assert listed["data"] == [
        {"id": added["stopId"], "phoneNumber": "+33611223344", "createdAt": "2030-03-04 11:00:00"}
    ]
    assert post(http, sim, "stop-sms/add", phoneNumber="+33611223344").json()["code"] == 3
    assert post(http, sim, "stop-sms/add", phoneNumber="nope").json()["code"] == 9
    assert post(http, sim, "stop-sms/add").json()["code"] == 2
    assert get(http, sim, "stop-sms/delete", id=added["stopId"]).json()["success"] is True
    assert sim.state.stop_list == []


def test_me_reports_balance_as_strings(http: requests.Session, sim: SimulatorServer) -> None:
    scheduled(http, sim, "12:00")
    credits = get(http, sim, "me").json()["credits"]
    assert credits["balance"] == credits["solde"] == "99.865"
    assert credits["currency"] == "EUR"
    assert credits["toSend"] == 3
    assert credits["creditSms"] == credits["creditSmsECO"] == int(99.865 / 0.045)


def test_unknown_path_and_wrong_method(http: requests.Session, sim: SimulatorServer) -> None:
    assert get(http, sim, "no-such-thing").status_code == 404
    assert get(http, sim, "sondage/to/send").status_code == 405


# --- faults -----------------------------------------------------------------------------------


def test_5xx_fault_answers_before_doing_anything(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.faults = FaultConfig(error_5xx_rate=1.0, seed=3)
    statuses = {send(http, sim).status_code for _ in range(12)}
    assert statuses <= {500, 502, 503} and len(statuses) > 1
    assert sim.state.sends == []
    assert sim.state.credits == 100.0


def test_429_fault_carries_retry_after(http: requests.Session, sim: SimulatorServer) -> None:
    sim.state.faults = FaultConfig(rate_limit_rate=1.0, retry_after=7)
    answer = send(http, sim)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "7")
    assert sim.state.sends == []


def test_reset_fault_closes_without_recording(http: requests.Session, sim: SimulatorServer) -> None:
    sim.state.faults = FaultConfig(reset_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        send(http, sim)
    assert sim.state.sends == []


def test_drop_after_accept_records_then_closes(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.faults = FaultConfig(drop_after_accept_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        send(http, sim, tag="lost")
    assert [s["tag"] for s in sim.state.sends] == ["lost"]
    sim.state.faults = FaultConfig()
    assert get(http, sim, "bulk-status-by-tag", tag="lost").json()["total"] == 3


def test_drop_after_accept_spares_reads(http: requests.Session, sim: SimulatorServer) -> None:
    sim.state.faults = FaultConfig(drop_after_accept_rate=1.0)
    assert get(http, sim, "me").status_code == 200


def test_latency_fault(http: requests.Session, sim: SimulatorServer) -> None:
    sim.state.faults = FaultConfig(latency_ms=150)
    started = time.monotonic()
    get(http, sim, "me")
    assert time.monotonic() - started >= 0.15


def test_seeded_faults_repeat(http: requests.Session) -> None:
    def statuses(seed: int) -> list[int]:
        faults = FaultConfig(error_5xx_rate=0.5, rate_limit_rate=0.2, seed=seed)
        with run_simulator(api_keys=[KEY], faults=faults) as sim:
            return [get(http, sim, "me").status_code for _ in range(30)]

    first = statuses(11)
    assert first == statuses(11)
    assert len(set(first)) > 1


def test_keep_alive_reuses_one_connection(http: requests.Session, sim: SimulatorServer) -> None:
    for _ in range(10):
        assert get(http, sim, "me").status_code == 200
        assert send(http, sim, NUMBERS[:1]).status_code == 200
    assert sim.state.connections_opened == 1


def test_stop_closes_idle_keep_alive_connections(http: requests.Session) -> None:
    server = SimulatorServer(SimulatorState(api_keys=[KEY])).start()
    url = server.url
    get(http, server, "me")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/me", timeout=1)


# --- ambiguous faults -------------------------------------------------------------------------


def status_codes(
    http: requests.Session, sim: SimulatorServer, tag: str, message_id: int
) -> list[int]:
    """The code of by-tag, bulk-status, message-status and multi-status (200: the send is seen)."""
    pair = {"phoneNumber": NUMBERS[0], "messageId": message_id}
    multi = post(http, sim, "multi-status", SMSStatut_List=[pair]).json()
    return [
        get(http, sim, "bulk-status-by-tag", tag=tag).json()["code"],
        get(http, sim, "bulk-status", messageId=message_id).json()["code"],
        get(http, sim, "message-status", messageId=message_id, phoneNumber=NUMBERS[0]).json()[
            "code"
        ],
        multi["StatutResponse_List"][0]["code"],
    ]


def test_status_lag_hides_a_send_from_the_status_endpoints_until_it_passes(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.faults = FaultConfig(status_lag_s=30)
    message_id = send(http, sim, tag="lagged").json()["message_id"]
    assert [s["tag"] for s in sim.state.sends] == ["lagged"]  # recorded and charged at once
    assert len(sim.state.accepted_numbers()) == 3
    assert sim.state.credits == pytest.approx(100 - 0.135)

    unknown_message = {"success": False, "code": 4, "message": "Message introuvable"}
    assert get(http, sim, "bulk-status-by-tag", tag="lagged").json() == {
        "success": False,
        "code": 4,
        "message": "Tag introuvable",
    }
    assert get(http, sim, "bulk-status", messageId=message_id).json() == unknown_message
    single = get(http, sim, "message-status", messageId=message_id, phoneNumber=NUMBERS[0])
    assert single.json() == unknown_message
    pair = {"phoneNumber": NUMBERS[0], "messageId": message_id}
    multi = post(http, sim, "multi-status", SMSStatut_List=[pair]).json()
    assert multi["StatutResponse_List"] == [
        {"success": False, "code": 4, **pair, "status": "Numéro introuvable"}
    ]
    assert cancel(http, sim, message_id)["code"] == 7  # cancel is no status endpoint: it sees it

    sim.state.advance(29.9)
    assert status_codes(http, sim, "lagged", message_id) == [4, 4, 4, 4]
    sim.state.advance(0.1)
    assert status_codes(http, sim, "lagged", message_id) == [200, 200, 200, 200]
    assert get(http, sim, "bulk-status-by-tag", tag="lagged").json()["total"] == 3


def test_hide_scheduled_hides_a_scheduled_send_until_its_slot(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.faults = FaultConfig(hide_scheduled=True)
    now_id = send(http, sim, tag="now").json()["message_id"]
    later = send(http, sim, tag="later", scheduledDeliveryDate="04/03/2030", time=12, minute=0)
    later_id = later.json()["message_id"]  # 12:00 Paris, an hour after T0
    assert [s["tag"] for s in sim.state.sends] == ["now", "later"]
    assert sim.state.credits == pytest.approx(100 - 2 * 0.135)

    assert status_codes(http, sim, "now", now_id) == [200, 200, 200, 200]
    assert status_codes(http, sim, "later", later_id) == [4, 4, 4, 4]
    sim.state.advance(3600 - 1)
    assert status_codes(http, sim, "later", later_id) == [4, 4, 4, 4]
    sim.state.advance(1)
    assert status_codes(http, sim, "later", later_id) == [200, 200, 200, 200]
    entries = get(http, sim, "bulk-status-by-tag", tag="later").json()["StatutResponse_List"]
    assert {e["status"] for e in entries} == {"Waiting"}


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_slow_send_outlasts_the_client_timeout_and_is_recorded_when_it_ends(
    http: requests.Session, sim: SimulatorServer
) -> None:
    sim.state.faults = FaultConfig(slow_send_s=1.0, slow_send_rate=1.0)
    body = {"apiKey": KEY, "phoneNumbers": ",".join(NUMBERS), "sondageIdent": "S", "tag": "slow"}
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        http.post(f"{sim.url}/sondage/to/send", json=body, timeout=(2, 0.3))
    with requests.Session() as other:  # the rest of the gateway answers during the wait
        assert get(other, sim, "me").status_code == 200
        assert get(other, sim, "bulk-status-by-tag", tag="slow").json()["code"] == 4
    assert sim.state.sends == []
    sim.state.advance(60)  # the send is stamped when it is recorded, after the wait

    wait_for(lambda: sim.state.sends)
    assert time.monotonic() - started >= 1.0
    [record] = sim.state.sends
    assert record["tag"] == "slow"
    assert record["received_at"] == (T0 + timedelta(seconds=60)).isoformat()
    assert sim.state.credits == pytest.approx(100 - 0.135)
    assert [(r["path"], r["status"]) for r in sim.state.requests][-1] == ("sondage/to/send", 200)


def test_slow_send_answer_to_a_client_gone_is_quiet(
    sim: SimulatorServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="smspartner.simulator")
    sim.state.faults = FaultConfig(slow_send_s=0.5, slow_send_rate=1.0)
    body = json.dumps({"apiKey": KEY, "phoneNumbers": NUMBERS[0], "sondageIdent": "S"}).encode()
    request = (
        f"POST /v1/sondage/to/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((sim.host, sim.port), timeout=0.3) as client:
        client.sendall(request)
        with pytest.raises(TimeoutError):
            client.recv(1)
        # Linger 0: close with a RST, so the server's write fails instead of being buffered.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_for(lambda: any("client gone" in r.getMessage() for r in caplog.records))
    assert len(sim.state.sends) == 1
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out


REAL_ANSWER = {"success": True, "code": 200, "nb_sms": 3, "cost": 0.135, "currency": "EUR"}


def assert_garbage(answer: requests.Response, kind: str, message_id: int) -> None:
    """``answer`` is the garbage ``kind`` in place of the real answer naming ``message_id``."""
    real = {"success": True, "code": 200, "message_id": message_id, **REAL_ANSWER}
    whole = json.dumps(real, ensure_ascii=False).encode()
    status, content_type = (502, "text/html") if kind == "html502" else (200, "application/json")
    if kind == "html200":
        content_type = "text/html"
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == f"{content_type}; charset=utf-8"
    assert answer.headers["Content-Length"] == str(len(answer.content))
    if kind == "html200":
        assert answer.content.startswith(b"<html>") and answer.content.endswith(b"</html>")
    elif kind == "html502":
        assert answer.content == b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    elif kind == "empty":
        assert answer.content == b""
    elif kind == "truncated":
        assert answer.content == whole[: len(whole) // 2]
        with pytest.raises(ValueError):
            json.loads(answer.content)
    else:
        assert answer.json() == REAL_ANSWER


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_garbage_after_accept_records_the_send(
    http: requests.Session, sim: SimulatorServer, kind: str
) -> None:
    sim.state.faults = FaultConfig(garbage_rate=1.0, garbage_kinds=[kind])
    answer = send(http, sim, tag="junk")
    [record] = sim.state.sends
    assert_garbage(answer, kind, record["message_id"])
    assert record["tag"] == "junk"
    assert len(sim.state.accepted_numbers()) == 3
    assert sim.state.credits == pytest.approx(100 - 0.135)
    assert get(http, sim, "bulk-status-by-tag", tag="junk").json()["total"] == 3


@pytest.mark.parametrize("kind", GARBAGE_KINDS)
def test_garbage_before_forwarding_records_nothing(
    http: requests.Session, sim: SimulatorServer, kind: str
) -> None:
    sim.state.faults = FaultConfig(garbage_before_rate=1.0, garbage_kinds=[kind])
    answer = send(http, sim, tag="junk")
    assert (sim.state.sends, sim.state.accepted_numbers(), sim.state.credits) == ([], [], 100.0)
    assert get(http, sim, "bulk-status-by-tag", tag="junk").json()["code"] == 4
    sim.state.faults = FaultConfig()
    message_id = send(http, sim).json()["message_id"]  # not even a message id was used up
    assert_garbage(answer, kind, message_id)


def test_garbage_only_for_sends_that_would_be_accepted(
    http: requests.Session, sim: SimulatorServer
) -> None:
    for rates in ({"garbage_rate": 1.0}, {"garbage_before_rate": 1.0}):
        sim.state.faults = FaultConfig(**rates, garbage_kinds=["html200"])
        assert send(http, sim, sondageIdent="").json()["code"] == 9
        assert post(http, sim, "sondage/to/send", apiKey="wrong").json()["code"] == 10
        sim.state.credits = 0.1
        assert send(http, sim).json()["code"] == 11
        sim.state.credits = 100.0
        assert get(http, sim, "me").json()["success"] is True
    assert sim.state.sends == []


def test_seeded_garbage_kinds_repeat(http: requests.Session) -> None:
    def answers(seed: int) -> list[tuple[int, bytes]]:
        faults = FaultConfig(garbage_rate=0.5, garbage_before_rate=0.3, seed=seed)
        with run_simulator(api_keys=[KEY], clock=fixed_clock, faults=faults) as sim:
            found = [send(http, sim, NUMBERS[:1]) for _ in range(30)]
            return [(a.status_code, a.content) for a in found]

    first = answers(5)
    assert first == answers(5)
    assert len({status for status, _ in first}) == 2 and len(set(first)) > 5


def test_admin_faults_take_the_ambiguous_fields(
    http: requests.Session, sim: SimulatorServer
) -> None:
    ambiguous: dict[str, Any] = {
        "status_lag_s": 30,
        "hide_scheduled": True,
        "slow_send_s": 1.5,
        "slow_send_rate": 0.1,
        "garbage_rate": 0.2,
        "garbage_kinds": ["empty", "truncated"],
        "garbage_before_rate": 0.05,
    }
    assert admin(http, sim, "faults", **ambiguous).status_code == 200
    assert sim.state.faults == FaultConfig(**ambiguous)
    snapshot = http.get(f"{sim.admin_url}/state", timeout=5).json()["faults"]
    assert {k: snapshot[k] for k in ambiguous} == ambiguous
    for bad in (["empty", "gibberish"], [], "empty"):
        answer = admin(http, sim, "faults", garbage_kinds=bad)
        assert (answer.status_code, answer.json()["success"]) == (400, False), bad
    assert "gibberish" in admin(http, sim, "faults", garbage_kinds=["gibberish"]).json()["message"]
    assert sim.state.faults == FaultConfig(**ambiguous)
    assert admin(http, sim, "faults").status_code == 200
    assert sim.state.faults.garbage_kinds == list(GARBAGE_KINDS)


# --- admin endpoints --------------------------------------------------------------------------


def test_admin_endpoints(http: requests.Session) -> None:
    state = SimulatorState(api_keys=[KEY], credits=5.0, stop_list=["0600000001"], clock=fixed_clock)
    with SimulatorServer(state) as sim:
        assert admin(http, sim, "faults", latency_ms=1, seed=4).status_code == 200
        assert state.faults == FaultConfig(latency_ms=1, seed=4)
        assert admin(http, sim, "faults", nonsense=1).status_code == 400
        assert admin(http, sim, "credits", credits=12.5).status_code == 200
        assert admin(http, sim, "stop", numbers=["0600000002"]).status_code == 200
        assert admin(http, sim, "advance", seconds=60).status_code == 200
        assert state.now() == T0 + timedelta(seconds=60)
        canned = {"path": "me", "status": 503, "body": "down", "times": 1}
        assert admin(http, sim, "canned", **canned).status_code == 200
        assert get(http, sim, "me").status_code == 503
        assert send(http, sim, NUMBERS[:1], tag="a").status_code == 200

        snapshot = http.get(f"{sim.admin_url}/state", timeout=5).json()
        assert snapshot["credits"] == pytest.approx(12.5 - 0.045)
        assert snapshot["stop_list"] == ["+33600000001", "+33600000002"]
        assert [s["tag"] for s in snapshot["sends"]] == ["a"]
        assert snapshot["accepted_numbers"] == ["+33612345678"]
        assert [r["status"] for r in snapshot["requests"]] == [503, 200]

        assert admin(http, sim, "reset").status_code == 200
        assert (state.credits, state.sends, state.stop_list) == (5.0, [], ["+33600000001"])
        assert state.faults == FaultConfig()
        assert state.now() == T0
        state.stop_list = ["0600000009", "+4915112345678"]
        assert state.stop_list == ["+33600000009", "+4915112345678"]


def test_api_key_is_not_logged_nor_stored(
    http: requests.Session, sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smspartner.simulator")
    send(http, sim)
    get(http, sim, "me")
    get(http, sim, "bulk-status-by-tag", tag="x")
    assert any(r.name == "smspartner.simulator" for r in caplog.records)
    assert KEY not in caplog.text
    state_text = http.get(f"{sim.admin_url}/state", timeout=5).text
    assert KEY not in state_text
    assert all("apiKey" not in r["params"] for r in sim.state.requests)


# --- CLI --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("given_key", [None, "cli-secret-Zx81"])
def test_cli_prints_its_url_and_stops_on_sigterm(given_key: str | None) -> None:
    command = [sys.executable, "-m", "smspartner.simulator", "--port", "0", "--credits", "3"]
    if given_key:
        command += ["--api-key", given_key]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(
            r"SMS Partner simulator listening on (http://127\.0\.0\.1:\d+/v1)", line
        )
        assert match, line
        key = given_key or DEFAULT_API_KEY
        answer = requests.get(f"{match.group(1)}/me", params={"apiKey": key}, timeout=5)
        assert answer.json()["credits"]["balance"] == "3.000"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    if given_key:
        assert given_key not in line + out + err
    else:
        assert DEFAULT_API_KEY in err and "default" in err


@pytest.mark.slow
def test_cli_sets_the_ambiguous_faults() -> None:
    flags = "--status-lag-s 30 --hide-scheduled --slow-send-s 2.5 --slow-send-rate 0.25"
    flags += " --garbage-rate 0.5 --garbage-kinds html502,empty --garbage-before-rate 0.125"
    process = subprocess.Popen(
        [sys.executable, "-m", "smspartner.simulator", "--port", "0", *flags.split()],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(
            r"SMS Partner simulator listening on (http://127\.0\.0\.1:\d+)/v1", line
        )
        assert match, line
        faults = requests.get(f"{match.group(1)}/_sim/state", timeout=5).json()["faults"]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert faults == {
        **asdict(FaultConfig()),
        "status_lag_s": 30,
        "hide_scheduled": True,
        "slow_send_s": 2.5,
        "slow_send_rate": 0.25,
        "garbage_rate": 0.5,
        "garbage_kinds": ["html502", "empty"],
        "garbage_before_rate": 0.125,
    }


def test_cli_rejects_unknown_garbage_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", "--garbage-kinds", "empty,bogus"])
    assert exited.value.code == 2
    assert "bogus" in capsys.readouterr().err


def test_state_snapshot_is_json(sim: SimulatorServer) -> None:
    assert json.loads(json.dumps(sim.state.snapshot()))["credits"] == 100.0


# --- the package's layers ----------------------------------------------------------------------

# Each module of the simulator imports only those before it here (the map in its __init__), so
# the state is usable without a server and the endpoints without a socket; none imports the
# client side, which the simulator must never share code with (it would agree with its bugs).
SIMULATOR_LAYERS = ["reply", "faults", "state", "api", "admin", "server", "cli"]


def simulator_imports(path: Path) -> set[str]:
    """The modules of ``smspartner`` a file imports, by name within the simulator package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "smspartner.simulator":  # from smspartner.simulator import api
                names = [f"smspartner.simulator.{a.name}" for a in node.names]
            else:
                names = [node.module]
        for name in names:
            if name.startswith("smspartner.simulator."):
                found.add(name.removeprefix("smspartner.simulator."))
            elif name.split(".")[0] == "smspartner":
                found.add(name)
    return found


@pytest.mark.parametrize("position", range(len(SIMULATOR_LAYERS)), ids=SIMULATOR_LAYERS)
def test_each_simulator_module_imports_only_the_layers_before_it(position: int) -> None:
    path = REPO / "smspartner" / "simulator" / f"{SIMULATOR_LAYERS[position]}.py"
    assert simulator_imports(path) <= set(SIMULATOR_LAYERS[:position])


def test_every_simulator_module_has_its_layer() -> None:
    modules = {p.stem for p in (REPO / "smspartner" / "simulator").glob("*.py")}
    assert modules == {*SIMULATOR_LAYERS, "__init__", "__main__"}
