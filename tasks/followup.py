"""Delivery follow-up: what the gateway says became of each sent chunk, by territory.

Pure rules first (the status buckets, one chunk's tally, the campaign's totals, the markdown the
UI shows), then the I/O around them: asking the gateway about each chunk, adding the numbers that
replied STOP to the local suppression list, and writing ``follow_up.json``; last, the Prefect
tasks the follow-up flow runs.

The gateway's answers vary (smspartner-api.md sections 5, 13 and 18): ``statut`` or ``status``,
``Delivered`` or ``delivered`` or ``DELIVRD``, ``ko``, French texts, numbers in national or
international form, dates as strings or timestamps. The client parses the envelope; the buckets
below absorb the spellings, and anything else is counted as ``other``, never dropped.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from smspartner import (
    NotFound,
    SMSPartnerClient,
    SMSPartnerError,
    StatusEntry,
    normalise_status,
)
from tasks import campaign as cp
from tasks import ledger as lg
from tasks import report as rep
from tasks import reporting as rp
from tasks import runtime
from tasks.errors import SurveyError
from tasks.files import write_text_atomic
from tasks.html_report import write_html_report
from tasks.i18n import DEFAULT_LANG, Lang, label, number, percent, territory_cell, text, when
from tasks.nevertext import Origin
from tasks.numbers import mask_number, parse_loose
from tasks.outcomes import (
    DELIVERED,
    DELIVERY_STATUSES,
    NOT_DELIVERED,
    OTHER_STATUS,
    WAITING,
    gateway_problem,
)
from tasks.runs import masked_errors
from tasks.sendcore import SendPolicy
from tasks.sending import SendSettings, settle_only
from tasks.spreadsheet import write_table
from tasks.summary import read_summary

# Spellings folded to lowercase ASCII with single spaces (see _fold).
_BUCKETS: dict[str, str] = {
    # section 13: the status endpoints, the error page's lowercase list, operator DLR codes
    "delivered": DELIVERED,
    "delivrd": DELIVERED,
    "to handset": DELIVERED,
    "to operator": DELIVERED,
    "delivre": DELIVERED,
    "livre": DELIVERED,
    "recu": DELIVERED,
    "not delivered": NOT_DELIVERED,
    "undelivered": NOT_DELIVERED,
    "undeliv": NOT_DELIVERED,
    "undeliverable": NOT_DELIVERED,
    "ko": NOT_DELIVERED,
    "rejectd": NOT_DELIVERED,
    "rejected": NOT_DELIVERED,
    "expired": NOT_DELIVERED,
    "failed": NOT_DELIVERED,
    "non delivre": NOT_DELIVERED,
    "non livre": NOT_DELIVERED,
    "non recu": NOT_DELIVERED,
    "echec": NOT_DELIVERED,
    "expire": NOT_DELIVERED,
    "waiting": WAITING,
    "pending": WAITING,
    "enroute": WAITING,
    "acceptd": WAITING,
    "accepted": WAITING,
    "sent": WAITING,  # handed to the operator, no delivery report yet (seen only in MIS)
    "en attente": WAITING,
    "envoye": WAITING,
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(ascii_text.replace("_", " ").replace("-", " ").split())


def status_bucket(status: object) -> str:
    """``delivered``, ``not_delivered``, ``waiting`` or ``other`` for any status text."""
    return _BUCKETS.get(_fold(normalise_status(status)), OTHER_STATUS)


def _empty_counts() -> dict[str, int]:
    return dict.fromkeys(DELIVERY_STATUSES, 0)


@dataclass(frozen=True)
class ChunkDelivery:
    """What the gateway said about the recipients of one chunk."""

    chunk_index: int
    territory: str
    size: int
    counts: dict[str, int]
    stops: tuple[str, ...]  # E.164 of recipients that replied STOP (never shown unmasked)
    source: str  # "message" (status by message id) or "tag" (status by tag)
    last_status_at: str | None = None  # ISO 8601 UTC of the latest status date
    problem: str | None = None


def tally_chunk(
    chunk: lg.ChunkRow, entries: Iterable[StatusEntry], *, source: str, problem: str | None = None
) -> ChunkDelivery:
    """One status per recipient of the chunk; recipients the gateway did not list are ``other``.

    A number listed twice (a tag's page repeated, a resend) keeps its latest status; entries for
    numbers that are not in the chunk are ignored, so they cannot inflate the counts.
    """
    wanted = set(chunk.numbers)
    latest: dict[str, StatusEntry] = {}
    stops: set[str] = set()
    for entry in entries:
        number = entry.phone_number.strip()
        e164 = number if number in wanted else parse_loose(number) if number else None
        if e164 is None or e164 not in wanted:
            continue
        if entry.stop:
            stops.add(e164)
        previous = latest.get(e164)
        if previous is None or _not_older(entry.date, previous.date):
            latest[e164] = entry
    counts = _empty_counts()
    for entry in latest.values():
        counts[status_bucket(entry.status)] += 1
    counts[OTHER_STATUS] += len(wanted) - len(latest)
    dates = [e.date for e in latest.values() if e.date is not None]
    return ChunkDelivery(
        chunk_index=chunk.chunk_index,
        territory=chunk.territory,
        size=len(wanted),
        counts=counts,
        stops=tuple(sorted(stops)),
        source=source,
        last_status_at=max(dates).isoformat() if dates else None,
        problem=problem,
    )


def _not_older(candidate: datetime | None, current: datetime | None) -> bool:
    if candidate is None:
        return current is None
    return current is None or candidate >= current


@dataclass
class FollowUp:
    """The campaign's delivery totals: the CLI's last line, ``follow_up.json`` and the report."""

    campaign_id: str
    chunks_checked: int
    counts: dict[str, int]
    by_territory: dict[str, dict[str, int]]
    stop_added: int = 0
    stops_masked: list[str] = field(default_factory=list)
    checked_at: str | None = None
    last_status_at: str | None = None
    problems: list[str] = field(default_factory=list)
    # Chunks left in doubt by the send runs: confirmed sent now, shown not sent (a rerun sends
    # them), or still in doubt (their slot or settle time has not passed, or the gateway cannot
    # tell yet).
    doubt: dict[str, int] = field(default_factory=dict)

    def as_counts(self) -> dict[str, Any]:
        """The JSON object the command prints."""
        return {
            "campaign_id": self.campaign_id,
            "chunks_checked": self.chunks_checked,
            **self.counts,
            "stop_added": self.stop_added,
            "by_territory": self.by_territory,
            "in_doubt": dict(self.doubt),
        }

    def as_dict(self) -> dict[str, Any]:
        """Everything, for ``follow_up.json`` and the HTML report (no full number in it)."""
        return {
            **self.as_counts(),
            "stops_masked": list(self.stops_masked),
            "checked_at": self.checked_at,
            "last_status_at": self.last_status_at,
            "problems": list(self.problems),
        }


def aggregate(
    campaign_id: str, deliveries: Sequence[ChunkDelivery], *, checked_at: datetime
) -> FollowUp:
    """Totals overall and per territory (territories sorted, each with all four buckets)."""
    totals = _empty_counts()
    by_territory: dict[str, dict[str, int]] = {}
    for d in deliveries:
        row = by_territory.setdefault(d.territory, _empty_counts())
        for bucket, n in d.counts.items():
            totals[bucket] += n
            row[bucket] += n
    latest = max((d.last_status_at for d in deliveries if d.last_status_at), default=None)
    stops = sorted({n for d in deliveries for n in d.stops})
    return FollowUp(
        campaign_id=campaign_id,
        chunks_checked=len(deliveries),
        counts=totals,
        by_territory=dict(sorted(by_territory.items())),
        stops_masked=[mask_number(n) for n in stops],
        checked_at=checked_at.isoformat(),
        last_status_at=latest,
        problems=[f"chunk {d.chunk_index}: {d.problem}" for d in deliveries if d.problem],
    )


def stop_numbers(deliveries: Iterable[ChunkDelivery]) -> list[str]:
    """E.164 of every recipient the gateway reported as STOP, once each."""
    return sorted({n for d in deliveries for n in d.stops})


def _moment(value: str | None, lang: Lang) -> str | None:
    """An ISO 8601 instant in Paris time words; as given if it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return when(moment, "Europe/Paris", lang) if moment.tzinfo else value


def markdown_delivery(result: FollowUp, *, lang: Lang = DEFAULT_LANG) -> str:
    """What the UI shows: aggregates and masked numbers only."""
    total = sum(result.counts.values())

    def n(value: int) -> str:
        return number(value, lang)

    def share(value: int) -> str:
        return percent(value / total, lang) if total else "-"

    def row(*cells: str) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [
        "# " + text(lang, "delivery.title", campaign=f"`{result.campaign_id}`"),
        "",
        text(
            lang,
            "delivery.checked",
            chunks=n(result.chunks_checked),
            checked=_moment(result.checked_at, lang) or text(lang, "unknown"),
            latest=_moment(result.last_status_at, lang) or text(lang, "none_yet"),
        ),
        "",
        row(text(lang, "col.status"), text(lang, "col.recipients"), text(lang, "col.share")),
        "|---|---:|---:|",
    ]
    lines += [
        row(label(lang, "status", b), n(result.counts[b]), share(result.counts[b]))
        for b in DELIVERY_STATUSES
    ]
    lines += [
        "",
        row(text(lang, "col.territory"), *(label(lang, "status", b) for b in DELIVERY_STATUSES)),
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        row(territory_cell(t, lang), *(n(c[b]) for b in DELIVERY_STATUSES))
        for t, c in result.by_territory.items()
    ]
    lines += ["", "## " + text(lang, "delivery.stops_heading"), ""]
    if result.stops_masked:
        lines.append(
            text(
                lang,
                "delivery.stops",
                stops=n(len(result.stops_masked)),
                added=n(result.stop_added),
            )
        )
        lines += [""] + [f"- {m}" for m in result.stops_masked[:20]]
        if len(result.stops_masked) > 20:
            lines.append("- " + text(lang, "stops.more", n=n(len(result.stops_masked) - 20)))
    else:
        lines.append(text(lang, "delivery.no_stops"))
    if result.problems:
        lines += ["", "## " + text(lang, "delivery.problems"), ""]
        lines += [f"- {p}" for p in result.problems[:20]]
    return "\n".join(lines)


# -- I/O -------------------------------------------------------------------------------------


def check_chunk(client: SMSPartnerClient, chunk: lg.ChunkRow) -> ChunkDelivery:
    """Statuses of one sent chunk: by message id when the ledger has it, else by tag.

    A chunk the gateway does not know (code 4) counts as ``other`` with the reason kept; any other
    gateway error propagates, since it would hit every chunk alike (key, network).
    """
    if chunk.message_id is not None:
        try:
            entries = client.status_by_message(chunk.message_id)
            return tally_chunk(chunk, entries, source="message")
        except NotFound:
            pass  # the tag may still find it (e.g. a message id recorded from a lost answer)
    try:
        entries = client.status_by_tag(chunk.tag)
    except NotFound:
        return tally_chunk(chunk, [], source="tag", problem="unknown to the gateway (code 4)")
    return tally_chunk(chunk, entries, source="tag")


def check_chunks(
    client: SMSPartnerClient, chunks: Sequence[lg.ChunkRow], *, workers: int = 8
) -> list[ChunkDelivery]:
    """``check_chunk`` for each chunk, ``workers`` calls in flight, in the chunks' order."""
    if not chunks:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks)))) as pool:
        return list(pool.map(lambda c: check_chunk(client, c), chunks))


