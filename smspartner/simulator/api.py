"""The vendor's endpoints under ``/v1/``, validated like the documented API (``smspartner-api.md``).

JSON; HTTP 200 on success, 400 with the ``error`` list for codes 2, 9 and 90, and HTTP 200 with
``success: false`` for every other API code, as the documented envelope shows:

- ``POST sondage/to/send`` (and ``POST send`` with ``message``): codes 1, 10, 2, 9, 11.
  Choices where the real API is undocumented or would need an account setting:
  a number on the STOP list rejects the whole request with code 9 and one error element per such
  number (``Le numéro est dans la liste STOP (+336...)``) instead of the real code 14; more than
  500 numbers is code 9 (not 50); the scheduled date is read in Europe/Paris time; quiet hours
  are not simulated (a send is "delivered" at its own time); one SMS is billed per recipient of a
  survey.
- ``GET me``, ``GET stop-sms/list``, ``POST stop-sms/add``, ``GET stop-sms/delete``.
- ``GET bulk-status-by-tag`` (``tag``, optional ``page``; ``status_page_size`` entries per page,
  ``total`` counts entries, dates as ``Y-m-d H:i:s`` Paris time), ``GET bulk-status``
  (dates as Unix-timestamp strings, ``stopSMS``), ``GET message-status`` (``statut``,
  ``stopSms``), ``POST multi-status`` (``stopSms`` as ``"0"``/``"1"``). Cancelled sends have no
  recipient statuses; status-by-tag entries carry no message id, as documented.
- ``GET message-cancel``: 3 missing id, 4 unknown, 5 already cancelled, 7 already sent (an
  immediate send, or the scheduled time has passed), 6 less than five minutes before the
  scheduled time; on success the cost is refunded.

A canned answer (``SimulatorState.add_canned``) or a fault (``faults.py``) answers first.
The API key is never logged nor stored in the request log.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from smspartner.simulator.faults import early_fault, garbage
from smspartner.simulator.reply import Reply, fail, invalid
from smspartner.simulator.state import Send, SimulatorState, to_e164

PARIS: Final = ZoneInfo("Europe/Paris")
MAX_NUMBERS: Final = 500
CANCEL_NOTICE: Final = timedelta(minutes=5)
CANCELLED_MESSAGE: Final = "L'envoi du SMS a été annulé."
_DATE: Final = re.compile(r"^\d{2}/\d{2}/\d{4}$")
_PHONES: Final = "children[phoneNumbers].data"
_SEND_PATHS: Final = frozenset({"sondage/to/send", "send"})


def _paris(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%Y-%m-%d %H:%M:%S")


def _int_field(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _sms_segments(message: str) -> int:
    # Approximation of the GSM 7-bit rule (160, then 153 per part); enough for a simulator.
    return 1 if len(message) <= 160 else math.ceil(len(message) / 153)


# --- one request ---------------------------------------------------------------------------------


def answer(
    state: SimulatorState, method: str, path: str, query: Mapping[str, str], raw: bytes
) -> Reply:
    """Answer one ``/v1/<path>`` request (latency already applied by the caller)."""
    path = path.strip("/")
    with state.lock:
        reply = _intercept(state, path)
        faults = state.faults
        slow = (
            reply is None
            and method == "POST"
            and path in _SEND_PATHS
            and faults.slow_send_s > 0
            and state.draw(faults.slow_send_rate)
        )
        if not slow:
            return _finish(state, method, path, query, raw, reply)
    # Outside the lock, so the rest of the gateway answers meanwhile; the send is validated
    # and recorded only when the wait is over, as on a platform slower than our timeout.
    time.sleep(faults.slow_send_s)
    with state.lock:
        return _finish(state, method, path, query, raw, None)


def _finish(
    state: SimulatorState,
    method: str,
    path: str,
    query: Mapping[str, str],
    raw: bytes,
    reply: Reply | None,
) -> Reply:
    if reply is None:
        reply = _route(state, method, path, query, raw)
    state.log_request(method, path, query, reply.close or reply.status)
    return reply


def _intercept(state: SimulatorState, path: str) -> Reply | None:
    """A canned answer or a fault that answers before the request is looked at, if any."""
    canned = state.take_canned(path)
    if canned is not None:
        return Reply(
            canned.status,
            raw=canned.payload,
            headers=canned.headers,
            content_type=canned.content_type,
        )
    return early_fault(state.faults, state.rng)


def _route(
    state: SimulatorState, method: str, path: str, query: Mapping[str, str], raw: bytes
) -> Reply:
    """The endpoint's answer, once the method, the body and the key are checked."""
    route = _ROUTES.get(path)
    if route is None:
        return fail(404, "Not found", 404)
    if route[0] != method:
        return fail(405, "Method not allowed", 405)
    if method == "POST":
        try:
            params = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            return fail(90, "JSON malformé", 400)
        if not isinstance(params, dict):
            return fail(90, "JSON malformé", 400)
    else:
        params = dict(query)
    key = params.get("apiKey")
    if not key:
        return fail(1, "La clé API est requise")
    if key not in state.api_keys:
        return fail(10, "Clé API incorrecte")
    now = state.now()
    state.settle(now)
    return route[1](state, params, now)


