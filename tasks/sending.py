"""Sending one chunk exactly once: claim in the ledger, call the gateway, record the outcome.

The retry policy lives here and only here for sends (the client never resends a POST that may
have landed):

- certainly not landed (connection refused, 429): the client already retried with backoff;
  what still fails is retried here on the next attempt;
- may have landed (read timeout, reset after sending, 5xx): the chunk's tag is looked up with
  the status-by-tag endpoint before anything is resent;
- code 9: numbers the gateway refused are set aside with its message, the rest is sent again;
  a slot that became past is planned again;
- codes 1/10: nothing more is sent; the claim is released and the campaign stops;
- code 11: this chunk and every later one fail with ``insufficient_credits``;
- anything else: the chunk fails with the gateway's code and message; the campaign goes on.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from smspartner import (
    AuthError,
    InsufficientCredits,
    NotFound,
    RateLimited,
    Rejected,
    ServerError,
    SMSPartnerClient,
    SMSPartnerError,
    TransportError,
)
from tasks import ledger as lg
from tasks.numbers import parse_loose
from tasks.outcomes import GATEWAY_ERROR, INSUFFICIENT_CREDITS
from tasks.slots import PARIS, WindowPolicy, plan_slot, to_api_schedule

log = logging.getLogger("survey.sending")

API_KEY_ENV = "SMSPARTNER_API_KEY"
BASE_URL_ENV = "SMSPARTNER_BASE_URL"
SECRET_BLOCK = "smspartner-api-key"  # noqa: S105 - a block name, not a secret


class CampaignStopped(Exception):
    """The campaign cannot go on (invalid key): str() is one line for the operator."""


@dataclass(frozen=True)
class SendSettings:
    """Everything a send task needs; small and serialisable, with no secret in it."""

    campaign_id: str
    survey_id: str
    base_url: str
    ledger_url: str
    owner: str
    cost_per_recipient: float
    max_cost: float | None = None
    credits: float | None = None
    policy: WindowPolicy = field(default_factory=WindowPolicy)
    lead: timedelta = timedelta(minutes=10)
    margin: timedelta = timedelta(minutes=15)
    max_attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 30.0
    ledger_lease: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class ChunkResult:
    chunk_index: int
    state: str
    size: int
    reason: str | None = None
    nb_sms: int = 0
    cost: float = 0.0
    stop_campaign: str | None = None  # a one-line message when the campaign must stop


def get_api_key(secret_block: str = SECRET_BLOCK) -> str:
    """The gateway key: the environment first, else the Prefect Secret block."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if key:
        return key
    try:
        from prefect.blocks.system import Secret

        value = Secret.load(secret_block).get()  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - any failure means "no key", said plainly
        raise CampaignStopped(
            f"no API key: set {API_KEY_ENV} or create the Prefect Secret block "
            f"'{secret_block}' ({type(exc).__name__})"
        ) from None
    return str(value)


def gateway_url() -> str:
    return os.environ.get(BASE_URL_ENV, "").strip() or SMSPartnerClient.DEFAULT_BASE_URL


_local = threading.local()


def thread_client(base_url: str, timeout: float) -> SMSPartnerClient:
    """One client (one Session, one connection pool) per worker thread, reused across chunks."""
    # The env key is part of the cache key so a changed key is picked up; a Secret block is
    # read once per thread rather than once per chunk.
    key = (base_url, timeout, os.environ.get(API_KEY_ENV, ""))
    cache: dict[tuple[str, float, str], SMSPartnerClient] = getattr(_local, "clients", {})
    _local.clients = cache
    if key not in cache:
        cache[key] = SMSPartnerClient(
            get_api_key(), base_url, timeout=(5.0, timeout), max_retries=3
        )
    return cache[key]


_ledgers: dict[tuple[str, timedelta], lg.Ledger] = {}
_ledgers_lock = threading.Lock()


