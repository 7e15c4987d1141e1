"""Send an SMS survey campaign: load, clean, suppress, plan, send in chunks, report.

The flow only wires tasks; the rules live in ``tasks/``. Run it from the command line::

    python -m flows.survey_campaign --survey-id IDENT
        (--recipients FILE | --db-url URL --query SQL) [--phone-column NAME]
        [--campaign-id ID] [--dry-run]

The gateway comes from ``SMSPARTNER_BASE_URL`` and the key from ``SMSPARTNER_API_KEY`` or the
Prefect Secret block ``smspartner-api-key``. The last line on stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.runtime import task_run
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field, ValidationError

from flows.cli import add_model_options, model_from_args, one_line
from flows.parameters import (
    ApiKeyBlock,
    DeliveryWindow,
    Language,
    Limits,
    RecipientSource,
    SourceKind,
    WindowPreset,
)
from smspartner import SMSPartnerClient, SMSPartnerError
from smspartner.errors import mask_phone_numbers
from tasks import approval as approve
from tasks import campaign as cp
from tasks import dburl, i18n, runtime
from tasks import ledger as lg
from tasks import reporting as rp
from tasks.alerts import emit_campaign_outcome
from tasks.followup import gateway_problem
from tasks.html_report import write_html_report
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.outcomes import Problem
from tasks.recipients import (
    RecipientsError,
    find_phone_column,
    load_recipients,
    load_suppression_list,
)
from tasks.runs import cancel_link, masked_errors, name_this_run
from tasks.sendcore import SendPolicy
from tasks.sending import (
    CampaignStopped,
    ChunkResult,
    SendSettings,
    deferred_of,
    gateway_url,
    get_api_key,
    send_chunk_once,
    settle_deferred,
    shared_ledger,
    thread_client,
)

# -- tasks -------------------------------------------------------------------------------------


@task(name="prepare-campaign", cache_policy=NO_CACHE)
@masked_errors
def prepare_task(
    campaign_id: str,
    survey_id: str,
    source: RecipientSource,
    window: DeliveryWindow,
    limits: Limits,
    ledger_url: str,
    suppression_list: str | None,
    dry_run: bool,
    approval: tuple[float | None, int | None] | None = None,
    key_block: str | None = None,
    resume_changed_input: bool = False,
    run: str = "",
) -> cp.Prepared | Problem:
    """Load, clean, suppress and plan; write the plan to the ledger (not in a dry run, nor when
    the plan passes an ``approval`` threshold (cost, recipients): then nothing is written)."""
    logger = get_run_logger()
    now = datetime.now(UTC)
    base_url = gateway_url()
    if _is_sample(source) and base_url == SMSPartnerClient.DEFAULT_BASE_URL and not dry_run:
        # The samples' numbers may belong to real people: they are for the simulator only.
        return Problem(
            message="refusing to text the bundled sample recipients through the real gateway; "
            "use your own list, a dry run, or SMSPARTNER_BASE_URL pointing at the simulator"
        )
    try:
        df = _load(source)
        column = find_phone_column(list(df.columns), source.phone_column)
        rows = cp.clean_rows(df, column, allow_foreign=window.allow_foreign)
        fingerprint = cp.input_fingerprint(df)
        listed = load_suppression_list(suppression_list) if suppression_list else None
    except (RecipientsError, cp.CampaignError) as exc:
        return Problem(message=str(exc))
    local: set[str] = set(listed.numbers) if listed else set()
    if listed:
        logger.info(
            "suppression list %s: %d entries read, %d used, %d unreadable (column %s)",
            suppression_list,
            listed.read,
            listed.used,
            listed.unreadable,
            listed.column or "-",
        )
    logger.info("loaded %d rows; phone column %r", len(rows), column)
    try:
        with SMSPartnerClient(get_api_key(key_block), base_url) as client:
            credits = client.credits()
            stop = cp.normalise_list(e.phone_number for e in client.stop_list())
    except SMSPartnerError as exc:
        return Problem(message=gateway_problem(exc, base_url))
    except CampaignStopped as exc:
        return Problem(message=str(exc))

    for folder in (cp.REPORTS_DIR / campaign_id, cp.state_dir(campaign_id)):
        if why := cp.unwritable(folder):
            return Problem(message=f"{why}; nothing was sent")
    global_limit_is_rate = False
    if limits.global_limit:
        found = _global_limit(limits.global_limit)
        if isinstance(found, Problem):
            return found
        global_limit_is_rate = found
    held: list[str] = []
    try:
        ledger = shared_ledger(ledger_url, outage=limits.ledger_outage_seconds)
        refused = cp.binding_problem(
            campaign_id,
            ledger.binding(campaign_id),
            survey_id,
            fingerprint,
            resume_changed_input,
        )
        if refused:
            return Problem(message=refused)
        for _ in range(3):  # a concurrent first run of the same campaign may write its plan first
            existing = ledger.chunks(campaign_id) if ledger.campaign_exists(campaign_id) else []
            planned, plan, decisions = _plan(
                # pandas 3 copies on write: each attempt changes its own view, never `rows`
                rows.copy(deep=False),
                existing,
                stop | local,
                ledger,
                campaign_id,
                window,
                limits,
                now,
            )
            if approval and not dry_run:
                n = _left_to_send(existing, plan)
                held = approve.reasons(n, n * limits.cost_per_sms, *approval)
            if dry_run or held or existing:
                break
            if ledger.create_plan(
                campaign_id,
                survey_id,
                plan,
                credits_before=credits.balance,
                fingerprint=fingerprint,
            ):
                break
        else:
            return Problem(message="could not write the campaign's plan to the ledger")
        # The report covers the campaign as a whole: credits as they were before its first run.
        first_credits = credits.balance
        if existing:
            recorded = ledger.credits_before(campaign_id)
            first_credits = credits.balance if recorded is None else recorded
            if not dry_run and not held:
                ledger.extend_plan(campaign_id, plan)
                ledger.clear_halt(campaign_id)  # a rerun is a new chance (credits may be back)
                ledger.bind_input(campaign_id, fingerprint)
    except lg.LedgerUnavailable as exc:
        return Problem(message=str(exc))
    explanations = {t: d.explanation for t, d in decisions.items()}
    for t, why in explanations.items():
        logger.info("%s: %s", t, why)
    prepared = cp.Prepared(
        campaign_id=campaign_id,
        rows_path=cp.save_rows(planned, campaign_id, run),
        source_columns=list(df.columns),
        chunk_indices=[],
        decisions=explanations,
        credits_before=first_credits,
        credits_now=credits.balance,
        currency=credits.currency or "EUR",
        dry_run=dry_run or bool(held),
        global_limit_is_rate=global_limit_is_rate,
        approval_reasons=held,
    )
    if dry_run or held:
        # What would be sent: the chunks planned now and those earlier runs left unsent.
        prepared.dry_plan = [
            {"index": c.chunk_index, "territory": c.territory, "slot": c.slot, "size": c.size}
            for c in existing
            if held and c.state not in (lg.SENT, lg.CANCELLED)
        ] + [
            {
                "index": c.chunk_index,
                "territory": c.territory,
                "slot": c.slot,
                "size": len(c.numbers),
            }
            for c in plan
        ]
        prepared.to_send = _left_to_send(existing, plan)
        return prepared
    # What is left to send: earlier runs' unfinished chunks and the ones planned now (no need to
    # read every chunk's numbers back from the ledger).
    left = [(c.chunk_index, c.size) for c in existing if c.state not in (lg.SENT, lg.CANCELLED)]
    left += [(c.chunk_index, len(c.numbers)) for c in plan]
    prepared.chunk_indices = [index for index, _ in left]
    prepared.to_send = sum(size for _, size in left)
    logger.info("%d chunks to send", len(prepared.chunk_indices))
    return prepared


def _left_to_send(existing: list[lg.ChunkRow], plan: list[lg.ChunkPlan]) -> int:
    unsent = sum(c.size for c in existing if c.state not in (lg.SENT, lg.CANCELLED))
    return unsent + sum(len(c.numbers) for c in plan)


def _plan(
    rows: Any,
    existing: list[lg.ChunkRow],
    suppressed: set[str],
    ledger: lg.Ledger,
    campaign_id: str,
    window: DeliveryWindow,
    limits: Limits,
    now: datetime,
) -> tuple[Any, list[lg.ChunkPlan], dict[str, Any]]:
    """Suppress and plan the rows that no earlier run of this campaign planned."""
    # A purged campaign's chunks hold pseudonyms: give back the numbers of this input.
    existing = ledger.reidentify(existing, rows[cp.E164])
    # Numbers an earlier run planned keep that run's plan and outcome.
    known = {n for c in existing for n in (*c.numbers, *c.refused)}

    def fresh() -> Any:
        return rows[cp.REASON].isna() & ~rows[cp.E164].isin(known)

    rows = cp.apply_suppression(rows, cp.OPTED_OUT, suppressed - known)
    rows = _cap(rows, fresh(), ledger, campaign_id, limits.frequency_cap_days, now)
    territories = rows.loc[fresh(), cp.TERRITORY]
    n_chunks = max(1, len(territories) // limits.chunk_size + territories.nunique())
    decisions = cp.decide_slots(
        territories,
        now,
        window.policy(),
        n_chunks=n_chunks,
        concurrency=limits.concurrency,
        lead=timedelta(minutes=limits.lead_minutes),
        margin=timedelta(minutes=15),
        allow_immediate=window.allow_immediate,
    )
    rows = cp.mark_no_slot(rows, decisions, fresh())
    start = max((c.chunk_index for c in existing), default=-1) + 1
    plan = cp.plan_chunks(
        rows.loc[fresh()], decisions, chunk_size=limits.chunk_size, start_index=start
    )
    return rows, plan, decisions


def _global_limit(name: str) -> bool | Problem:
    """Whether the named Prefect global limit is a rate limit; a Problem when it is missing
    (a missing name would otherwise throttle nothing, silently)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return Problem(
            message=f"no Prefect global concurrency limit named {name!r}: create it with "
            f"`prefect gcl create {name} --limit 8`"
        )
    return bool(limit.slot_decay_per_second)


SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"


def _is_sample(source: RecipientSource) -> bool:
    target = source.path if source.kind != SourceKind.sql else (source.db_url or "")
    target = target.removeprefix("sqlite:///") if target else ""
    return bool(target) and Path(target).resolve().is_relative_to(SAMPLES_DIR)


def _load(source: RecipientSource) -> Any:
    if source.kind == SourceKind.sql:
        if not source.db_url or not source.query:
            raise cp.CampaignError("an SQL source needs a database URL and a query")
        return load_recipients(db_url=_with_password(source), query=source.query)
    if not source.path:
        raise cp.CampaignError("a file source needs a path")
    return load_recipients(path=source.path, sheet=source.sheet)


def _with_password(source: RecipientSource) -> str:
    """The URL with its secrets put back, from the Secret block or this process: they are never
    a flow parameter."""
    return dburl.join(str(source.db_url), runtime.db_credentials(source.credentials_block))


def _cap(rows: Any, fresh: Any, ledger: lg.Ledger, cid: str, days: int, now: datetime) -> Any:
    recent = cp.recently_texted(ledger, rows.loc[fresh], cid, days, now)
    if recent:
        hit = fresh & rows[cp.REASON].isna() & rows[cp.E164].isin(recent)
        rows.loc[hit, cp.REASON] = cp.RECENTLY_SURVEYED
        rows.loc[hit, cp.DETAIL] = f"texted by another campaign within {days} days"
    return rows


