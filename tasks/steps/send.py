"""The send step as Prefect tasks: the chunks fanned out over a thread pool in batches (one
task run each), the chunks left in doubt settled, the credits read back for the report.

Every chunk goes through ``sending.send_chunk_once`` (exactly once, whatever the gateway says);
this module only schedules those calls and says in the run's log what did not end sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from prefect import get_run_logger, unmapped
from prefect.concurrency.sync import concurrency, rate_limit
from prefect.runtime import task_run
from prefect.task_runners import ThreadPoolTaskRunner

from smspartner import SMSPartnerClient, SMSPartnerError
from tasks import i18n, runtime
from tasks import ledger as lg
from tasks import plan as pl
from tasks.i18n import Lang
from tasks.outcomes import ChunkState
from tasks.sending import ChunkResult, SendSettings, deferred_of, send_chunk_once, settle_deferred
from tasks.steps import progress, step


@dataclass(frozen=True)
class Throttle:
    """How many calls may be in flight: this run's bound, and a Prefect global limit shared by
    every worker (a concurrency limit, or a rate limit when it has a slot decay)."""

    concurrency: int
    global_limit: str | None = None
    rate_limited: bool = False


def send_campaign(
    settings: SendSettings, indices: list[int], throttle: Throttle, settle_wait_seconds: float
) -> str | None:
    """Send every chunk, then settle those left in doubt; the stop message, if any."""
    stop, deferred = fan_out(settings, indices, throttle)
    if deferred and not stop:
        settled = settle_task(settings, deferred, settle_wait_seconds, throttle)
        stop = next((r.stop_campaign for r in settled if r.stop_campaign), None)
    return stop


def credits_to_check(credits: float | None, to_send: int, cost_per_sms: float) -> float | None:
    """The credits each claim must check, or None when they are plentiful (at least twice the
    campaign's estimated cost): then the gateway's own code 11 is the backstop, and the claims
    skip a query on the fan-out's hot path."""
    if credits is None or credits >= 2 * to_send * cost_per_sms:
        return None
    return credits


def fan_out(
    settings: SendSettings, indices: list[int], throttle: Throttle
) -> tuple[str | None, dict[int, datetime]]:
    """Send every chunk with at most ``throttle.concurrency`` calls in flight; a fatal answer
    stops it. Returns the stop message, if any, and the chunks left in doubt with when to look
    again."""
    if not indices:
        return None, {}
    # Counted by chunk, in send_chunks_task: a batch of several chunks takes a while.
    progress.phase(settings.campaign_id, progress.Phase.sending, total=len(indices))
    stop: str | None = None
    deferred: dict[int, datetime] = {}
    runner: ThreadPoolTaskRunner[Any]
    with ThreadPoolTaskRunner(max_workers=throttle.concurrency) as runner:
        futures: list[Any] = runner.map(
            send_chunks_task,  # type: ignore[arg-type]  # Prefect's stubs expect an async task
            {
                "settings": unmapped(settings),
                "chunk_indices": pl.batch_chunks(indices, throttle.concurrency),
                "throttle": unmapped(throttle),
            },
        )
        for future in futures:
            results = cast(list[ChunkResult], future.result())
            stop = stop or next((r.stop_campaign for r in results if r.stop_campaign), None)
            deferred.update(deferred_of(results))
    return stop, deferred


def _batch_name() -> str:
    indices = task_run.parameters["chunk_indices"]
    if len(indices) == 1:
        return f"send-chunk-{indices[0]}"
    return f"send-chunks-{indices[0]}-{indices[-1]}"


@step("send-chunks", task_run_name=_batch_name)
def send_chunks_task(
    settings: SendSettings, chunk_indices: list[int], throttle: Throttle
) -> list[ChunkResult]:
    """Send a group of chunks, one API call each, every one exactly once."""
    logger = get_run_logger()
    client = runtime.thread_client(settings.base_url, settings.timeout, settings.key_block)
    ledger = runtime.shared_ledger(
        settings.ledger_url, settings.ledger_lease, settings.ledger_outage
    )
    results = []
    for chunk_index in chunk_indices:
        result = send_one(settings, chunk_index, client, ledger, throttle, logger.warning)
        results.append(result)
        progress.advance(settings.campaign_id)
        if result.stop_campaign:
            break  # the chunks left are reported from the ledger as they stand
    return results


@step("settle-in-doubt")
def settle_task(
    settings: SendSettings,
    deferred: dict[int, datetime],
    wait_seconds: float,
    throttle: Throttle,
) -> list[ChunkResult]:
    """Come back to the chunks whose send may have landed, once the gateway can tell."""
    logger = get_run_logger()
    ledger = runtime.shared_ledger(
        settings.ledger_url, settings.ledger_lease, settings.ledger_outage
    )
    lang = progress.lang_of(settings.campaign_id)
    logger.warning(
        i18n.plural(
            lang,
            "log.settle_waiting",
            len(deferred),
            wait=i18n.number(round(wait_seconds), lang),
            settle=i18n.number(round(settings.send.settle.total_seconds()), lang),
        )
    )

    def drive(index: int) -> ChunkResult:
        client = runtime.thread_client(settings.base_url, settings.timeout, settings.key_block)
        return send_one(settings, index, client, ledger, throttle, logger.warning)

    until = datetime.now(UTC) + timedelta(seconds=wait_seconds)
    progress.phase(settings.campaign_id, progress.Phase.settling, total=len(deferred))
    results = settle_deferred(
        deferred,
        drive=drive,
        until=until,
        workers=throttle.concurrency,
        say=logger.info,
        on_settled=lambda: progress.advance(settings.campaign_id),
        lang=lang,
    )
    if left := sum(1 for r in results if r.deferred_until is not None):
        logger.warning(i18n.plural(lang, "log.settle_left", left))
    return results


@step("read-credits")
def credits_task(base_url: str, key_block: str | None = None) -> float | None:
    """Credits after sending, for the report (None when the gateway cannot tell now)."""
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            return client.credits().balance
    except (SMSPartnerError, runtime.CampaignStopped):
        return None


def not_sent_line(result: ChunkResult, lang: Lang) -> str:
    """ "lot 2 : incertain (100 numéros), envoi incertain" (the reason in words)."""
    reason = ", " + i18n.label(lang, "reason", result.reason) if result.reason else ""
    return i18n.text(
        lang,
        "log.chunk_not_sent",
        chunk=result.chunk_index,
        state=i18n.label(lang, "chunk_state", str(result.state)),
        numbers=i18n.plural(lang, "count.numbers", result.size),
        reason=reason,
    )


def send_one(
    settings: SendSettings,
    chunk_index: int,
    client: SMSPartnerClient,
    ledger: lg.Ledger,
    throttle: Throttle,
    warn: Callable[..., None],
) -> ChunkResult:
    """One chunk under the global limit, said in the log when it did not end sent."""
    name = throttle.global_limit
    try:
        if name and throttle.rate_limited:
            rate_limit(name, strict=True)
        if name and not throttle.rate_limited:
            with concurrency(name, occupy=1, strict=True):
                result = send_chunk_once(settings, chunk_index, client=client, ledger=ledger)
        else:
            result = send_chunk_once(settings, chunk_index, client=client, ledger=ledger)
    except lg.LedgerUnavailable as exc:
        return ChunkResult(chunk_index, ChunkState.sending, 0, stop_campaign=str(exc))
    if result.state != ChunkState.sent:  # sent chunks are in the chunks table; say only the rest
        warn(not_sent_line(result, progress.lang_of(settings.campaign_id)))
    return result
