"""The campaign's steps before any send: load, clean, suppress, check credits, plan.

Each step is a Prefect task of a few lines beside the rules it applies (``tasks/campaign.py``,
``tasks/recipients.py``, ``tasks/slots.py``, ``tasks/money.py``); it takes plain values (the
flows' form models turn themselves into these) and returns its result, or raises a
``SurveyError`` (``tasks/errors.py``): the task then shows Failed with the campaign's one-line
end. Money comes first: a plan its credits or its budget cap do not cover sends nothing
(``money.CreditsShort``) unless the operator chose to send what the money covers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from smspartner import SMSPartnerClient, SMSPartnerError
from smspartner.client import Credits
from tasks import approval as approve
from tasks import campaign as cp
from tasks import ledger as lg
from tasks import money as mn
from tasks import runtime
from tasks.errors import SurveyError
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.nevertext import NeverText, Origin
from tasks.numbers import mask_numbers_in_text
from tasks.outcomes import ChunkState, gateway_problem
from tasks.recipients import (
    find_phone_column,
    load_recipients,
    load_suppression_list,
)
from tasks.runs import masked_errors
from tasks.slots import WindowPolicy

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
_DONE = (ChunkState.sent, ChunkState.cancelled)


@dataclass(frozen=True)
class Source:
    """Where the recipients are: a file (``path``) or an SQL query (``db_url`` holds no secret:
    the loader puts the password back from ``runtime``)."""

    path: str | None = None
    sheet: str | None = None
    db_url: str | None = None
    query: str | None = None
    credentials_block: str | None = None
    sql: bool = False


@dataclass(frozen=True)
class Cleaned:
    """The rows, one number or one reason each, and what the plan needs of the input."""

    rows: pd.DataFrame
    fingerprint: str  # binds a campaign to its input (``cp.binding_problem``)
    source_columns: list[str]  # the input's own, for rejects.csv


@dataclass(frozen=True)
class PlanRules:
    """How rows become chunks: every value comes from the flow's form models."""

    chunk_size: int
    concurrency: int
    lead: timedelta
    margin: timedelta
    cap_days: int
    policy: WindowPolicy
    allow_immediate: bool


@dataclass(frozen=True)
class PlanRequest:
    """One run's plan: what to plan, against which ledger, and whether to hold it for a yes."""

    campaign_id: str
    survey_id: str
    run: str  # this run's own row file
    ledger_url: str
    ledger_outage: float
    rules: PlanRules
    cost_per_sms: float
    dry_run: bool = False
    thresholds: tuple[float | None, int | None] | None = None  # approval: (cost, recipients)
    resume_changed_input: bool = False
    global_limit: str | None = None
    send_within_credits: bool = False  # short of money: send what it covers (else send nothing)
    max_cost: float | None = None  # the campaign's budget cap (earlier runs' spending counts)
    lang: Lang = DEFAULT_LANG  # of the line that stops a campaign short of money


# -- tasks -------------------------------------------------------------------------------------


@task(name="load-recipients", cache_policy=NO_CACHE)
@masked_errors
def load_task(source: Source, *, real_gateway: bool) -> pd.DataFrame:
    """Read the recipients as they are, every cell as text."""
    if real_gateway and is_sample(source):
        # The samples' numbers may belong to real people: they are for the simulator only.
        raise cp.CampaignError(
            "refusing to text the bundled sample recipients through the real gateway; "
            "use your own list, a dry run, or SMSPARTNER_BASE_URL pointing at the simulator"
        )
    try:
        return _load(source)
    except SurveyError:
        raise
    except ValueError as exc:  # a Secret block that is missing or unreadable
        raise SurveyError(exc) from None


@task(name="clean-numbers", cache_policy=NO_CACHE)
@masked_errors
def clean_task(frame: pd.DataFrame, phone_column: str | None, allow_foreign: bool) -> Cleaned:
    """One E.164 number or one reject reason per row (a ``RecipientsError`` or a
    ``CampaignError`` says why not)."""
    fingerprint = cp.input_fingerprint(frame)
    column = find_phone_column(list(frame.columns), phone_column)
    rows = cp.clean_rows(frame, column, allow_foreign=allow_foreign)
    # A header is the source's text: a file without one makes its first number the header.
    get_run_logger().info(
        "loaded %d rows; phone column %r", len(rows), mask_numbers_in_text(column)
    )
    return Cleaned(rows, fingerprint, list(frame.columns))