def _batch_name() -> str:
    indices = task_run.parameters["chunk_indices"]
    if len(indices) == 1:
        return f"send-chunk-{indices[0]}"
    return f"send-chunks-{indices[0]}-{indices[-1]}"


@task(name="send-chunks", task_run_name=_batch_name, cache_policy=NO_CACHE)
@masked_errors
def send_chunks_task(
    settings: SendSettings,
    chunk_indices: list[int],
    global_limit: str | None = None,
    rate_limited: bool = False,
) -> list[ChunkResult]:
    """Send a group of chunks, one API call each, every one exactly once."""
    logger = get_run_logger()
    client = thread_client(settings.base_url, settings.timeout, settings.key_block)
    ledger = shared_ledger(settings.ledger_url, settings.ledger_lease, settings.ledger_outage)
    results = []
    for chunk_index in chunk_indices:
        result = _send_one(
            settings, chunk_index, client, ledger, global_limit, rate_limited, logger.warning
        )
        results.append(result)
        if result.stop_campaign:
            break  # the chunks left are reported from the ledger as they stand
    return results


def _send_one(
    settings: SendSettings,
    chunk_index: int,
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    global_limit: str | None,
    rate_limited: bool,
    warn: Callable[..., None],
) -> ChunkResult:
    """One chunk under the global limit, said in the log when it did not end sent."""
    try:
        if global_limit and rate_limited:
            rate_limit(global_limit, strict=True)
        if global_limit and not rate_limited:
            with concurrency(global_limit, occupy=1, strict=True):
                result = send_chunk_once(settings, chunk_index, client=client, ledger=ledger)
        else:
            result = send_chunk_once(settings, chunk_index, client=client, ledger=ledger)
    except lg.LedgerUnavailable as exc:
        return ChunkResult(chunk_index, lg.SENDING, 0, stop_campaign=str(exc))
    if result.state != lg.SENT:  # sent chunks are in the chunks table; say only what did not
        warn(
            "chunk %d: %s (%d numbers)%s",
            chunk_index,
            result.state,
            result.size,
            f", {result.reason}" if result.reason else "",
        )
    return result