# --- sends ---------------------------------------------------------------------------------------


def _send(state: SimulatorState, params: Mapping[str, Any], now: datetime, kind: str) -> Reply:
    raw_numbers = params.get("phoneNumbers")
    if raw_numbers is None or (isinstance(raw_numbers, str) and not raw_numbers.strip()):
        return fail(2, "Le numéro de téléphone est requis", 400)
    errors: list[tuple[str, str]] = []
    numbers = _numbers(raw_numbers, errors)
    content_key = "sondageIdent" if kind == "survey" else "message"
    content = params.get(content_key)
    if not isinstance(content, str) or not content.strip():
        what = "Survey identifier" if kind == "survey" else "Message"
        errors.append((f"children[{content_key}].data", f"{what} is required"))
    tag = params.get("tag")
    if tag is not None and not _tag_is_valid(tag):
        errors.append(("children[tag].data", "Tag: max 20 characters, no spaces, lowercase only"))
    scheduled_at, schedule = _check_schedule(params, now, errors)
    e164 = _recipients(state, numbers, errors) if len(numbers) <= MAX_NUMBERS else []
    if errors:
        return invalid(errors)
    per_number = 1 if kind == "survey" else _sms_segments(str(content))
    nb_sms = per_number * len(e164)
    cost = round(nb_sms * state.cost_per_sms, 6)
    if cost > state.credits + 1e-9:
        return fail(11, "Crédits insuffisants")
    send = Send(
        message_id=state.next_message_id,
        kind=kind,
        tag=tag,
        numbers=numbers,
        e164=e164,
        survey_id=str(content) if kind == "survey" else None,
        message=str(content) if kind == "sms" else None,
        schedule=schedule,
        scheduled_at=scheduled_at,
        nb_sms=nb_sms,
        cost=cost,
        received_at=now,
    )
    return _accept(state, send)


def _numbers(raw_numbers: object, errors: list[tuple[str, str]]) -> list[str]:
    """The numbers of a send as typed; an error for numbers not in one comma string, or too many."""
    numbers: list[str] = []
    if isinstance(raw_numbers, str):
        numbers = [n.strip() for n in raw_numbers.split(",")]
    else:
        errors.append((_PHONES, "phoneNumbers must be a comma-separated string"))
    if len(numbers) > MAX_NUMBERS:
        errors.append((_PHONES, f"Maximum {MAX_NUMBERS} numbers per request"))
    return numbers


def _tag_is_valid(tag: object) -> bool:
    return (
        isinstance(tag, str)
        and 1 <= len(tag) <= 20
        and not re.search(r"\s", tag)
        and tag == tag.lower()
    )