@task(name="suppress", cache_policy=NO_CACHE)
@masked_errors
def suppress_task(
    lists: list[str], base_url: str, key_block: str | None, request: PlanRequest
) -> int:
    """Everything this run is told about people never to text goes into the never-text store
    (the gateway's STOP list, the opt-out lists named), which the plan then reads whole: a list
    adds to the store, never replaces it. How many people were new to it."""
    logger = get_run_logger()
    try:
        ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
        store = runtime.never_text_store(ledger)
        for path in lists:
            listed = load_suppression_list(path)
            name = mask_numbers_in_text(Path(path).name)
            added = store.add(listed.numbers, Origin.imported, f"list {name}", request.campaign_id)
            logger.info(
                "opt-out list %s: %d numbers read, %d new to the never-text store",
                name,
                len(listed.numbers),
                added,
            )
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            entries = [e.phone_number for e in client.stop_list()]
        stop = cp.normalise_list(entries)
        new = store.add(stop, Origin.gateway, "STOP list of the account", request.campaign_id)
    except lg.LedgerUnavailable as exc:
        raise lg.LedgerUnavailable(f"{exc}; nothing was sent") from None
    except SMSPartnerError as exc:
        raise SurveyError(gateway_problem(exc, base_url)) from None
    if unread := len({e for e in entries if e}) - len(stop):
        # Not a number, so no recipient can be it (recipients are valid mobiles): said, not fatal.
        logger.warning("the gateway's STOP list has %d entries that are not phone numbers", unread)
    logger.info("gateway's STOP list: %d numbers, %d new to the never-text store", len(stop), new)
    return new


@task(name="check-credits", cache_policy=NO_CACHE)
@masked_errors
def check_credits_task(base_url: str, key_block: str | None) -> Credits:
    """The account's credits before sending (a refused key ends the campaign here); the plan
    checks them against what it would send (``plan_task``)."""
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            return client.credits()
    except SMSPartnerError as exc:
        raise SurveyError(gateway_problem(exc, base_url)) from None


@task(name="plan-campaign", cache_policy=NO_CACHE)
@masked_errors
def plan_task(cleaned: Cleaned, credits: Credits, request: PlanRequest) -> cp.Prepared:
    """Slots and chunks for the rows no earlier run planned, written to the ledger (not in a
    dry run, nor when the plan passes an approval threshold: then nothing is written).

    Money first: when the credits or the budget cap do not cover what it would send, nothing is
    written and ``money.CreditsShort`` says what is missing (its ``prepared`` is the plan to
    report), unless ``send_within_credits``: then only what the money covers is planned."""
    cid = request.campaign_id
    for folder in (cp.report_dir(cid), cp.state_dir(cid)):
        if why := cp.unwritable(folder):
            raise cp.CampaignError(f"{why}; nothing was sent")
    rate = global_limit_is_rate(request.global_limit) if request.global_limit else False
    ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
    command_line = not runtime.from_deployment()
    planned = write_plan(ledger, cleaned, credits, request, command_line=command_line)
    logger = get_run_logger()
    for territory, why in planned.decisions.items():
        logger.info("%s: %s", territory, why)
    if (money := planned.money) and money.short:
        if planned.to_send < money.recipients and request.send_within_credits:
            logger.warning(mn.within_line(money, planned.to_send, request.lang, campaign=cid))
        else:  # a dry run, or a plan held for a person who sees it in the approval form
            logger.warning(mn.shortfall_line(money, request.lang, command_line=command_line))
    if not planned.dry_run:
        logger.info("%d chunks to send", len(planned.chunk_indices))
    planned.global_limit_is_rate = rate
    return planned


# -- rules -------------------------------------------------------------------------------------


@dataclass
class _Attempt:
    rows: pd.DataFrame
    existing: list[lg.ChunkRow]
    plan: list[lg.ChunkPlan]
    decisions: dict[str, Any]
    held: list[str]
    withdrawn: dict[str, str]  # numbers to take out of earlier runs' unsent chunks, and why
    money: mn.Money
    left_unsent: frozenset[int] = frozenset()  # earlier runs' chunks the money leaves for later
    stopped: bool = False  # short of money: nothing is written, nothing sent