@task(name="settle-in-doubt", cache_policy=NO_CACHE)
@masked_errors
def settle_task(
    settings: SendSettings,
    deferred: dict[int, datetime],
    wait_seconds: float,
    workers: int,
    global_limit: str | None = None,
    rate_limited: bool = False,
) -> list[ChunkResult]:
    """Come back to the chunks whose send may have landed, once the gateway can tell."""
    logger = get_run_logger()
    ledger = shared_ledger(settings.ledger_url, settings.ledger_lease, settings.ledger_outage)
    until = datetime.now(UTC) + timedelta(seconds=wait_seconds)
    logger.warning(
        "%d chunk(s) got an answer that proves nothing (they may have landed): waiting up to "
        "%g s for the gateway to show whether they did (settle time %g s)",
        len(deferred),
        wait_seconds,
        settings.send.settle.total_seconds(),
    )

    def drive(index: int) -> ChunkResult:
        client = thread_client(settings.base_url, settings.timeout, settings.key_block)
        return _send_one(
            settings, index, client, ledger, global_limit, rate_limited, logger.warning
        )

    results = settle_deferred(deferred, drive=drive, until=until, workers=workers, say=logger.info)
    left = sum(1 for r in results if r.deferred_until is not None)
    if left:
        logger.warning(
            "%d chunk(s) stay in doubt: a rerun of the campaign or the daily follow-up settles "
            "them once the gateway can tell",
            left,
        )
    return results


@task(name="write-report", cache_policy=NO_CACHE)
@masked_errors
def report_task(
    prepared: cp.Prepared,
    survey_id: str,
    ledger_url: str,
    started: float,
    credits_after: float | None,
    cost_per_sms: float,
    send_seconds: float,
    ledger_outage: float = 120.0,
    lang: Lang = DEFAULT_LANG,
    approval: dict[str, Any] | None = None,
) -> dict[str, Any] | Problem:
    """Outcome per row, summary, files and artifacts."""
    rows = cp.load_rows(prepared.rows_path)
    chunks: list[lg.ChunkRow] = []
    if not prepared.dry_run:
        try:
            ledger = shared_ledger(ledger_url, outage=ledger_outage)
            chunks = ledger.reidentify(ledger.chunks(prepared.campaign_id), rows[cp.E164])
        except lg.LedgerUnavailable as exc:
            return Problem(message=str(exc))
    rows = cp.row_outcomes(rows, chunks, dry_run=prepared.dry_run)
    counts = cp.count_outcomes(rows)
    report_dir = cp.REPORTS_DIR / prepared.campaign_id
    estimated = None
    if prepared.dry_run:
        estimated = round(counts.rejected.get(cp.DRY_RUN, 0) * cost_per_sms, 4)
    summary = rp.build_summary(
        campaign_id=prepared.campaign_id,
        survey_id=survey_id,
        counts=counts,
        chunks=chunks,
        rows=rows,
        decisions=prepared.decisions,
        credits_before=prepared.credits_before,
        credits_after=credits_after,
        currency=prepared.currency,
        dry_run=prepared.dry_run,
        duration=time.monotonic() - started,
        report_dir=report_dir,
        estimated_cost=estimated,
    )
    summary["send_seconds"] = round(send_seconds, 3)
    if prepared.dry_run:
        summary["plan"] = prepared.dry_plan
    if approval:
        summary["approval"] = approval  # who said what is kept with the campaign's report
    try:
        with cp.folder_lock(report_dir):
            rp.write_files(report_dir, summary, chunks, rows, prepared.source_columns)
            page = write_html_report(report_dir, summary, lang=lang)
    except OSError as exc:
        return Problem(message=f"cannot write the report in {report_dir}: {exc.strerror or exc}")
    cp.drop_run_rows(prepared.rows_path)
    cid = prepared.campaign_id
    markdown = rp.markdown_summary(summary, rows, lang=lang)
    if approval:
        comment = f" : « {approval['comment']} »" if approval.get("comment") else ""
        decision = i18n.text(lang, f"approval.decision_{approval['decision']}")
        markdown += f"\n\n{i18n.text(lang, 'approval.heading')}{decision}{comment}\n"
    if not prepared.dry_run and (link := cancel_link(cid)):
        markdown += (
            f"\n\n[Annuler la campagne / Cancel the campaign]({link}) : Run, "
            f"campaign id = `{cid}` (the chunks still scheduled are called off)\n"
        )
    create_markdown_artifact(
        key=rp.artifact_key(cid, "summary"),
        markdown=markdown,
        description=i18n.text(lang, "artifact.summary"),
    )
    create_table_artifact(
        key=rp.artifact_key(cid, "chunks"),
        table=rp.chunk_records(chunks)
        or [{"index": "-", "state": i18n.text(lang, "artifact.nothing_sent")}],
        description=i18n.text(lang, "artifact.chunks"),
    )
    create_link_artifact(
        key=rp.artifact_key(cid, "report"),
        link=page.resolve().as_uri(),
        link_text=i18n.text(lang, "artifact.report_link", page=page),
    )
    return summary


