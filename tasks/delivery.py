"""Delivery follow-up rules: what the gateway says became of each sent chunk, by territory.

The status buckets, one chunk's tally, the campaign's totals, what became of the chunks left in
doubt, and the markdown the UI shows: pure, from explicit inputs. Asking the gateway and writing
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