def shared_ledger(url: str, lease: timedelta = timedelta(minutes=5)) -> lg.Ledger:
    """One engine (one connection pool) per ledger URL in this process."""
    with _ledgers_lock:
        if (url, lease) not in _ledgers:
            _ledgers[(url, lease)] = lg.Ledger(url, lease=lease)
        return _ledgers[(url, lease)]


def _numbers_in(message: str) -> list[str]:
    candidates = re.findall(r"\+?\d[\d .\-]{5,}\d", message)
    found = []
    for c in candidates:
        e164 = parse_loose(c)
        if e164:
            found.append(e164)
    return found


def _refusals(exc: Rejected, numbers: tuple[str, ...]) -> tuple[dict[str, str], bool, list[str]]:
    """Split a code-9 answer: numbers refused, whether the slot was refused, other problems."""
    wanted = set(numbers)
    refused: dict[str, str] = {}
    slot_refused = False
    other: list[str] = []
    for element, message in exc.errors:
        hits = [n for n in _numbers_in(message) if n in wanted]
        if hits:
            for n in hits:
                refused[n] = message
        elif any(k in element for k in ("scheduledDeliveryDate", "[time]", "[minute]")):
            slot_refused = True
        else:
            other.append(f"{element}: {message}")
    return refused, slot_refused, other


def send_chunk_once(
    settings: SendSettings,
    chunk_index: int,
    *,
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> ChunkResult:
    """Bring one chunk to a final state (sent, failed, in doubt) without ever sending it twice."""
    cid = settings.campaign_id
    while True:
        claim = ledger.claim(
            cid,
            chunk_index,
            settings.owner,
            cost_per_recipient=settings.cost_per_recipient,
            max_cost=settings.max_cost,
            credits=settings.credits,
        )
        if claim.action != "busy":
            break
        # Another run of this campaign is sending it right now: its outcome is ours to report.
        sleep(0.5)
    chunk = claim.chunk
    if claim.action == "skip":
        return _result(chunk)
    numbers = chunk.numbers
    refused = dict(chunk.refused)
    slot = chunk.slot
    last_problem = "gateway unavailable"
    # True while an earlier call for this chunk may have landed: nothing is sent until the
    # gateway, asked by tag, has said whether it did.
    unconfirmed = claim.action == "reconcile"
    for attempt in range(settings.max_attempts):
        if attempt:
            delay = min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1))
            pause = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
            # A request that timed out may still be in progress at the gateway: give it time to
            # finish before asking whether it landed.
            sleep(max(pause, settings.backoff) if unconfirmed else pause)
        if unconfirmed:
            try:
                if _landed(client, ledger, settings, ledger.chunk(cid, chunk_index), now):
                    return _result(ledger.chunk(cid, chunk_index))
                unconfirmed = False
            except SMSPartnerError as exc:
                last_problem = str(exc)
                continue
        if not numbers:
            ledger.update_chunk(cid, chunk_index, numbers=numbers, refused=refused)
            ledger.mark_sent(
                cid,
                chunk_index,
                message_id=None,
                nb_sms=0,
                cost=0.0,
                currency="EUR",
                texted_at=now(),
                detail="every number refused by the gateway",
            )
            return _result(ledger.chunk(cid, chunk_index))
        slot = _current_slot(settings, chunk.territory, slot, now())
        if slot == "none":
            ledger.mark(cid, chunk_index, lg.FAILED, "no_slot", "no allowed slot within horizon")
            return _result(ledger.chunk(cid, chunk_index))
        if (slot, numbers, refused) != (chunk.slot, chunk.numbers, chunk.refused):
            ledger.update_chunk(cid, chunk_index, slot=slot, numbers=numbers, refused=refused)
        schedule = to_api_schedule(datetime.fromisoformat(slot)) if slot else None
        try:
            res = client.send_survey(numbers, settings.survey_id, tag=chunk.tag, schedule=schedule)
        except AuthError as exc:
            ledger.release(cid, chunk_index)
            return ChunkResult(
                chunk_index,
                lg.PENDING,
                chunk.size,
                stop_campaign=f"the gateway refused the API key (code {exc.code})",
            )
        except InsufficientCredits:
            ledger.halt(cid, INSUFFICIENT_CREDITS)
            ledger.mark(cid, chunk_index, lg.FAILED, INSUFFICIENT_CREDITS, "gateway code 11")
            return _result(ledger.chunk(cid, chunk_index))
        except Rejected as exc:
            new_refusals, slot_refused, other = _refusals(exc, numbers)
            if new_refusals:
                refused.update(new_refusals)
                numbers = tuple(n for n in numbers if n not in new_refusals)
                continue
            if slot_refused:
                slot = None if slot is None else "replan"
                continue
            detail = f"code {exc.code}: " + "; ".join(other or [str(exc)])
            ledger.mark(cid, chunk_index, lg.FAILED, GATEWAY_ERROR, detail[:500])
            return _result(ledger.chunk(cid, chunk_index))
        except (TransportError, ServerError) as exc:
            last_problem = str(exc)
            unconfirmed = isinstance(exc, ServerError) or exc.may_have_landed
            continue
        except RateLimited as exc:
            last_problem = str(exc)
            if exc.retry_after:
                sleep(min(exc.retry_after, settings.max_backoff))
            continue
        except SMSPartnerError as exc:
            ledger.mark(cid, chunk_index, lg.FAILED, GATEWAY_ERROR, f"code {exc.code}: {exc}"[:500])
            return _result(ledger.chunk(cid, chunk_index))
        ledger.mark_sent(
            cid,
            chunk_index,
            message_id=res.message_id,
            nb_sms=res.nb_sms,
            cost=res.cost,
            currency=res.currency,
            texted_at=datetime.fromisoformat(slot).astimezone(UTC) if slot else now(),
            numbers=numbers,
        )
        return ChunkResult(chunk_index, lg.SENT, len(numbers), nb_sms=res.nb_sms, cost=res.cost)
    if unconfirmed:  # cannot tell whether it landed: never resend blindly; a rerun will ask
        ledger.mark(cid, chunk_index, lg.IN_DOUBT, "in_doubt", last_problem[:500])
    else:
        ledger.mark(cid, chunk_index, lg.FAILED, "gateway_unavailable", last_problem[:500])
    return _result(ledger.chunk(cid, chunk_index))


