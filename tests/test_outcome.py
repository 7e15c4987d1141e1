"""What one answer to a send proves: ``classify`` as a table over every way an answer can end.

Accepted only for a well-formed success with its message id; refused only for a documented code,
an HTTP 429 or a request that never left; everything else is unknown (it may have landed). These
are pure-function tests: ``Exchange`` values are built by hand, nothing touches the network.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smspartner import mask_phone_numbers
from smspartner.outcome import (
    SEND_CODES,
    Ending,
    Exchange,
    Kind,
    Refusal,
    SendOutcome,
    classify,
    may_have_landed,
)

SEED = b'{"success":true,"code":200,"message_id":307,"nb_sms":1,"cost":0.038,"currency":"EUR"}'
HTML = b"<!DOCTYPE html><html><head><title>Oops</title></head><body>Bad gateway</body></html>"
NUMBER = "+33612345678"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def refused(code: int, status: int = 200, **extra: Any) -> Exchange:
    return Exchange(status, body(success=False, code=code, message=f"refused {code}", **extra))


CODE9_ERROR = [
    {"elementId": "children[message].data", "message": "Le message est requis"},
    {
        "elementId": "children[phoneNumbers].data",
        "message": "Ce numero de telephone n'est pas valide (922264)",
    },
]
CODE9_ERRORS = (
    ("children[message].data", "Le message est requis"),
    ("children[phoneNumbers].data", "Ce numero de telephone n'est pas valide (922264)"),
)

ACCEPTED_SEED = {
    "kind": Kind.ACCEPTED,
    "refusal": None,
    "code": None,
    "http_status": 200,
    "message_id": 307,
    "nb_sms": 1,
    "cost": 0.038,
    "currency": "EUR",
    "scheduled": None,
}
UNKNOWN = {"kind": Kind.UNKNOWN, "refusal": None, "message_id": None, "cost": None}


def unknown(status: int | None) -> dict[str, Any]:
    return {**UNKNOWN, "http_status": status}


def refusal(why: Refusal, code: int | None, status: int | None = 200) -> dict[str, Any]:
    return {"kind": Kind.REFUSED, "refusal": why, "code": code, "http_status": status}


CASES = [
    # --- accepted ---------------------------------------------------------------------------
    pytest.param(Exchange(200, SEED), ACCEPTED_SEED, id="accepted-seed"),
    pytest.param(
        Exchange(200, SEED.replace(b"307", b'"307"')),
        ACCEPTED_SEED,
        id="accepted-message-id-as-string",
    ),
    pytest.param(
        Exchange(200, SEED[:-1] + b',"scheduledDeliveryDate":"2025-03-04 20:00:00"}'),
        {**ACCEPTED_SEED, "scheduled": "2025-03-04 20:00:00"},
        id="accepted-scheduled",
    ),
    pytest.param(
        Exchange(200, body(success=True, code=200, message_id=307, nb_sms=2)),
        {**ACCEPTED_SEED, "nb_sms": 2, "cost": None, "currency": None},
        id="accepted-without-cost",
    ),
    pytest.param(
        Exchange(200, b"\xef\xbb\xbf" + SEED), ACCEPTED_SEED, id="accepted-bom-prefixed-json"
    ),
    pytest.param(
        Exchange(200, body(success=True, messageId=307)),
        {**ACCEPTED_SEED, "nb_sms": None, "cost": None, "currency": None},
        id="accepted-messageId-spelling-no-code",
    ),
    # --- 2xx that proves nothing ------------------------------------------------------------
    pytest.param(
        Exchange(200, body(success=True, code=200, nb_sms=1, cost=0.038)),
        unknown(200),
        id="success-without-message-id",
    ),
    pytest.param(
        Exchange(200, body(success=True, code=9, message_id=307)),
        unknown(200),
        id="success-true-with-code-9",
    ),
    pytest.param(Exchange(200, body(code=200, message_id=307)), unknown(200), id="success-missing"),
    pytest.param(
        Exchange(200, body(success="true", code=200, message_id=307)),
        unknown(200),
        id="success-as-string",
    ),
    pytest.param(
        Exchange(200, body(success=1, code=200, message_id=307)), unknown(200), id="success-as-1"
    ),
    pytest.param(Exchange(200, HTML), unknown(200), id="200-html"),
    pytest.param(Exchange(200, b""), unknown(200), id="200-empty"),
    pytest.param(Exchange(200, b"  \r\n\t "), unknown(200), id="200-whitespace"),
    pytest.param(Exchange(200, SEED[:40]), unknown(200), id="200-truncated-json"),
    pytest.param(Exchange(200, b"[" + SEED + b"]"), unknown(200), id="200-json-list"),
    pytest.param(Exchange(200, b"null"), unknown(200), id="200-json-null"),
    pytest.param(Exchange(200, b'"accepted"'), unknown(200), id="200-json-string"),
    pytest.param(Exchange(200, SEED[:-1] + b',"x":"\xe9\xff"}'), unknown(200), id="200-bad-utf8"),
    pytest.param(Exchange(200, b"\xff\xfe" + SEED), unknown(200), id="200-utf16-bom"),
    pytest.param(
        Exchange(200, SEED, failure="sondage/to/send: answer larger than 1048576 bytes"),
        unknown(200),
        id="200-parses-but-failure-set",
    ),
    pytest.param(
        Exchange(200, SEED[:30], failure="sondage/to/send: connection reset while reading"),
        unknown(200),
        id="200-body-cut",
    ),
    # --- 5xx, redirects, other 4xx ----------------------------------------------------------
    pytest.param(Exchange(500, SEED), unknown(500), id="500-json-success"),
    pytest.param(
        Exchange(500, body(success=False, code=500, message="failed to queue")),
        unknown(500),
        id="500-json-error",
    ),
    pytest.param(Exchange(502, HTML), unknown(502), id="502-html"),
    pytest.param(Exchange(503, b"Service Unavailable"), unknown(503), id="503-text"),
    pytest.param(Exchange(504, b""), unknown(504), id="504-empty"),
    pytest.param(Exchange(301, HTML), unknown(301), id="301"),
    pytest.param(Exchange(302, b""), unknown(302), id="302"),
    pytest.param(Exchange(307, SEED), unknown(307), id="307-with-json"),
    pytest.param(Exchange(100, SEED), unknown(100), id="100"),
    pytest.param(Exchange(401, HTML), unknown(401), id="401-html"),
    pytest.param(Exchange(403, HTML), unknown(403), id="403-html"),
    pytest.param(Exchange(404, HTML), unknown(404), id="404-html"),
    # --- documented refusals ----------------------------------------------------------------
    pytest.param(
        Exchange(400, body(success=False, code=9, error=CODE9_ERROR)),
        {**refusal(Refusal.CONTENT, 9, 400), "errors": CODE9_ERRORS},
        id="400-code-9-error-list",
    ),
    pytest.param(
        Exchange(400, body(success=False, code=9, errors=CODE9_ERROR)),
        {**refusal(Refusal.CONTENT, 9, 400), "errors": CODE9_ERRORS},
        id="400-code-9-errors-list",
    ),
    pytest.param(
        Exchange(200, body(success=False, code=9, errors=CODE9_ERROR)),
        {**refusal(Refusal.CONTENT, 9), "errors": CODE9_ERRORS},
        id="200-code-9",
    ),
    pytest.param(refused(1), refusal(Refusal.ACCOUNT, 1), id="code-1"),
    pytest.param(refused(10), refusal(Refusal.ACCOUNT, 10), id="code-10"),
    pytest.param(refused(10, 401), refusal(Refusal.ACCOUNT, 10, 401), id="401-json-code-10"),
    pytest.param(refused(20), refusal(Refusal.ACCOUNT, 20), id="code-20"),
    pytest.param(refused(30), refusal(Refusal.ACCOUNT, 30), id="code-30"),
    pytest.param(refused(40), refusal(Refusal.ACCOUNT, 40), id="code-40"),
    pytest.param(refused(96), refusal(Refusal.ACCOUNT, 96), id="code-96"),
    pytest.param(refused(11), refusal(Refusal.CREDITS, 11), id="code-11"),
    pytest.param(refused(22), refusal(Refusal.SLOT, 22), id="code-22"),
    pytest.param(refused(23), refusal(Refusal.SLOT, 23), id="code-23"),
    pytest.param(refused(13), refusal(Refusal.CONTENT, 13), id="code-13"),
    pytest.param(refused(14), refusal(Refusal.CONTENT, 14), id="code-14"),
    pytest.param(refused(50), refusal(Refusal.CONTENT, 50), id="code-50"),
    pytest.param(refused(90), refusal(Refusal.CONTENT, 90), id="code-90"),
    pytest.param(refused(500), refusal(Refusal.CONTENT, 500), id="code-500-at-200"),
    pytest.param(
        Exchange(200, body(success=False, code="11", message="Crédit insuffisant")),
        refusal(Refusal.CREDITS, 11),
        id="code-as-string",
    ),
    pytest.param(refused(777), unknown(200), id="undocumented-code-777"),
    pytest.param(
        Exchange(200, body(success=False, message="Erreur")), unknown(200), id="false-without-code"
    ),
    pytest.param(
        Exchange(200, body(code=11, message="Crédit insuffisant")),
        unknown(200),
        id="code-11-success-missing",
    ),
    pytest.param(
        Exchange(429, b"Too Many Requests", retry_after=12.0),
        {**refusal(Refusal.RATE_LIMITED, None, 429), "retry_after": 12.0},
        id="429-retry-after",
    ),
    pytest.param(
        Exchange(429, HTML),
        {**refusal(Refusal.RATE_LIMITED, None, 429), "retry_after": None},
        id="429-no-retry-after",
    ),
    # --- no HTTP answer ---------------------------------------------------------------------
    pytest.param(
        Exchange(None, connected=False, failure="connection refused"),
        refusal(Refusal.NOT_CONNECTED, None, None),
        id="not-connected",
    ),
    pytest.param(
        Exchange(None, connected=False),
        refusal(Refusal.NOT_CONNECTED, None, None),
        id="not-connected-no-detail",
    ),
    pytest.param(
        Exchange(None, failure="sondage/to/send: read timeout after 20 s"),
        unknown(None),
        id="read-timeout-after-sending",
    ),
    pytest.param(
        Exchange(None, failure="sondage/to/send: connection reset by peer"),
        unknown(None),
        id="reset-after-sending",
    ),
    pytest.param(Exchange(None), unknown(None), id="no-answer-no-detail"),
]


def assert_reason_is_clean(outcome: SendOutcome) -> None:
    assert outcome.reason
    assert "\n" not in outcome.reason and "\r" not in outcome.reason
    assert len(outcome.reason) <= 200
    assert mask_phone_numbers(outcome.reason) == outcome.reason  # no number left unmasked


@pytest.mark.parametrize(("exchange", "expected"), CASES)
def test_classify(exchange: Exchange, expected: dict[str, Any]) -> None:
    outcome = classify(exchange)
    got = {name: getattr(outcome, name) for name in expected}
    assert got == expected, outcome
    if outcome.kind is not Kind.REFUSED:
        assert outcome.refusal is None and outcome.code is None
    if outcome.kind is not Kind.ACCEPTED:
        assert outcome.message_id is None
    if outcome.refusal is not Refusal.RATE_LIMITED:
        assert outcome.retry_after is None
    assert_reason_is_clean(outcome)


def test_a_number_quoted_by_the_gateway_is_masked_in_the_reason_and_kept_in_errors() -> None:
    error = [{"elementId": "children[phoneNumbers].data", "message": f"invalide ({NUMBER})"}]
    exchange = Exchange(400, body(success=False, code=9, message=f"Numéro {NUMBER}", error=error))
    outcome = classify(exchange)
    assert (outcome.kind, outcome.refusal, outcome.code) == (Kind.REFUSED, Refusal.CONTENT, 9)
    assert NUMBER not in outcome.reason and "612345678" not in outcome.reason
    assert "+336" in outcome.reason and "78" in outcome.reason  # masked, still recognisable
    assert outcome.errors == (("children[phoneNumbers].data", f"invalide ({NUMBER})"),)
    assert_reason_is_clean(outcome)


def test_a_long_multiline_reason_is_one_line_of_200_characters() -> None:
    failure = "read timeout\n" + "x" * 1000 + f"\n{NUMBER}"
    outcome = classify(Exchange(None, failure=failure))
    assert outcome.kind is Kind.UNKNOWN
    assert len(outcome.reason) == 200 and outcome.reason.endswith("…")
    assert_reason_is_clean(outcome)
    message = "Erreur " * 100 + NUMBER
    long_refusal = classify(Exchange(200, body(success=False, code=14, message=message)))
    assert long_refusal.refusal is Refusal.CONTENT
    assert_reason_is_clean(long_refusal)


def test_every_documented_send_code_is_a_refusal() -> None:
    for code in SEND_CODES:
        outcome = classify(refused(code))
        assert outcome.kind is Kind.REFUSED and outcome.code == code, code


def test_a_deeply_nested_body_is_unknown_not_an_exception() -> None:
    assert classify(Exchange(200, b"[" * 2000)).kind is Kind.UNKNOWN


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": true, "code": 200, "message_id": 0}',
        b'{"success": true, "code": 200, "message_id": -5}',
        '{"success": true, "code": 200, "message_id": "\u0663"}'.encode(),
    ],
    ids=["zero", "negative", "arabic-indic-digit"],
)
def test_a_message_id_that_is_not_a_positive_ascii_number_proves_nothing(body: bytes) -> None:
    assert classify(Exchange(200, body)).kind is Kind.UNKNOWN


def test_a_non_finite_cost_is_no_price() -> None:
    outcome = classify(Exchange(200, b'{"success": true, "message_id": 3, "cost": NaN}'))
    assert outcome.kind is Kind.ACCEPTED and outcome.cost is None


# --- property: never raises, accepts only what proves acceptance ---------------------------

KEYS = ["success", "code", "message_id", "messageId", "nb_sms", "cost", "currency", "message"]
KEYS += ["error", "errors", "scheduledDeliveryDate"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from([200, 9, 11, 22, 777, "200", "307", "true", "", " 12 "])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
JSON_BODIES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6).map(
    lambda d: json.dumps(d).encode()
)
CONTENTS = (
    st.binary(max_size=300)
    | JSON_BODIES
    | JSON_BODIES.map(lambda b: b"\xef\xbb\xbf" + b)
    | JSON_BODIES.map(lambda b: b[: len(b) // 2])
    | st.sampled_from([SEED, HTML, b"", b"null", b"[]"])
)


def parsed(content: bytes) -> Any:
    try:
        return json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None


@settings(max_examples=150, deadline=None)
@given(
    status=st.integers(100, 599),
    content=CONTENTS,
    retry_after=st.none() | st.floats(0, 1000),
    failure=st.sampled_from(["", "read timeout"]),
)
def test_classify_never_raises_and_accepts_only_a_proven_success(
    status: int, content: bytes, retry_after: float | None, failure: str
) -> None:
    outcome = classify(Exchange(status, content, retry_after=retry_after, failure=failure))
    assert isinstance(outcome.kind, Kind)
    assert_reason_is_clean(outcome)
    data = parsed(content)
    if outcome.kind is Kind.ACCEPTED:
        assert 200 <= status < 300 and not failure
        assert isinstance(data, dict) and data.get("success") is True
        assert data.get("message_id") is not None or data.get("messageId") is not None
        assert outcome.message_id is not None
    elif outcome.kind is Kind.REFUSED:
        assert not failure
        if status == 429:
            assert outcome.refusal is Refusal.RATE_LIMITED
        else:
            assert isinstance(data, dict) and data.get("success") is False
            assert outcome.code in SEND_CODES
            assert 200 <= status < 300 or 400 <= status < 500


@settings(max_examples=50, deadline=None)
@given(
    content=CONTENTS,
    connected=st.booleans(),
    failure=st.sampled_from(["", "read timeout", "connection refused"]),
)
def test_without_an_http_answer_only_a_request_that_never_left_is_refused(
    content: bytes, connected: bool, failure: str
) -> None:
    outcome = classify(Exchange(None, content, connected=connected, failure=failure))
    if connected:
        assert outcome.kind is Kind.UNKNOWN
    else:
        assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)
    assert_reason_is_clean(outcome)


# --- a call without a whole answer: may it have landed? ---------------------------------------

# Every ending, before the request's first byte was written and after. Only a failure while
# connecting, before anything was written, proves nothing left; an ending that needs an answer
# to have started cannot come before the write, and counts as "may have landed" even then.
LANDED = [
    # ending                  not written yet  written
    (Ending.REFUSED, False, True),
    (Ending.DNS, False, True),
    (Ending.CONNECT_TIMEOUT, False, True),
    (Ending.TLS, False, True),  # a handshake failure / a TLS error after the write
    (Ending.RESET, False, True),
    (Ending.PROTOCOL, False, True),
    (Ending.READ_TIMEOUT, True, True),
    (Ending.CUT, True, True),  # a chunked or partial body
    (Ending.TOO_LARGE, True, True),
    (Ending.DEADLINE, True, True),
    (Ending.OTHER, True, True),
]


def test_the_table_covers_every_ending() -> None:
    assert sorted(e for e, _, _ in LANDED) == sorted(Ending)


@pytest.mark.parametrize(("ending", "before_write", "after_write"), LANDED)
def test_may_have_landed(ending: Ending, before_write: bool, after_write: bool) -> None:
    assert may_have_landed(ending, written=False) is before_write
    assert may_have_landed(ending, written=True) is after_write


@pytest.mark.parametrize("ending", list(Ending))
def test_a_call_that_may_have_landed_is_never_refused(ending: Ending) -> None:
    for written in (False, True):
        landed = may_have_landed(ending, written)
        outcome = classify(Exchange(None, connected=landed, failure=f"ended: {ending}"))
        if landed:
            assert (outcome.kind, outcome.refusal) == (Kind.UNKNOWN, None)
        else:
            assert (outcome.kind, outcome.refusal) == (Kind.REFUSED, Refusal.NOT_CONNECTED)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1\u202f234\u202f567 destinataires", "1\u202f234\u202f567 destinataires"),
        ("il manque 1\u202f234\u202f567,50\u00a0€", "il manque 1\u202f234\u202f567,50\u00a0€"),
        ("06 12 34 56 78", "06••••••78"),
        ("06.12.34.56.78", "06••••••78"),
        ("06\u00a012\u00a034\u00a056\u00a078", "06••••••78"),
        ("+33 6 12 34 56 78", "+336••••••78"),
        ("+33-6-12-34-56-78", "+336••••••78"),
    ],
)
def test_french_grouped_counts_are_not_masked_but_numbers_are(text: str, expected: str) -> None:
    # Babel groups French counts with U+202F: "1 234 567 destinataires" is a count, never a number.
    assert mask_phone_numbers(text) == expected