def chunks_to_check(chunks: Iterable[lg.ChunkRow]) -> list[lg.ChunkRow]:
    """Sent chunks that reached somebody (a chunk whose numbers were all refused has none)."""
    return [c for c in chunks if c.state == lg.SENT and c.numbers]


DELIVERY_COLUMNS = (
    "chunk",
    "territory",
    "size",
    *DELIVERY_STATUSES,
    "stops",
    "source",
    "last_status_at",
    "problem",
)


def write_follow_up(
    report_dir: Path, result: FollowUp, deliveries: Sequence[ChunkDelivery]
) -> Path:
    """``follow_up.json`` (the totals and one line per chunk, STOP numbers masked) and the same
    chunks as ``delivery.csv`` / ``delivery.xlsx`` for a spreadsheet."""
    report_dir.mkdir(parents=True, exist_ok=True)
    data = result.as_dict()
    data["chunks"] = [
        {
            **{k: v for k, v in asdict(d).items() if k != "stops"},
            "stops": len(d.stops),
        }
        for d in deliveries
    ]
    path = write_text_atomic(
        report_dir / "follow_up.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    )
    write_table(
        report_dir / "delivery",
        DELIVERY_COLUMNS,
        (
            [
                d.chunk_index,
                d.territory,
                d.size,
                *(d.counts.get(b, 0) for b in DELIVERY_STATUSES),
                len(d.stops),
                d.source,
                d.last_status_at,
                d.problem,
            ]
            for d in deliveries
        ),
    )
    return path


def doubt_counts(states: Iterable[str]) -> dict[str, int]:
    """What became of the chunks left in doubt, from their ledger states once settled."""
    counts = {"confirmed_sent": 0, "not_sent": 0, "still_in_doubt": 0}
    buckets: dict[str, str] = {lg.SENT: "confirmed_sent", lg.FAILED: "not_sent"}
    for state in states:
        counts[buckets.get(state, "still_in_doubt")] += 1
    return counts


# -- tasks -------------------------------------------------------------------------------------


@task(name="settle-in-doubt", cache_policy=NO_CACHE)
@masked_errors
def settle_in_doubt_task(
    campaign_id: str,
    ledger_url: str,
    settle_seconds: float,
    cost_per_sms: float,
    key_block: str | None = None,
) -> dict[str, int]:
    """Settle the chunks a send run left in doubt, where the gateway can now tell."""
    ledger = runtime.shared_ledger(ledger_url)
    doubtful = ledger.chunks(campaign_id, states=[lg.IN_DOUBT])
    if not doubtful:
        return doubt_counts([])
    settings = _settle_settings(campaign_id, ledger_url, settle_seconds, cost_per_sms)
    counts = doubt_counts(_settle_states(settings, ledger, doubtful, key_block))
    get_run_logger().info(
        "%d chunk(s) in doubt: %d confirmed sent, %d shown not sent (a rerun sends them), "
        "%d still in doubt",
        len(doubtful),
        counts["confirmed_sent"],
        counts["not_sent"],
        counts["still_in_doubt"],
    )
    return counts


def _settle_settings(
    campaign_id: str, ledger_url: str, settle_seconds: float, cost_per_sms: float
) -> SendSettings:
    return SendSettings(
        campaign_id=campaign_id,
        survey_id="-",  # nothing is sent here
        base_url=runtime.gateway_url(),
        ledger_url=ledger_url,
        owner=lg.owner_token(f"follow-up-{uuid.uuid4().hex[:8]}"),
        cost_per_recipient=cost_per_sms,  # when no answer of the campaign priced it
        send=SendPolicy(settle=timedelta(seconds=settle_seconds)),
    )


def _settle_states(
    settings: SendSettings, ledger: lg.Ledger, chunks: list[lg.ChunkRow], key_block: str | None
) -> list[str]:
    """Each chunk's ledger state once settled, all through one client."""
    with SMSPartnerClient(runtime.get_api_key(key_block), settings.base_url) as client:
        return [
            settle_only(settings, c.chunk_index, client=client, ledger=ledger).state for c in chunks
        ]


@task(name="check-delivery", cache_policy=NO_CACHE)
@masked_errors
def check_delivery_task(
    campaign_id: str, ledger_url: str, key_block: str | None = None
) -> list[ChunkDelivery]:
    """Ask the gateway for the statuses of every sent chunk of the campaign."""
    chunks = chunks_to_check(runtime.shared_ledger(ledger_url).chunks(campaign_id))
    base_url = runtime.gateway_url()
    try:
        with SMSPartnerClient(runtime.get_api_key(key_block), base_url) as client:
            deliveries = check_chunks(client, chunks)
    except SMSPartnerError as exc:
        raise SurveyError(gateway_problem(exc, base_url)) from None
    get_run_logger().info("%d sent chunks checked", len(deliveries))
    return deliveries


@task(name="record-stops", cache_policy=NO_CACHE)
@masked_errors
def record_stops_task(ledger_url: str, campaign_id: str, numbers: list[str]) -> int:
    """Add the STOP replies to the never-text store; how many people were new to it."""
    store = runtime.never_text_store(runtime.shared_ledger(ledger_url))
    added = store.add(numbers, Origin.reply, "STOP reply", campaign_id)
    get_run_logger().info("%d STOP replies, %d new to the never-text store", len(numbers), added)
    return added


@task(name="publish-delivery", cache_policy=NO_CACHE)
@masked_errors
def publish_task(
    result: FollowUp,
    deliveries: list[ChunkDelivery],
    ledger_url: str,
    lang: Lang = DEFAULT_LANG,
) -> str:
    """follow_up.json and delivery.*, the campaign's report rebuilt with the ledger as it is
    now (chunks settled since, cancelled ones) and the delivery figures, and new versions of
    its artifacts."""
    cid = result.campaign_id
    report_dir = cp.report_dir(cid)
    ledger = runtime.shared_ledger(ledger_url)
    delivery_md = markdown_delivery(result, lang=lang)
    with ledger.lock(f"report {cid}"):
        try:
            write_follow_up(report_dir, result, deliveries)
        except OSError as exc:
            raise rep.ReportError(
                text(lang, "error.report_unwritten", folder=report_dir, why=exc.strerror or exc)
            ) from None
        rebuilt = rep.rebuild(cid, ledger, lang)
        summary = read_summary(report_dir, cid)
        page: Path | None = rebuilt.page if rebuilt else None
        if rebuilt is None and summary.complete:
            # A report written before its rows were kept: the delivery added, as it was.
            page = write_html_report(report_dir, summary.as_json(), result.as_dict(), lang=lang)
    create_markdown_artifact(
        key=rp.artifact_key(cid, "delivery"),
        markdown=delivery_md,
        description=text(lang, "artifact.delivery"),
    )
    if rebuilt is not None:
        rep.publish(
            rebuilt.summary,
            rebuilt.rows,
            rebuilt.chunks,
            rebuilt.page,
            lang,
            delivery_markdown=delivery_md,
        )
        rep.refreshed(rebuilt.summary, lang)
        return str(rebuilt.page)
    if page is None:
        # Not the campaign's newest report: a partial one would hide what the send run wrote.
        get_run_logger().warning(
            "the campaign's summary.json is not in this worker's data folder (%s): its report "
            "was left as it is; give every worker the same SURVEY_DATA_DIR",
            report_dir.parent,
        )
        return ""
    rep.not_refreshed(cid, lang)
    rows = pd.DataFrame(columns=[cp.OUTCOME, cp.E164, cp.REASON])  # no rows kept to show
    chunks = ledger.chunks(cid)
    rep.publish(summary, rows, chunks, page, lang, delivery_markdown=delivery_md)
    return str(page)


__all__ = [
    "DELIVERY_COLUMNS",
    "ChunkDelivery",
    "FollowUp",
    "aggregate",
    "check_chunk",
    "check_chunks",
    "check_delivery_task",
    "chunks_to_check",
    "doubt_counts",
    "gateway_problem",
    "markdown_delivery",
    "publish_task",
    "read_summary",
    "record_stops_task",
    "settle_in_doubt_task",
    "status_bucket",
    "stop_numbers",
    "tally_chunk",
    "write_follow_up",
]