def _recipients(
    state: SimulatorState, numbers: list[str], errors: list[tuple[str, str]]
) -> list[str]:
    """The numbers in E.164; an error for each unreadable one and each on the STOP list."""
    e164: list[str] = []
    stopped = state.stops
    for number in numbers:
        normalised = to_e164(number)
        if normalised is None:
            errors.append((_PHONES, f"Invalid phone number ({number})"))
        elif normalised in stopped:
            errors.append((_PHONES, f"Le numéro est dans la liste STOP ({number})"))
        else:
            e164.append(normalised)
    return e164


def _accept(state: SimulatorState, send: Send) -> Reply:
    """Charge and record a valid send, unless a fault drawn here says otherwise."""
    faults = state.faults
    drop = state.draw(faults.drop_after_accept_rate)
    body: dict[str, Any] = {
        "success": True,
        "code": 200,
        "message_id": send.message_id,
        "nb_sms": send.nb_sms,
        "cost": round(send.cost, 4),
        "currency": state.currency,
    }
    if send.scheduled_at is not None:
        body["scheduledDeliveryDate"] = _paris(send.scheduled_at)
    if not drop and state.draw(faults.garbage_before_rate):
        # A proxy answered; the gateway never saw the request.
        return garbage(faults, state.rng, body)
    state.credits = round(state.credits - send.cost, 6)
    state.record_send(send)
    if drop:
        return Reply(close="drop")
    if state.draw(faults.garbage_rate):
        return garbage(faults, state.rng, body)
    return Reply(200, body)


def _check_schedule(
    params: Mapping[str, Any], now: datetime, errors: list[tuple[str, str]]
) -> tuple[datetime | None, dict[str, Any] | None]:
    """(when the send is due, the schedule as sent), or (None, None) for an immediate send;
    an error for each field the gateway would refuse."""
    date = params.get("scheduledDeliveryDate")
    if date in (None, ""):
        return None, None
    schedule = {k: params.get(k) for k in ("scheduledDeliveryDate", "time", "minute")}
    hour, minute = params.get("time"), params.get("minute")
    start = len(errors)
    if hour in (None, ""):
        errors.append(("children[time].data", "Hour is required"))
    if minute in (None, ""):
        errors.append(("children[minute].data", "Minute is required"))
    day = _schedule_day(date, errors)
    hour_value, minute_value = _int_field(hour), _int_field(minute)
    if hour not in (None, "") and (hour_value is None or not 0 <= hour_value <= 24):
        errors.append(("children[time].data", "Hour must be between 0 and 24"))
    if minute not in (None, "") and (
        minute_value is None or not 0 <= minute_value <= 55 or minute_value % 5
    ):
        errors.append(
            (
                "children[minute].data",
                "Minutes must be between 0 and 55 in intervals of 5 minutes",
            )
        )
    if len(errors) > start or day is None or hour_value is None or minute_value is None:
        return None, schedule
    local = (day + timedelta(hours=hour_value, minutes=minute_value)).replace(tzinfo=PARIS)
    scheduled_at = local.astimezone(UTC)
    if scheduled_at < now:
        errors.append(
            (
                "children[scheduledDeliveryDate].data",
                f"The date ({date} {hour_value:02d}:{minute_value:02d}) is earlier than "
                "the current date.",
            )
        )
        return None, schedule
    return scheduled_at, schedule


def _schedule_day(date: object, errors: list[tuple[str, str]]) -> datetime | None:
    if not isinstance(date, str) or not _DATE.match(date):
        errors.append(("children[scheduledDeliveryDate].data", f"Invalid date ({date})"))
        return None
    try:
        return datetime.strptime(date, "%d/%m/%Y")
    except ValueError:
        errors.append(("children[scheduledDeliveryDate].data", f"Invalid date ({date})"))
        return None