def write_plan(
    ledger: lg.Ledger,
    cleaned: Cleaned,
    credits: Credits,
    request: PlanRequest,
    now: datetime | None = None,
    *,
    command_line: bool = True,
) -> cp.Prepared:
    """Plan the campaign against its ledger and write the plan (a first run), extend it (a
    rerun), or write nothing (a dry run, a plan held for approval, a plan its money does not
    cover: that one raises ``money.CreditsShort``)."""
    cid, now, fingerprint = request.campaign_id, now or datetime.now(UTC), cleaned.fingerprint
    refused = cp.binding_problem(
        cid, ledger.binding(cid), request.survey_id, fingerprint, request.resume_changed_input
    )
    if refused:
        raise cp.CampaignError(refused)
    for _ in range(3):  # a concurrent first run of the same campaign may write its plan first
        a = _attempt(ledger, cleaned.rows, request, now, credits)
        if request.dry_run or a.held or a.existing or a.stopped:
            break
        if ledger.create_plan(
            cid, request.survey_id, a.plan, credits_before=credits.balance, fingerprint=fingerprint
        ):
            break
    else:
        raise SurveyError("could not write the campaign's plan to the ledger; nothing was sent")
    # The report covers the campaign as a whole: credits as they were before its first run.
    first_credits = credits.balance
    if a.existing:
        recorded = ledger.credits_before(cid)
        first_credits = credits.balance if recorded is None else recorded
        if not request.dry_run and not a.held and not a.stopped:
            ledger.withdraw(cid, a.withdrawn)
            ledger.extend_plan(cid, a.plan)
            ledger.clear_halt(cid)  # a rerun is a new chance (credits may be back)
            ledger.bind_input(cid, fingerprint)
    prepared = _prepared(a, request, cleaned.source_columns, credits, first_credits)
    if a.stopped:
        line = mn.shortfall_line(a.money, request.lang, command_line=command_line)
        raise mn.CreditsShort(line, prepared=prepared)
    return prepared


def _attempt(
    ledger: lg.Ledger,
    rows: pd.DataFrame,
    request: PlanRequest,
    now: datetime,
    credits: Credits,
) -> _Attempt:
    cid = request.campaign_id
    existing = ledger.chunks(cid) if ledger.campaign_exists(cid) else []
    # pandas 3 copies on write: each attempt changes its own view, never `rows`
    existing = ledger.reidentify(existing, rows[cp.E164])
    never = NeverText(ledger).among(candidates(rows, existing))
    withdrawn = cp.withdrawals(existing, rows, never)
    existing = cp.without(existing, withdrawn)
    planned, plan, decisions = plan_rows(
        rows.copy(deep=False), existing, never, ledger, cid, request.rules, now
    )
    planned = cp.with_earlier_recipients(planned, existing)
    money = _money(ledger, request, existing, plan, credits)
    a = _Attempt(planned, existing, plan, decisions, [], withdrawn, money)
    if money.short and request.send_within_credits:
        a = _within_money(a)
    sending = left_to_send(a.existing, a.plan) - _unsent_size(a)
    if request.thresholds and not request.dry_run:
        a.held = approve.reasons(sending, sending * money.price, *request.thresholds)
    # Short of money with nobody to ask and no choice made, or with nothing the money covers:
    # no send starts. A person asked (a plan held at a threshold) sees the shortfall in the
    # form and chooses.
    chosen = request.send_within_credits and sending > 0
    if money.short and not chosen and not request.dry_run and not a.held:
        a = _stopped(a)
    return a


def _money(
    ledger: lg.Ledger,
    request: PlanRequest,
    existing: list[lg.ChunkRow],
    plan: list[lg.ChunkPlan],
    credits: Credits,
) -> mn.Money:
    """What this run would send against the credits and the cap; a resumed campaign is priced
    at what the gateway charged it, and its earlier runs' spending counts against the cap."""
    observed = ledger.observed_prices(request.campaign_id)[0] if existing else None
    return mn.Money(
        recipients=left_to_send(existing, plan),
        price=mn.price_per_recipient(request.cost_per_sms, observed),
        credits=credits.balance,
        max_cost=request.max_cost,
        spent=sum(c.cost or 0.0 for c in existing if c.state == ChunkState.sent),
        currency=credits.currency or "EUR",
    )