def _landed(
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    settings: SendSettings,
    chunk: lg.ChunkRow,
    now: Callable[[], datetime],
) -> bool:
    """Ask the gateway whether a send with this chunk's tag was accepted; record it if so."""
    try:
        entries = client.status_by_tag(chunk.tag)
    except NotFound:
        return False
    if not entries:
        return False
    estimate = settings.cost_per_recipient * chunk.size
    ledger.mark_sent(
        settings.campaign_id,
        chunk.chunk_index,
        message_id=entries[0].message_id,
        nb_sms=chunk.size,
        cost=estimate,
        currency="EUR",
        texted_at=datetime.fromisoformat(chunk.slot).astimezone(UTC) if chunk.slot else now(),
        detail="confirmed by status-by-tag after a lost answer; cost estimated",
    )
    return True


def _current_slot(
    settings: SendSettings, territory: str, slot: str | None, now: datetime
) -> str | None:
    """The slot to send with now: the planned one while it is still ahead, else a new one.

    Returns an ISO string, None for "at once", or "none" when no slot exists in the horizon.
    """
    if slot not in (None, "replan"):
        assert slot is not None
        if datetime.fromisoformat(slot) >= now + settings.lead / 2:
            return slot
    decision = plan_slot(
        now,
        territory,
        settings.policy,
        lead=settings.lead,
        margin=settings.margin,
        allow_immediate=slot is None,
    )
    if decision.at_once:
        return None
    if decision.slot is None:
        return "none"
    return decision.slot.astimezone(PARIS).isoformat()


def _result(chunk: lg.ChunkRow) -> ChunkResult:
    return ChunkResult(
        chunk_index=chunk.chunk_index,
        state=chunk.state,
        size=chunk.size,
        reason=chunk.reason,
        nb_sms=chunk.nb_sms or 0,
        cost=chunk.cost or 0.0,
    )
