"""The campaign's steps before any send: load, clean, suppress, check credits, plan.

Each step is a Prefect task of a few lines around the rules it applies (``tasks/plan.py``,
``tasks/recipients/``, ``tasks/slots.py``, ``tasks/money.py``); it takes plain values (the
flows' form models turn themselves into these) and returns its result, or raises a
``OperatorError`` (``tasks/errors.py``): the task then shows Failed with the campaign's one-line
end. Money comes first: a plan its credits or its budget cap do not cover sends nothing
(``money.CreditsShort``) unless the operator chose to send what the money covers.

The plan is made by ``tasks/plan.py`` without a database: this module reads what it needs from
the ledger (the campaign's chunks, the never-text store's answer, and the look-ups of
``plan.Lookups`` bound to the ledger), then writes the result (``write_plan``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger

from smspartner import SMSPartnerClient, SMSPartnerError
from smspartner.client import Credits
from tasks import approval as approve
from tasks import folders, i18n, rows_file, runtime
from tasks import ledger as lg
from tasks import money as mn
from tasks import plan as pl
from tasks import reporting as rp
from tasks.errors import OperatorError, gateway_problem
from tasks.i18n import Lang
from tasks.ledger.draws import Draws
from tasks.nevertext import NeverText, Origin
from tasks.numbers import mask_numbers_in_text
from tasks.plan import CampaignError, PlanRequest, Prepared
from tasks.recipients import (
    find_phone_column,
    load_recipients,
    load_suppression_list,
)
from tasks.row_columns import E164
from tasks.steps import step
from tasks.steps.runs import run_lang


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
    fingerprint: str  # binds a campaign to its input (``plan.binding_problem``)
    source_columns: list[str]  # the input's own, for rejects.csv


# -- tasks -------------------------------------------------------------------------------------


@step("fetch-recipients")
def fetch_task(url: str, campaign_id: str) -> Path:
    """A recipients file given by its address, downloaded into the campaign's state folder (the
    run made that path: nothing typed to confine; purged with the campaign's other working
    files). ``RemoteFileError`` in one line when it cannot be fetched."""
    from tasks.recipients import remote  # fsspec and the download: only for such a source

    folder = folders.state_dir(campaign_id) / "download"
    folder.mkdir(parents=True, exist_ok=True)
    return remote.download(url, folder)


@step("load-recipients")
def load_task(source: Source, *, real_gateway: bool) -> pd.DataFrame:
    """Read the recipients as they are, every cell as text."""
    if real_gateway and is_sample(source):
        # The samples' numbers may belong to real people: they are for the simulator only.
        raise CampaignError(i18n.text(run_lang(), "error.sample_to_real_gateway"))
    try:
        return _load(source)
    except OperatorError:
        raise
    except ValueError as exc:  # a Secret block that is missing or unreadable
        raise OperatorError(exc) from None


@step("clean-numbers")
def clean_task(
    frame: pd.DataFrame,
    phone_column: str | None,
    allow_foreign: bool,
    lang: Lang | None = None,
) -> Cleaned:
    """One E.164 number or one reject reason per row (a ``RecipientsError`` or a
    ``CampaignError`` says why not)."""
    fingerprint = pl.input_fingerprint(frame)
    column = find_phone_column(list(frame.columns), phone_column)
    rows = pl.clean_rows(frame, column, allow_foreign=allow_foreign)
    # A header is the source's text: a file without one makes its first number the header.
    lang = run_lang(lang)  # the flow's own language when it does not hand it down
    get_run_logger().info(
        i18n.text(
            lang,
            "log.loaded",
            rows=i18n.plural(lang, "count.rows_loaded", len(rows)),
            column=mask_numbers_in_text(column),
        )
    )
    return Cleaned(rows, fingerprint, list(frame.columns))


@step("suppress")
def suppress_task(
    lists: list[str], base_url: str, key_block: str | None, request: PlanRequest
) -> int:
    """Everything this run is told about people never to text goes into the never-text store
    (the gateway's STOP list, the opt-out lists named), which the plan then reads whole: a list
    adds to the store, never replaces it. How many people were new to it."""
    logger, lang = get_run_logger(), request.lang
    try:
        ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
        store = runtime.never_text_store(ledger)
        for path in lists:
            listed = load_suppression_list(path)
            name = mask_numbers_in_text(Path(path).name)
            added = store.add(listed.numbers, Origin.imported, f"list {name}", request.campaign_id)
            logger.info(
                i18n.text(
                    request.lang,
                    "log.optout_list",
                    name=name,
                    read=i18n.number(len(listed.numbers), request.lang),
                    added=i18n.number(added, request.lang),
                )
            )
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            entries = [e.phone_number for e in client.stop_list()]
        stop = pl.normalise_list(entries)
        new = store.add(stop, Origin.gateway, "STOP list of the account", request.campaign_id)
    except lg.LedgerUnavailable as exc:
        raise lg.LedgerUnavailable(f"{exc}; nothing was sent") from None
    except SMSPartnerError as exc:
        raise OperatorError(gateway_problem(exc, base_url)) from None
    if unread := len({e for e in entries if e}) - len(stop):
        # Not a number, so no recipient can be it (recipients are valid mobiles): said, not fatal.
        logger.warning(i18n.text(request.lang, "log.stop_unread", n=i18n.number(unread, lang)))
    logger.info(
        i18n.text(
            lang, "log.stop_list", n=i18n.number(len(stop), lang), added=i18n.number(new, lang)
        )
    )
    return new


@step("check-credits")
def check_credits_task(base_url: str, key_block: str | None) -> Credits:
    """The account's credits before sending (a refused key ends the campaign here); the plan
    checks them against what it would send (``plan_task``)."""
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            return client.credits()
    except SMSPartnerError as exc:
        raise OperatorError(gateway_problem(exc, base_url)) from None


@step("plan-campaign")
def plan_task(cleaned: Cleaned, credits: Credits, request: PlanRequest) -> Prepared:
    """Slots and chunks for the rows no earlier run planned, written to the ledger (not in a
    dry run, nor when the plan passes an approval threshold: then nothing is written).

    Money first: when the credits or the budget cap do not cover what it would send, nothing is
    written and ``money.CreditsShort`` says what is missing (its ``prepared`` is the plan to
    report), unless ``send_within_credits``: then only what the money covers is planned."""
    cid = request.campaign_id
    for folder in (folders.report_dir(cid), folders.state_dir(cid)):
        if why := folders.unwritable(folder):
            raise CampaignError(f"{why}; nothing was sent")
    rate = global_limit_is_rate(request.global_limit) if request.global_limit else False
    ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
    command_line = not runtime.from_deployment()
    planned = write_plan(ledger, cleaned, credits, request, command_line=command_line)
    logger = get_run_logger()
    for territory, why in territory_lines(planned, ledger, request.lang).items():
        logger.info(i18n.text(request.lang, "log.territory_plan", territory=territory, why=why))
    if (money := planned.money) and money.short:
        if planned.to_send < money.recipients and request.send_within_credits:
            logger.warning(mn.within_line(money, planned.to_send, request.lang, campaign=cid))
        else:  # a dry run, or a plan held for a person who sees it in the approval form
            logger.warning(mn.shortfall_line(money, request.lang, command_line=command_line))
    if not planned.dry_run:
        logger.info(i18n.plural(request.lang, "log.chunks_to_send", len(planned.chunk_indices)))
    planned.global_limit_is_rate = rate
    return planned


def territory_lines(planned: Prepared, ledger: lg.Ledger, lang: Lang) -> dict[str, str]:
    """Territory name -> how it is sent, worded as the reports word it (the slot planner's own
    explanations are English): from the plan held (a dry run, an approval) or the ledger."""
    if planned.dry_run:
        plan = planned.dry_plan
    else:
        plan = [
            {"territory": t, "slot": slot} for t, slot in ledger.chunk_slots(planned.campaign_id)
        ]
    worded = {"slot_explanations": planned.decisions, "slot_plan": {}, "plan": plan}
    return rp.slot_sentences(worded, lang)


# -- the plan against the ledger ---------------------------------------------------------------


def write_plan(
    ledger: lg.Ledger,
    cleaned: Cleaned,
    credits: Credits,
    request: PlanRequest,
    now: datetime | None = None,
    *,
    command_line: bool = True,
) -> Prepared:
    """Plan the campaign against its ledger and write the plan (a first run), extend it (a
    rerun), or write nothing (a dry run, a plan held for approval, a plan its money does not
    cover: that one raises ``money.CreditsShort``)."""
    cid, now, fingerprint = request.campaign_id, now or datetime.now(UTC), cleaned.fingerprint
    refused = pl.binding_problem(
        cid, ledger.binding(cid), request.survey_id, fingerprint, request.resume_changed_input
    )
    if refused:
        raise CampaignError(refused)
    for _ in range(3):  # a concurrent first run of the same campaign may write its plan first
        a = _attempt(ledger, cleaned.rows, request, now, credits)
        if request.dry_run or a.held or a.stopped:
            break
        # The draw is recorded before the chunks it chose: whichever first run records it, every
        # run of the campaign (a concurrent one, a resumed one) plans from that one draw.
        if a.new_draw is not None and not Draws(ledger).save(cid, a.sample or {}, a.new_draw):
            continue  # another run recorded its draw first: plan again from it
        if a.existing:
            break
        if ledger.create_plan(
            cid, request.survey_id, a.plan, credits_before=credits.balance, fingerprint=fingerprint
        ):
            break
    else:
        raise OperatorError("could not write the campaign's plan to the ledger; nothing was sent")
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
) -> pl.Attempt:
    """Read what the plan needs from the ledger, then plan (``plan.attempt``, pure)."""
    cid = request.campaign_id
    existing = ledger.chunks(cid) if ledger.campaign_exists(cid) else []
    existing = ledger.reidentify(existing, rows[E164])
    store = NeverText(ledger)
    asked = pl.candidates(rows, existing)
    never = store.among(asked)
    undeliverable = store.undeliverable_among(asked) if never else set()

    def texted_since(numbers: Iterable[str], since: datetime) -> set[str]:
        return ledger.recently_texted(numbers, since=since, exclude_campaign=cid)

    def texted_counts(
        numbers: Iterable[str], since: datetime, survey: str | None
    ) -> dict[str, int]:
        return ledger.texted_counts(numbers, since=since, exclude_campaign=cid, survey_id=survey)

    def earlier_draw(numbers: Sequence[str]) -> tuple[dict[str, Any], set[str]] | None:
        found = Draws(ledger).load(cid)
        if found is None:
            return None
        record, drawn = found
        return record, drawn.members(numbers)

    def observed_price() -> float | None:
        return ledger.observed_prices(cid)[0]

    above_cost, above_recipients = request.thresholds or (None, None)

    def approval(recipients: int, cost: float) -> list[str]:
        return approve.reasons(recipients, cost, above_cost, above_recipients)

    return pl.attempt(
        rows,
        existing,
        never,
        request,
        now,
        credits=credits.balance,
        currency=credits.currency,
        lookups=pl.Lookups(
            texted_since=texted_since,
            observed_price=observed_price,
            texted_counts=texted_counts,
            earlier_draw=earlier_draw if request.audience.sample else None,
        ),
        approval=approval,
        undeliverable=undeliverable,
    )


def _prepared(
    a: pl.Attempt,
    request: PlanRequest,
    columns: list[str],
    credits: Credits,
    first_credits: float | None,
) -> Prepared:
    """The plan the flow carries, its rows written first (the report reads them back)."""
    return pl.prepared(
        a,
        request,
        rows_path=rows_file.save_rows(a.rows, request.campaign_id, request.run),
        columns=columns,
        credits=credits.balance,
        currency=credits.currency,
        first_credits=first_credits,
    )


def global_limit_is_rate(name: str) -> bool:
    """Whether the named Prefect global limit is a rate limit; a ``CampaignError`` when it is
    missing (a missing name would otherwise throttle nothing, silently)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        raise CampaignError(
            f"no Prefect global concurrency limit named {name!r}: create it with "
            f"`prefect gcl create {name} --limit 8`"
        ) from None
    return bool(limit.slot_decay_per_second)


def is_sample(source: Source) -> bool:
    target = (source.db_url or "") if source.sql else (source.path or "")
    target = target.removeprefix("sqlite:///")
    return bool(target) and Path(target).resolve().is_relative_to(runtime.SAMPLES_DIR)


def _load(source: Source) -> pd.DataFrame:
    if not source.sql:
        if not source.path:
            raise CampaignError("a file source needs a path")
        return load_recipients(path=source.path, sheet=source.sheet)
    if not source.db_url or not source.query:
        raise CampaignError("an SQL source needs a database URL and a query")
    return load_recipients(
        db_url=runtime.db_url_with_secrets(source.db_url, source.credentials_block),
        query=source.query,
    )