def _within_money(a: _Attempt) -> _Attempt:
    """Only what the money covers, in plan order: earlier runs' chunks whole or not at all (the
    ledger holds them), the new ones cut where the money ends; everybody left out of the new
    ones is rejected with the limit's reason before any send (a rerun plans them again)."""
    unsent = [c for c in a.existing if c.state not in _DONE]
    sizes = [c.size for c in unsent] + [len(c.numbers) for c in a.plan]
    whole = [True] * len(unsent) + [False] * len(a.plan)
    kept = mn.keep(sizes, whole, a.money.covered)
    left_unsent = frozenset(c.chunk_index for c, k in zip(unsent, kept, strict=False) if k == 0)
    plan: list[lg.ChunkPlan] = []
    out: list[str] = []
    for chunk, k in zip(a.plan, kept[len(unsent) :], strict=True):
        out.extend(chunk.numbers[k:])
        if k:
            plan.append(replace(chunk, numbers=chunk.numbers[:k]))
    rows = _not_covered(a.rows, out, a.money)
    return replace(a, rows=rows, plan=plan, left_unsent=left_unsent)


def _stopped(a: _Attempt) -> _Attempt:
    """Nothing is sent: every recipient the plan held is rejected with the limit's reason (an
    earlier run's chunks keep what the ledger says of them)."""
    out = [n for c in a.plan for n in c.numbers]
    rows = _not_covered(a.rows, out, a.money)
    unsent = frozenset(c.chunk_index for c in a.existing if c.state not in _DONE)
    return replace(a, rows=rows, plan=[], left_unsent=unsent, stopped=True)


def _not_covered(rows: pd.DataFrame, numbers: list[str], money: mn.Money) -> pd.DataFrame:
    if not numbers:
        return rows
    hit = rows[cp.E164].isin(numbers) & rows[cp.REASON].isna()
    limit = "the budget cap" if money.reason == mn.BUDGET_EXCEEDED else "the account's credits"
    rows = rows.copy(deep=False)
    rows.loc[hit, cp.REASON] = money.reason
    rows.loc[hit, cp.DETAIL] = f"not covered by {limit} before any send: not sent"
    return rows


def _unsent_size(a: _Attempt) -> int:
    return sum(c.size for c in a.existing if c.chunk_index in a.left_unsent)


def _prepared(
    a: _Attempt,
    request: PlanRequest,
    columns: list[str],
    credits: Credits,
    first_credits: float | None,
) -> cp.Prepared:
    dry = request.dry_run or bool(a.held)
    # The chunks left to send: earlier runs' unfinished ones the money covers, then the new.
    unsent = [c for c in a.existing if c.state not in _DONE and c.chunk_index not in a.left_unsent]
    prepared = cp.Prepared(
        campaign_id=request.campaign_id,
        rows_path=cp.save_rows(a.rows, request.campaign_id, request.run),
        source_columns=columns,
        chunk_indices=[],
        decisions={t: d.explanation for t, d in a.decisions.items()},
        credits_before=first_credits,
        credits_now=credits.balance,
        currency=credits.currency or "EUR",
        dry_run=dry,
        approval_reasons=a.held,
        to_send=sum(c.size for c in unsent) + sum(len(c.numbers) for c in a.plan),
        money=a.money,
    )
    if dry:
        # What would be sent: the chunks planned now and those earlier runs left unsent.
        prepared.dry_plan = [
            {"index": c.chunk_index, "territory": c.territory, "slot": c.slot, "size": c.size}
            for c in unsent
            if a.held
        ] + [
            {
                "index": c.chunk_index,
                "territory": c.territory,
                "slot": c.slot,
                "size": len(c.numbers),
            }
            for c in a.plan
        ]
        return prepared
    # What is left to send (no need to read every chunk's numbers back from the ledger).
    prepared.chunk_indices = [c.chunk_index for c in unsent] + [c.chunk_index for c in a.plan]
    return prepared