@task(name="read-credits", cache_policy=NO_CACHE)
@masked_errors
def credits_task(base_url: str, key_block: str | None = None) -> float | None:
    """Credits after sending, for the report (None when the gateway cannot tell now)."""
    try:
        with SMSPartnerClient(get_api_key(key_block), base_url) as client:
            return client.credits().balance
    except (SMSPartnerError, CampaignStopped):
        return None


# -- flow --------------------------------------------------------------------------------------


@flow(name="send-survey-campaign", log_prints=False, persist_result=False)
def send_survey_campaign(
    survey_id: Annotated[
        str,
        Field(
            title="Survey identifier",
            description="sondageIdent of a survey created in the SMS Partner account.",
        ),
    ],
    recipients: RecipientSource = RecipientSource(),  # noqa: B008 - read-only default
    campaign_id: Annotated[
        str | None,
        Field(
            title="Campaign id",
            description="Reuse an id to resume a campaign; empty for a new one.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, Field(title="Dry run", description="Plan and report, send nothing.")
    ] = False,
    window: DeliveryWindow = DeliveryWindow(),  # noqa: B008
    limits: Limits = Limits(),  # noqa: B008
    suppression_list: Annotated[
        str | None,
        Field(
            title="Local suppression list",
            description="CSV of numbers never to text; empty for the default file.",
        ),
    ] = None,
    approve_above_cost: Annotated[
        float | None,
        Field(
            ge=0,
            title="Approval above this cost (EUR)",
            description="Pause before any send for a person's approval when the estimated cost "
            "passes this amount; empty: never ask for the cost.",
        ),
    ] = None,
    approve_above_recipients: Annotated[
        int | None,
        Field(
            ge=0,
            title="Approval above this many recipients",
            description="Pause before any send for a person's approval when more recipients "
            "would be texted; empty: never ask for the size.",
        ),
    ] = None,
    approval_timeout_hours: Annotated[
        float,
        Field(
            gt=0,
            le=24 * 14,
            title="Wait for approval (hours)",
            description="Past this, an unanswered approval ends the campaign: nothing is sent.",
        ),
    ] = 24.0,
    approval_mode: Annotated[
        approve.ApprovalMode,
        Field(
            title="When approval is needed",
            description="pause: ask in the Prefect UI; stop: stop before any send (nobody to "
            "ask); approved: approved in advance.",
        ),
    ] = approve.ApprovalMode.pause,
    lang: Language = DEFAULT_LANG,
    resume_changed_input: Annotated[
        bool,
        Field(
            title="Resume on a changed input",
            description="Resuming a campaign id on recipients that changed since its first run "
            "is refused; tick to add the new rows to it (nobody is texted twice).",
        ),
    ] = False,
    api_key_block: ApiKeyBlock = None,
) -> dict[str, Any]:
    """Send an SMS survey to a list of recipients, lawfully and exactly once.

    Args:
        survey_id: The sondageIdent of a survey created in the SMS Partner account.
        recipients: Where the recipients come from: a CSV or Excel file, or an SQL query.
        campaign_id: Reuse an id to resume a campaign (nobody is texted twice); empty for a new
            one (a scheduled run takes its id from its schedule slot).
        dry_run: Plan and report, send nothing.
        window: Sending hours, in each recipient's own time zone.
        limits: Budget cap, cost estimate, speed and frequency cap.
        suppression_list: A CSV of numbers never to text; empty for the default list.
        approve_above_cost: Ask a person before sending when the estimated cost passes this.
        approve_above_recipients: Ask a person before sending above this many recipients.
        approval_timeout_hours: How long an approval is waited for.
        approval_mode: Ask in the UI, stop (command line), or approved in advance.
        lang: The language of the reports and artifacts (fr or en).
        resume_changed_input: Let a resumed campaign take a changed input (new rows added).
        api_key_block: The Secret block of this deployment's SMS Partner account.
    """
    started = time.monotonic()
    logger = get_run_logger()
    try:
        cid = cp.validate_campaign_id(campaign_id) if campaign_id else _campaign_id(survey_id)
    except cp.CampaignError as exc:
        logger.error(str(exc))
        return Failed(message=str(exc))  # type: ignore[return-value]
    name_this_run(cid)
    ledger_url = runtime.ledger_url()
    suppression = runtime.suppression_list(suppression_list)  # one named must exist
    run = uuid.uuid4().hex[:12]  # this run's own state files
    thresholds = (approve_above_cost, approve_above_recipients)
    asks = approval_mode != approve.ApprovalMode.approved and any(t is not None for t in thresholds)

    def prepare(hold: bool) -> cp.Prepared | Problem:
        return prepare_task(
            cid,
            survey_id,
            recipients,
            window,
            limits,
            ledger_url,
            suppression,
            dry_run,
            approval=thresholds if hold else None,
            key_block=api_key_block,
            resume_changed_input=resume_changed_input,
            run=run,
        )

    prepared = prepare(asks)
    verdict = approve.Verdict(approve.Decision.not_needed)
    asked_for: list[str] = []
    if not isinstance(prepared, Problem) and prepared.approval_reasons:
        asked_for = prepared.approval_reasons
        verdict = _approval(
            prepared, limits, approval_mode, approval_timeout_hours, thresholds, lang
        )
        if verdict.decision == approve.Decision.approved:
            logger.info("approved%s", f": {verdict.comment}" if verdict.comment else "")
            prepared = prepare(False)  # planned again: time passed while it waited
    if isinstance(prepared, Problem):
        message = prepared.message  # a Problem's message is masked already
        logger.error(message)
        return Failed(message=message)  # type: ignore[return-value]
    base_url = gateway_url()
    settings = SendSettings(
        campaign_id=cid,
        survey_id=survey_id,
        base_url=base_url,
        ledger_url=ledger_url,
        owner=lg.owner_token(uuid.uuid4().hex[:8]),
        cost_per_recipient=limits.cost_per_sms,
        max_cost=limits.max_cost,
        credits=_credits_to_check(prepared, limits),
        policy=window.policy(),
        lead=timedelta(minutes=limits.lead_minutes),
        send=SendPolicy(
            max_attempts=limits.max_attempts,
            backoff=limits.retry_backoff,
            settle=timedelta(seconds=limits.settle_seconds),
            first_look=timedelta(seconds=min(2.0, limits.settle_seconds)),
            look_every=timedelta(seconds=min(30.0, limits.settle_seconds)),
        ),
        timeout=limits.read_timeout,
        cap_days=limits.frequency_cap_days,
        ledger_outage=limits.ledger_outage_seconds,
        key_block=api_key_block,
    )
    fan_out_started = time.monotonic()
    stop, deferred = _fan_out(
        settings,
        prepared.chunk_indices,
        limits.concurrency,
        limits.global_limit,
        prepared.global_limit_is_rate,
    )
    if deferred and not stop:
        settled = settle_task(
            settings,
            deferred,
            limits.settle_wait_seconds,
            limits.concurrency,
            limits.global_limit,
            prepared.global_limit_is_rate,
        )
        stop = next((r.stop_campaign for r in settled if r.stop_campaign), None)
    send_seconds = time.monotonic() - fan_out_started
    credits_after = (
        prepared.credits_now if prepared.dry_run else credits_task(base_url, api_key_block)
    )
    summary = report_task(
        prepared,
        survey_id,
        ledger_url,
        started,
        credits_after,
        limits.cost_per_sms,
        send_seconds,
        limits.ledger_outage_seconds,
        lang,
        None if verdict.decision == approve.Decision.not_needed else verdict.as_dict(asked_for),
    )
    if isinstance(summary, Problem):
        message = mask_phone_numbers(stop or summary.message)
        logger.error(message)
        return Failed(message=message)  # type: ignore[return-value]
    if verdict.decision not in (approve.Decision.not_needed, approve.Decision.approved):
        return _not_approved(verdict, prepared, approval_timeout_hours, summary)
    if stop:
        logger.error(stop)
        return Failed(message=stop, data=summary)  # type: ignore[return-value]
    logger.info(
        i18n.text(
            lang,
            "log.campaign_summary",
            campaign=cid,
            sent=summary["sent"],
            failed=summary["failed"],
            rejected=sum(summary["rejected"].values()),
            cost=i18n.money(summary.get("cost"), str(summary.get("currency") or "EUR"), lang),
        )
    )
    emit_campaign_outcome(summary)  # failed or in-doubt chunks: the operator's automation hears
    return summary


def _approval(
    prepared: cp.Prepared,
    limits: Limits,
    mode: approve.ApprovalMode,
    timeout_hours: float,
    thresholds: tuple[float | None, int | None],
    lang: Lang,
) -> approve.Verdict:
    """Ask a person (a paused run in the UI), or stop when nobody can be asked."""
    logger = get_run_logger()
    why = "; ".join(prepared.approval_reasons)
    if mode == approve.ApprovalMode.stop:
        return approve.Verdict(approve.Decision.stopped)
    logger.warning("waiting for approval (%s): open the flow run in the Prefect UI", why)
    description = approve.describe(
        campaign_id=prepared.campaign_id,
        recipients=prepared.to_send,
        cost=prepared.to_send * limits.cost_per_sms,
        currency=prepared.currency,
        credits=prepared.credits_now,
        max_cost=limits.max_cost,
        above_cost=thresholds[0],
        above_recipients=thresholds[1],
        plan=prepared.dry_plan,
        timeout_hours=timeout_hours,
        lang=lang,
    )
    create_markdown_artifact(
        key=rp.artifact_key(prepared.campaign_id, "approval"),
        markdown=description,
        description=i18n.text(lang, "artifact.approval"),
    )
    verdict = approve.ask(description, int(timeout_hours * 3600))
    return approve.Verdict(verdict.decision, mask_phone_numbers(verdict.comment))


def _not_approved(
    verdict: approve.Verdict,
    prepared: cp.Prepared,
    timeout_hours: float,
    summary: dict[str, Any],
) -> Any:
    """The campaign's own end when nobody said yes: nothing was sent."""
    logger = get_run_logger()
    why = "; ".join(prepared.approval_reasons)
    if verdict.decision == approve.Decision.stopped:
        message = (
            f"approval needed before sending ({why}): nothing sent; rerun with --yes to send, "
            "or raise --approve-above-cost / --approve-above-recipients"
        )
        logger.error(message)
        return Failed(message=message, data=summary)
    if verdict.decision == approve.Decision.refused:
        comment = f": {verdict.comment}" if verdict.comment else ""
        message = f"refused by the operator{comment} ({why}): nothing sent"
        name = "Refused"
    else:
        message = f"not approved within {timeout_hours:g} h ({why}): nothing sent"
        name = "NotApproved"
    logger.warning(message)
    return Cancelled(message=message, name=name, data=summary)


def _credits_to_check(prepared: cp.Prepared, limits: Limits) -> float | None:
    """The credits each claim must check, or None when they are plentiful (at least twice the
    campaign's estimated cost): then the gateway's own code 11 is the backstop, and the claims
    skip a query on the fan-out's hot path."""
    credits = prepared.credits_now
    if credits is None or credits >= 2 * prepared.to_send * limits.cost_per_sms:
        return None
    return credits


def _fan_out(
    settings: SendSettings,
    indices: list[int],
    concurrency: int,
    global_limit: str | None = None,
    rate_limited: bool = False,
) -> tuple[str | None, dict[int, datetime]]:
    """Send every chunk with at most ``concurrency`` calls in flight; a fatal answer stops it.
    Returns the stop message, if any, and the chunks left in doubt with when to look again."""
    if not indices:
        return None, {}
    total = len(indices)
    progress = cast(
        UUID,
        create_progress_artifact(
            progress=0.0, key=None, description=f"Chunks sent for {settings.campaign_id}"
        ),
    )
    done = 0
    step = max(1, total // 20)
    stop: str | None = None
    deferred: dict[int, datetime] = {}
    runner: ThreadPoolTaskRunner[Any]
    with ThreadPoolTaskRunner(max_workers=concurrency) as runner:
        futures: list[Any] = runner.map(
            send_chunks_task,  # type: ignore[arg-type]  # Prefect's stubs expect an async task
            {
                "settings": unmapped(settings),
                "chunk_indices": cp.batch_chunks(indices, concurrency),
                "global_limit": unmapped(global_limit),
                "rate_limited": unmapped(rate_limited),
            },
        )
        for future in futures:
            results = cast(list[ChunkResult], future.result())
            before, done = done, done + len(results)
            stop = stop or next((r.stop_campaign for r in results if r.stop_campaign), None)
            deferred.update(deferred_of(results))
            if done // step > before // step or done == total:
                update_progress_artifact(progress, progress=100.0 * done / total)
    return stop, deferred


def _campaign_id(survey_id: str) -> str:
    """A scheduled run's id comes from its schedule slot, so a duplicate or retried scheduled run
    resumes the same campaign; a manual run's from its flow run, so a retry of it resumes too."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = str(flow_run.id or "")
    if not run_id:
        return cp.new_campaign_id(survey_id, datetime.now(UTC))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
    if run.deployment_id and run.auto_scheduled and run.expected_start_time:
        stem = cp.new_campaign_id(survey_id, run.expected_start_time).rsplit("-", 1)[0]
        return f"{stem}-{str(run.deployment_id)[:6]}"
    stem = cp.new_campaign_id(survey_id, datetime.now(UTC)).rsplit("-", 1)[0]
    return f"{stem}-{run_id[:8]}"


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m flows.survey_campaign",
        description="Send an SMS survey campaign through SMS Partner.",
    )
    p.add_argument("--survey-id", required=True, help="the survey's sondageIdent")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recipients", help="CSV or .xlsx file of recipients")
    src.add_argument("--db-url", help="SQLAlchemy database URL (with --query)")
    p.add_argument("--query", help="SELECT statement or table name (with --db-url)")
    p.add_argument(
        "--db-credentials-block",
        help="Prefect Secret block holding the database password (default: the URL's own "
        f"password, else {runtime.DB_PASSWORD_ENV})",
    )
    p.add_argument("--sheet", help="Excel sheet name (default: the first)")
    p.add_argument("--phone-column", help="column holding the numbers (default: detected)")
    p.add_argument("--campaign-id", help="reuse to resume a campaign; new id by default")
    p.add_argument("--dry-run", action="store_true", help="plan and report, send nothing")
    add_model_options(p, Limits)  # --max-cost ... --ledger-outage-seconds, from the model
    p.add_argument("--suppression-list", help="CSV of numbers never to text")
    p.add_argument(
        "--approve-above-cost",
        type=float,
        metavar="EUR",
        help="stop before any send when the estimated cost passes this (unless --yes)",
    )
    p.add_argument(
        "--approve-above-recipients",
        type=int,
        metavar="N",
        help="stop before any send above this many recipients (unless --yes)",
    )
    p.add_argument(
        "--yes", action="store_true", help="approve in advance: send past the thresholds"
    )
    p.add_argument("--api-key-block", help="Prefect Secret block holding the SMS Partner key")
    p.add_argument(
        "--lang", choices=["fr", "en"], default="fr", help="language of the reports (fr, en)"
    )
    p.add_argument(
        "--resume-changed-input",
        action="store_true",
        help="resume a campaign id on recipients that changed since (new rows are added)",
    )
    p.add_argument("--window", choices=[w.value for w in WindowPreset], default="strict")
    p.add_argument("--no-gateway-hold", action="store_true", help="ignore the Paris-time hold")
    p.add_argument("--alsace-moselle", action="store_true", help="add Alsace-Moselle holidays")
    p.add_argument("--horizon-days", type=int, default=14)
    p.add_argument(
        "--no-immediate", action="store_true", help="always schedule, never send at once"
    )
    p.add_argument("--allow-foreign", action="store_true", help="accept non-French mobiles")
    args = p.parse_args(argv)
    if args.db_url and not args.query:
        p.error("--db-url needs --query")
    if args.query and not args.db_url:
        p.error("--query needs --db-url")
    return args


def _source(args: argparse.Namespace) -> RecipientSource:
    if args.db_url is not None:
        # Secrets leave the URL here, before the flow run (and its stored parameters) exists;
        # they reach the loader through this process's environment only.
        url, secrets = dburl.split(args.db_url)
        runtime.keep_db_credentials(secrets)
        return RecipientSource(
            kind=SourceKind.sql,
            path=None,
            db_url=url,
            credentials_block=args.db_credentials_block,
            query=args.query,
            phone_column=args.phone_column,
        )
    kind = (
        SourceKind.excel
        if str(args.recipients).lower().endswith((".xlsx", ".xlsm"))
        else SourceKind.csv
    )
    return RecipientSource(
        kind=kind, path=args.recipients, sheet=args.sheet, phone_column=args.phone_column
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.campaign_id is not None:  # an empty id is a mistake, not "a new campaign"
            cp.validate_campaign_id(args.campaign_id)
        window = DeliveryWindow(
            preset=WindowPreset(args.window),
            gateway_hold=not args.no_gateway_hold,
            alsace_moselle=args.alsace_moselle,
            horizon_days=args.horizon_days,
            allow_immediate=not args.no_immediate,
            allow_foreign=args.allow_foreign,
        )
        limits = model_from_args(Limits, args)
        source = _source(args)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid option: {problems}", file=sys.stderr)
        return 2
    except (cp.CampaignError, ValueError) as exc:  # dburl.DbUrlError is a ValueError
        print(f"error: {one_line(exc, type(exc).__name__)}", file=sys.stderr)
        return 2
    if args.recipients and not Path(args.recipients).is_file():
        print(f"error: recipients file not found: {args.recipients}", file=sys.stderr)
        return 2
    state = send_survey_campaign(
        survey_id=args.survey_id,
        recipients=source,
        campaign_id=args.campaign_id,
        dry_run=args.dry_run,
        window=window,
        limits=limits,
        suppression_list=args.suppression_list,
        approve_above_cost=args.approve_above_cost,
        approve_above_recipients=args.approve_above_recipients,
        approval_mode=approve.ApprovalMode.approved if args.yes else approve.ApprovalMode.stop,
        api_key_block=args.api_key_block,
        resume_changed_input=args.resume_changed_input,
        lang=args.lang,
        return_state=True,
    )
    if state.is_completed():
        summary = state.result()
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        return 0
    data = (
        state.result(raise_on_failure=False)
        if (state.is_failed() or state.is_cancelled())
        else None
    )
    if isinstance(data, dict):  # what was done (or would have been sent) before it stopped
        print(json.dumps(data, ensure_ascii=False), flush=True)
    print(f"error: {one_line(state.message or 'campaign failed')}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