def _survey_send(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    return _send(state, params, now, "survey")


def _sms_send(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    return _send(state, params, now, "sms")


# --- the account ---------------------------------------------------------------------------------


def _me(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    pending = sum(s.nb_sms for s in state.sent if not s.cancelled and s.delivery_at > now)
    balance = f"{state.credits:.3f}"
    sms_left = int(state.credits / state.cost_per_sms) if state.cost_per_sms > 0 else 0
    return Reply(
        200,
        {
            "success": True,
            "code": 200,
            "user": {"username": "simulator@example.invalid", "firstname": "Sim"},
            "credits": {
                "creditSms": sms_left,
                "creditSmsECO": sms_left,
                "creditHlr": 0,
                "toSend": pending,
                "solde": balance,
                "currency": state.currency,
                "balance": balance,
            },
        },
    )


def _stop_list(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    data = [
        {"id": s.id, "phoneNumber": s.number, "createdAt": _paris(s.created_at)}
        for s in state.stops.values()
    ]
    return Reply(200, {"success": True, "code": 200, "nbData": len(data), "data": data})


def _stop_add(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    number = params.get("phoneNumber")
    if not isinstance(number, str) or not number.strip():
        return fail(2, "Le numéro de téléphone est requis", 400)
    e164 = to_e164(number)
    if e164 is None:
        return invalid([("children[phoneNumber].data", f"Invalid phone number ({number})")])
    if e164 in state.stops:
        return fail(3, "Le numéro est déjà dans la liste STOP")
    return Reply(200, {"success": True, "code": 200, "stopId": state.add_stop_at(e164, now)})


def _stop_delete(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    stop_id = _int_field(params.get("id"))
    if stop_id is None:
        return fail(3, "L'identifiant est requis")
    for stop in state.stops.values():
        if stop.id == stop_id:
            del state.stops[stop.number]
            return Reply(200, {"success": True, "code": 200})
    return fail(4, "Identifiant introuvable")


# --- statuses and cancels ------------------------------------------------------------------------


def _find_send(
    state: SimulatorState, params: Mapping[str, Any], seen_at: datetime | None = None
) -> Send | Reply:
    """The send named by ``messageId``; with ``seen_at``, only if a status endpoint sees it."""
    raw_id = params.get("messageId")
    if raw_id in (None, ""):
        return fail(3, "L'identifiant du message est requis")
    message_id = _int_field(raw_id)
    for send in state.sent:
        if send.message_id == message_id:
            if seen_at is not None and not state.visible(send, seen_at):
                break
            return send
    return fail(4, "Message introuvable")


def _by_tag(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    tag = params.get("tag")
    if not tag:
        return fail(3, "Le tag est requis")
    tagged = [s for s in state.sent if s.tag == tag and state.visible(s, now)]
    if not tagged:
        return fail(4, "Tag introuvable")
    page = max(_int_field(params.get("page")) or 1, 1)
    rows = [(s, n) for s in tagged if not s.cancelled for n in s.e164]
    size = max(state.status_page_size, 1)
    entries = []
    for send, number in rows[(page - 1) * size : page * size]:
        status, stop, when = state.recipient(send, number, now)
        entries.append(
            {"phoneNumber": number, "status": status, "stopSMS": stop, "date": _paris(when)}
        )
    return Reply(
        200,
        {
            "success": True,
            "code": 200,
            "currentPage": page,
            "total": len(rows),
            "StatutResponse_List": entries,
        },
    )


def _bulk_status(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    found = _find_send(state, params, now)
    if isinstance(found, Reply):
        return found
    entries = []
    for number in [] if found.cancelled else found.e164:
        status, stop, when = state.recipient(found, number, now)
        entries.append(
            {
                "phoneNumber": number,
                "status": status,
                "stopSMS": stop,
                "date": str(int(when.timestamp())),
            }
        )
    return Reply(
        200,
        {
            "success": True,
            "code": 200,
            "message_id": str(found.message_id),
            "StatutResponse_List": entries,
        },
    )


def _message_status(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    number = params.get("phoneNumber")
    if not number:
        return fail(2, "Le numéro de téléphone est requis")
    found = _find_send(state, params, now)
    if isinstance(found, Reply):
        return found
    e164 = to_e164(str(number))
    if found.cancelled or e164 not in found.e164:
        return fail(4, "Numéro introuvable")
    status, stop, when = state.recipient(found, e164, now)
    return Reply(
        200,
        {
            "success": True,
            "code": 200,
            "number": e164,
            "messageId": str(found.message_id),
            "stopSms": stop,
            "date": _paris(when),
            "statut": status,
            "cost": state.cost_per_sms,
            "countryCode": "FR" if e164.startswith("+33") else "",
            "currency": state.currency,
        },
    )


def _multi_status(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    pairs = params.get("SMSStatut_List", params.get("SMSStatus_List"))
    if not isinstance(pairs, list) or not pairs:
        return fail(2, "La liste des numéros est requise", 400)
    if len(pairs) > MAX_NUMBERS:
        return fail(50, f"Maximum {MAX_NUMBERS} numéros", 400)
    by_id = {s.message_id: s for s in state.sent if not s.cancelled and state.visible(s, now)}
    answers = [_pair_status(state, by_id, pair, now) for pair in pairs]
    return Reply(200, {"success": True, "code": 200, "StatutResponse_List": answers})


def _pair_status(
    state: SimulatorState, by_id: Mapping[int, Send], pair: object, now: datetime
) -> dict[str, Any]:
    """One entry of a multi-status answer: the pair's status, or "not found"."""
    pair = pair if isinstance(pair, dict) else {}
    number, message_id = pair.get("phoneNumber"), _int_field(pair.get("messageId"))
    send = by_id.get(message_id) if message_id is not None else None
    e164 = to_e164(str(number)) if number else None
    if send is None or e164 not in send.e164:
        return {
            "success": False,
            "code": 4,
            "phoneNumber": number,
            "messageId": pair.get("messageId"),
            "status": "Numéro introuvable",
        }
    status, stop, when = state.recipient(send, e164, now)
    return {
        "success": True,
        "code": 200,
        "phoneNumber": number,
        "messageId": send.message_id,
        "status": status,
        "date": str(int(when.timestamp())),
        "stopSms": "1" if stop else "0",
        "isSpam": "0",
    }


def _cancel(state: SimulatorState, params: Mapping[str, Any], now: datetime) -> Reply:
    found = _find_send(state, params)
    if isinstance(found, Reply):
        return found
    if found.cancelled:
        return fail(5, "L'envoi a déjà été annulé")
    if found.scheduled_at is None or found.scheduled_at <= now:
        return fail(7, "Le SMS a déjà été envoyé")
    if found.scheduled_at - now < CANCEL_NOTICE:
        return fail(6, "Annulation impossible moins de 5 minutes avant l'envoi")
    found.cancelled = True
    state.credits = round(state.credits + found.cost, 6)
    return Reply(200, {"success": True, "code": 200, "message": CANCELLED_MESSAGE})


_Endpoint = Callable[[SimulatorState, Mapping[str, Any], datetime], Reply]
_ROUTES: Final[dict[str, tuple[str, _Endpoint]]] = {
    "sondage/to/send": ("POST", _survey_send),
    "send": ("POST", _sms_send),
    "me": ("GET", _me),
    "stop-sms/list": ("GET", _stop_list),
    "stop-sms/add": ("POST", _stop_add),
    "stop-sms/delete": ("GET", _stop_delete),
    "bulk-status-by-tag": ("GET", _by_tag),
    "bulk-status": ("GET", _bulk_status),
    "message-status": ("GET", _message_status),
    "multi-status": ("POST", _multi_status),
    "message-cancel": ("GET", _cancel),
}