def left_to_send(existing: list[lg.ChunkRow], plan: list[lg.ChunkPlan]) -> int:
    """Recipients in the chunks still to send: earlier runs' unfinished ones and the new plan."""
    unsent = sum(c.size for c in existing if c.state not in _DONE)
    return unsent + sum(len(c.numbers) for c in plan)


def plan_rows(
    rows: pd.DataFrame,
    existing: list[lg.ChunkRow],
    never: set[str],
    ledger: lg.Ledger,
    campaign_id: str,
    rules: PlanRules,
    now: datetime,
) -> tuple[pd.DataFrame, list[lg.ChunkPlan], dict[str, Any]]:
    """Suppress and plan the rows that no earlier run of this campaign planned (``existing``:
    its chunks, pseudonyms put back, numbers withdrawn from unsent ones already out).

    Suppression is applied here, not before: numbers an earlier run planned keep that run's plan
    and outcome, and which numbers those are is known only from the ledger."""
    # Someone taken out of the campaign for leaving its input is planned anew if back in it.
    known = {
        n for c in existing for n in (*c.numbers, *c.refused) if c.refused.get(n) != lg.NOT_IN_INPUT
    }
    rows = cp.apply_suppression(rows, cp.OPTED_OUT, never - known)
    # The rows still to plan: accepted, and in no earlier run's plan (one look-up of a million
    # numbers, narrowed as the steps below reject more).
    fresh = rows[cp.REASON].isna() & ~rows[cp.E164].isin(known)
    if recent := cp.recently_texted(ledger, rows.loc[fresh], campaign_id, rules.cap_days, now):
        hit = fresh & rows[cp.E164].isin(recent)
        rows.loc[hit, cp.REASON] = cp.RECENTLY_SURVEYED
        rows.loc[hit, cp.DETAIL] = f"texted by another campaign within {rules.cap_days} days"
        fresh &= ~hit
    territories = rows.loc[fresh, cp.TERRITORY]
    n_chunks = max(1, len(territories) // rules.chunk_size + territories.nunique())
    decisions = cp.decide_slots(
        territories,
        now,
        rules.policy,
        n_chunks=n_chunks,
        concurrency=rules.concurrency,
        lead=rules.lead,
        margin=rules.margin,
        allow_immediate=rules.allow_immediate,
    )
    rows = cp.mark_no_slot(rows, decisions, fresh)
    fresh &= rows[cp.REASON].isna()
    start = max((c.chunk_index for c in existing), default=-1) + 1
    plan = cp.plan_chunks(
        rows.loc[fresh], decisions, chunk_size=rules.chunk_size, start_index=start
    )
    return rows, plan, decisions


def candidates(rows: pd.DataFrame, existing: list[lg.ChunkRow]) -> np.ndarray:
    """The numbers to look up in the never-text store: this input's accepted ones (E.164, one
    each: duplicates are rejected) and those earlier runs planned but no send can have reached
    yet."""
    fresh = rows[cp.E164].to_numpy(dtype=object)[rows[cp.REASON].isna().to_numpy()]
    unsent = [n for c in existing if c.state in cp.UNSENT for n in c.numbers]
    return np.concatenate([fresh, np.array(unsent, dtype=object)]) if unsent else fresh


def global_limit_is_rate(name: str) -> bool:
    """Whether the named Prefect global limit is a rate limit; a ``CampaignError`` when it is
    missing (a missing name would otherwise throttle nothing, silently)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        raise cp.CampaignError(
            f"no Prefect global concurrency limit named {name!r}: create it with "
            f"`prefect gcl create {name} --limit 8`"
        ) from None
    return bool(limit.slot_decay_per_second)


def is_sample(source: Source) -> bool:
    target = (source.db_url or "") if source.sql else (source.path or "")
    target = target.removeprefix("sqlite:///")
    return bool(target) and Path(target).resolve().is_relative_to(SAMPLES_DIR)


def _load(source: Source) -> pd.DataFrame:
    if not source.sql:
        if not source.path:
            raise cp.CampaignError("a file source needs a path")
        return load_recipients(path=source.path, sheet=source.sheet)
    if not source.db_url or not source.query:
        raise cp.CampaignError("an SQL source needs a database URL and a query")
    return load_recipients(
        db_url=runtime.db_url_with_secrets(source.db_url, source.credentials_block),
        query=source.query,
    )
