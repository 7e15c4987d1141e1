"""Delivery follow-up rules: what the gateway says became of each sent chunk, by territory.

The status buckets, one chunk's tally (and each recipient's bucket, which the never-text store
keeps as its delivery history: ``tasks/retire.py``), the campaign's totals, by territory and by
survey, what became of the chunks left in doubt, and the markdown the UI shows: pure, from
explicit inputs. Asking the gateway and writing
``follow_up.json`` are in ``tasks/delivery_io.py``; the follow-up flow's tasks in
``tasks/steps/follow_up.py``.

The gateway's answers vary (smspartner-api.md sections 5, 13 and 18): ``statut`` or ``status``,
``Delivered`` or ``delivered`` or ``DELIVRD``, ``ko``, French texts, numbers in national or
international form, dates as strings or timestamps. The client parses the envelope; the buckets
below absorb the spellings, and anything else is counted as ``other``, never dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from smspartner import StatusEntry, normalise_status
from tasks.i18n import (
    DEFAULT_LANG,
    Lang,
    label,
    number,
    percent,
    plural,
    territory_cell,
    text,
    when,
)
from tasks.ledger.model import ChunkRow
from tasks.numbers import mask_number, parse_loose
from tasks.outcomes import (
    DELIVERED,
    DELIVERY_STATUSES,
    NOT_DELIVERED,
    OTHER_STATUS,
    WAITING,
    ChunkState,
)

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
    # (E.164, bucket) of each recipient: never written to a file (see ``write_follow_up``)
    statuses: tuple[tuple[str, str], ...] = ()
    survey_id: str | None = None  # None: the campaign's survey


def tally_chunk(
    chunk: ChunkRow, entries: Iterable[StatusEntry], *, source: str, problem: str | None = None
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
    buckets = {n: status_bucket(e.status) for n, e in latest.items()}
    counts = _empty_counts()
    for bucket in buckets.values():
        counts[bucket] += 1
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
        statuses=tuple((n, buckets.get(n, OTHER_STATUS)) for n in sorted(wanted)),
        # ChunkRow.survey_id is new: a ledger row of an older version has none.
        survey_id=getattr(chunk, "survey_id", None),
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
    # Numbers put in the never-text store as undeliverable by this pass, and taken out of it
    # (delivered again).
    retired: int = 0
    released: int = 0
    # {survey id: the four buckets}, when the chunks went to more than one survey; else empty
    by_survey: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_counts(self) -> dict[str, Any]:
        """The JSON object the command prints."""
        counts = {
            "campaign_id": self.campaign_id,
            "chunks_checked": self.chunks_checked,
            **self.counts,
            "stop_added": self.stop_added,
            "retired": self.retired,
            "released": self.released,
            "by_territory": self.by_territory,
            "in_doubt": dict(self.doubt),
        }
        if self.by_survey:
            counts["surveys"] = self.by_survey
        return counts

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
    campaign_id: str,
    deliveries: Sequence[ChunkDelivery],
    *,
    checked_at: datetime,
    survey_id: str | None = None,
) -> FollowUp:
    """Totals overall, per territory (territories sorted, each with all four buckets) and, when
    the chunks went to several surveys, per survey (``survey_id``: the campaign's, for chunks
    that name none)."""
    totals = _empty_counts()
    by_territory: dict[str, dict[str, int]] = {}
    by_survey: dict[str, dict[str, int]] = {}
    for d in deliveries:
        row = by_territory.setdefault(d.territory, _empty_counts())
        survey = by_survey.setdefault(d.survey_id or survey_id or "", _empty_counts())
        for bucket, n in d.counts.items():
            totals[bucket] += n
            row[bucket] += n
            survey[bucket] += n
    latest = max((d.last_status_at for d in deliveries if d.last_status_at), default=None)
    stops = sorted({n for d in deliveries for n in d.stops})
    return FollowUp(
        campaign_id=campaign_id,
        chunks_checked=len(deliveries),
        counts=totals,
        by_territory=dict(sorted(by_territory.items())),
        by_survey=dict(sorted(by_survey.items())) if len(by_survey) > 1 else {},
        stops_masked=[mask_number(n) for n in stops],
        checked_at=checked_at.isoformat(),
        last_status_at=latest,
        problems=[f"chunk {d.chunk_index}: {d.problem}" for d in deliveries if d.problem],
    )


def stop_numbers(deliveries: Iterable[ChunkDelivery]) -> list[str]:
    """E.164 of every recipient the gateway reported as STOP, once each."""
    return sorted({n for d in deliveries for n in d.stops})


def number_statuses(deliveries: Iterable[ChunkDelivery]) -> list[tuple[str, str]]:
    """(E.164, bucket) of every recipient; one sent twice by the campaign (two chunks) keeps
    the status that says most: delivered, then not delivered, then waiting, then other."""
    rank: dict[str, int] = {str(b): i for i, b in enumerate(DELIVERY_STATUSES)}
    best: dict[str, str] = {}
    for d in deliveries:
        for n, bucket in d.statuses:
            if n not in best or rank.get(bucket, len(rank)) < rank.get(best[n], len(rank)):
                best[n] = bucket
    return sorted(best.items())


def _moment(value: str | None, lang: Lang) -> str | None:
    """An ISO 8601 instant in Paris time words; as given if it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return when(moment, "Europe/Paris", lang) if moment.tzinfo else value


def _cell(value: str) -> str:
    """A value from the ledger as one markdown table cell, in code type."""
    return "`" + value.replace("`", "'").replace("|", "/") + "`" if value else "-"


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
            chunks=plural(lang, "count.chunks_checked", result.chunks_checked),
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
    if result.by_survey:
        lines += [
            "",
            row(text(lang, "col.survey"), *(label(lang, "status", b) for b in DELIVERY_STATUSES)),
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            row(_cell(survey), *(n(c[b]) for b in DELIVERY_STATUSES))
            for survey, c in result.by_survey.items()
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
    lines += ["", "## " + text(lang, "delivery.retired_heading"), ""]
    lines.append(
        text(lang, "delivery.retired", retired=n(result.retired), released=n(result.released))
    )
    if result.problems:
        lines += ["", "## " + text(lang, "delivery.problems"), ""]
        lines += [f"- {p}" for p in result.problems[:20]]
    return "\n".join(lines)


def chunks_to_check(chunks: Iterable[ChunkRow]) -> list[ChunkRow]:
    """Sent chunks that reached somebody (a chunk whose numbers were all refused has none)."""
    return [c for c in chunks if c.state == ChunkState.sent and c.numbers]


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


def doubt_counts(states: Iterable[str]) -> dict[str, int]:
    """What became of the chunks left in doubt, from their ledger states once settled."""
    counts = {"confirmed_sent": 0, "not_sent": 0, "still_in_doubt": 0}
    buckets: dict[str, str] = {ChunkState.sent: "confirmed_sent", ChunkState.failed: "not_sent"}
    for state in states:
        counts[buckets.get(state, "still_in_doubt")] += 1
    return counts
