"""From a list of rows to a plan of chunks, and from the ledger back to an outcome per row.

Pure rules first (suppression, grouping by slot, chunking, accounting); the I/O-bound
``prepare_campaign`` that strings them together with the loaders and the ledger comes last.
Every row that enters leaves with exactly one outcome; ``check_identity`` enforces
``loaded == sent + failed + sum(rejected)`` in code, on every run.
"""

from __future__ import annotations

import hashlib
import math
import operator
import os
import pickle
import re
import secrets
import shutil
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_object_dtype

from tasks import ledger as lg
from tasks import runtime
from tasks.errors import SurveyError, known_id
from tasks.numbers import clean_column, parse_loose
from tasks.outcomes import (
    CAMPAIGN_CANCELLED,
    DRY_RUN,
    FAILED,
    GATEWAY_REJECTED,
    NO_SLOT,
    NOT_PLANNED,
    OPTED_OUT,
    RECENTLY_SURVEYED,
    REJECTED,
    SENT,
)
from tasks.slots import PARIS, SlotDecision, WindowPolicy, plan_slot

if TYPE_CHECKING:  # tasks/money.py imports this module: no import back at run time
    from tasks.money import Money

MAX_CHUNK = 500  # the gateway's limit per call

_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")

# Columns the pipeline adds to the source's own (prefixed so they never clash with them).
E164, TERRITORY, REASON, DETAIL, OUTCOME, ROW = (
    "_e164",
    "_territory",
    "_reason",
    "_detail",
    "_outcome",
    "_row",
)


class CampaignError(SurveyError):
    """Bad input or configuration: str() is one line for the operator."""


def validate_campaign_id(campaign_id: str) -> str:
    # fullmatch: with match, "$" also matches before a trailing newline ("id\n" passed and made
    # a folder with a newline in its name).
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise CampaignError(
            "campaign id must be 1-120 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return known_id(campaign_id)


def input_fingerprint(df: pd.DataFrame) -> str:
    """A digest of a source's rows and columns: a resumed campaign must get the same input
    (a changed list or query result is refused unless asked for)."""
    digest = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    # Columns of strings without a missing value hash the same without pandas' categorizing
    # (a factorize of a million strings); missing values and other types hash apart there.
    plain = all(
        infer_dtype(col, skipna=False) == "string" and not col.isna().any() for _, col in df.items()
    )
    hashes = pd.util.hash_pandas_object(df, index=False, categorize=not plain)
    digest.update(hashes.to_numpy().tobytes())
    return digest.hexdigest()


def binding_problem(
    campaign_id: str,
    bound: tuple[str, str | None] | None,
    survey_id: str,
    fingerprint: str,
    allow_changed_input: bool,
) -> str | None:
    """Why this run may not resume the campaign (None: it may). A campaign is bound to the
    survey it started with, and to its input unless the operator says the change is meant."""
    if bound is None:
        return None
    bound_survey, bound_input = bound
    if bound_survey != survey_id:
        return (
            f"campaign {campaign_id} was started with survey {bound_survey!r}, not "
            f"{survey_id!r}: use a new campaign id to send another survey"
        )
    if bound_input and bound_input != fingerprint and not allow_changed_input:
        return (
            f"campaign {campaign_id} was started on another input (the recipients changed "
            "since): use a new campaign id, or --resume-changed-input to add the new rows to it"
        )
    return None


def new_campaign_id(survey_id: str, now: datetime) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", survey_id.lower()).strip("-")[:40] or "survey"
    return known_id(f"{stem}-{now.astimezone(PARIS):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}")


# -- pure rules ------------------------------------------------------------------------------


def clean_rows(df: pd.DataFrame, phone_column: str, *, allow_foreign: bool) -> pd.DataFrame:
    """The source's rows with E.164, territory and a reject reason per row (duplicates marked)."""
    cleaned = clean_column(df[phone_column], allow_foreign=allow_foreign)
    rows = df.copy(deep=False)  # copy-on-write: the source's columns are shared, not copied
    rows[ROW] = range(1, len(df) + 1)
    for name, values in zip((E164, TERRITORY, REASON), cleaned, strict=True):
        rows[name] = pd.Series(values, index=df.index, dtype=object)
    rows[DETAIL] = None
    return rows


def apply_suppression(
    rows: pd.DataFrame, reason: str, numbers: Iterable[str], detail: str | None = None
) -> pd.DataFrame:
    """Reject still-accepted rows whose E.164 is in ``numbers``."""
    wanted = set(numbers)
    if not wanted:
        return rows
    hit = rows[REASON].isna() & rows[E164].isin(wanted)
    rows.loc[hit, REASON] = reason
    if detail:
        rows.loc[hit, DETAIL] = detail
    return rows


# Chunks no send can have reached: what they carry may still change before they are sent.
UNSENT = (lg.PENDING, lg.FAILED)
# Chunks whose numbers may have been texted (sent, or a send that may have landed).
MAY_HAVE_TEXTED = (lg.SENT, lg.SENDING, lg.IN_DOUBT)


def withdrawals(
    existing: Sequence[lg.ChunkRow], rows: pd.DataFrame, never: set[str]
) -> dict[str, str]:
    """The numbers to take out of earlier runs' unsent chunks before anything is sent again,
    and why: in the never-text store since they were planned, or no longer in the input the
    campaign is resumed on (whoever was removed from the list is not texted)."""
    unsent = {n for c in existing if c.state in UNSENT for n in c.numbers}
    if not unsent:
        return {}
    present = set(rows[E164].dropna())
    why = {n: lg.NOT_IN_INPUT for n in unsent - present}
    why.update(dict.fromkeys(unsent & never, lg.OPTED_OUT_SINCE))
    return why


def without(existing: Sequence[lg.ChunkRow], why: Mapping[str, str]) -> list[lg.ChunkRow]:
    """The chunks as ``Ledger.withdraw`` leaves them (``why`` taken out of unsent ones)."""
    if not why:
        return list(existing)
    out = []
    for c in existing:
        gone = [n for n in c.numbers if n in why] if c.state in UNSENT else []
        if gone:
            kept = tuple(n for n in c.numbers if n not in why)
            c = replace(c, numbers=kept, refused={**c.refused, **{n: why[n] for n in gone}})
        out.append(c)
    return out


def with_earlier_recipients(rows: pd.DataFrame, existing: Sequence[lg.ChunkRow]) -> pd.DataFrame:
    """The rows, plus one for each number an earlier run of the campaign may have texted that
    this input no longer holds: the report counts everybody the campaign texted across its
    runs, so ``sent`` agrees with the gateway's ``nb_sms``. Such a row has no source cells
    and row number 0."""
    earlier = {n: c.territory for c in existing if c.state in MAY_HAVE_TEXTED for n in c.numbers}
    if not earlier:
        return rows
    present = set(rows[E164].dropna())
    extra = {n: t for n, t in earlier.items() if n not in present}
    if not extra:
        return rows
    added = pd.DataFrame(
        {
            E164: list(extra),
            TERRITORY: list(extra.values()),
            REASON: None,
            DETAIL: "texted by an earlier run; not in this run's input",
        },
        dtype=object,
    )
    added[ROW] = pd.Series(0, index=added.index).astype(rows[ROW].dtype)
    return pd.concat([rows, added], ignore_index=True)


def normalise_list(raw: Iterable[str]) -> set[str]:
    """E.164 of every parsable number of a stop or suppression list."""
    out = set()
    for value in raw:
        e164 = parse_loose(value)
        if e164:
            out.add(e164)
    return out


def plan_chunks(
    accepted: pd.DataFrame,
    decisions: Mapping[str, SlotDecision],
    *,
    chunk_size: int,
    start_index: int = 0,
) -> list[lg.ChunkPlan]:
    """Chunks of at most ``chunk_size`` numbers, one slot per chunk, in source order."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise CampaignError(f"chunk size must be between 1 and {MAX_CHUNK}")
    plan: list[lg.ChunkPlan] = []
    # Chunks never mix territories, so a chunk can be re-planned on its own territory's rules;
    # one territory has one slot, so its rows make one group, groups in order of first row.
    # A row without a territory is its own group (and a KeyError below, as it always was).
    codes, territories = pd.factorize(
        accepted[TERRITORY].to_numpy(dtype=object), use_na_sentinel=False
    )
    numbers = accepted[E164].to_numpy(dtype=object)[np.argsort(codes, kind="stable")]
    ends = np.cumsum(np.bincount(codes, minlength=len(territories)))
    index, begin = start_index, 0
    for territory, end in zip(territories.tolist(), ends.tolist(), strict=True):
        d = decisions[territory]
        slot = None if d.at_once or d.slot is None else d.slot.astimezone(PARIS).isoformat()
        for start in range(begin, end, chunk_size):
            chunk = tuple(numbers[start : min(start + chunk_size, end)].tolist())
            plan.append(lg.ChunkPlan(index, territory, slot, chunk))
            index += 1
        begin = end
    return plan


def batch_chunks(indices: Sequence[int], workers: int, *, most: int = 25) -> list[list[int]]:
    """Group chunks into send tasks, in order, from groups of up to ``most`` down to single
    chunks at the end.

    Each Prefect task run costs a few milliseconds of the flow's CPU and more of the server's,
    as much as the API call it wraps: 2,000 chunks as 2,000 tasks spend it 2,000 times. Groups
    spend it a few hundred times. Groups shrink as the work left shrinks (guided scheduling), so
    the workers finish together instead of waiting on one last large group.
    """
    workers = max(1, workers)
    batches: list[list[int]] = []
    start = 0
    while start < len(indices):
        left = len(indices) - start
        size = max(1, min(most, left // workers))
        batches.append(list(indices[start : start + size]))
        start += size
    return batches


def row_outcomes(
    rows: pd.DataFrame, chunks: Sequence[lg.ChunkRow], *, dry_run: bool
) -> pd.DataFrame:
    """Fill each row's outcome from its reject reason or its chunk's state."""
    # Each number's last word, in ledger order (a later chunk, then its refused and held
    # numbers, overrides): one entry per (chunk numbers | refused | held) group, repeated.
    numbers: list[str] = []
    groups: list[tuple[str, str | None, str | None]] = []
    sizes: list[int] = []
    for c in chunks:
        reason: str | None
        if c.state == lg.SENT:
            outcome, reason = SENT, None
        elif c.state == lg.CANCELLED:  # the operator called it off: nobody failed to send it
            outcome, reason = REJECTED, CAMPAIGN_CANCELLED
        else:
            outcome, reason = FAILED, c.reason or c.state
        numbers.extend(c.numbers)
        groups.append((outcome, reason, c.detail if outcome == FAILED else None))
        sizes.append(len(c.numbers))
        for n, message in c.refused.items():
            numbers.append(n)
            why = OPTED_OUT if message in lg.WITHDRAWN else GATEWAY_REJECTED
            groups.append((REJECTED, why, message))
            sizes.append(1)
        for n, other in c.held.items():
            numbers.append(n)
            groups.append(
                (REJECTED, RECENTLY_SURVEYED, f"held by campaign {other} (frequency cap)")
            )
            sizes.append(1)
    which = np.repeat(np.arange(len(groups)), sizes)
    known = pd.Index(numbers, dtype=object)
    del numbers  # at a million rows every transient list counts in the peak
    if not known.is_unique:  # the hash table is_unique builds serves get_indexer below
        last = ~known.duplicated(keep="last")
        known, which = known[last], which[last]

    reasons = rows[REASON].to_numpy(dtype=object, copy=True)
    details = rows[DETAIL].to_numpy(dtype=object, copy=True)
    accepted = np.array([r is None for r in reasons], dtype=bool)
    found = np.full(len(rows), -1, dtype=np.int64)
    wanted = rows[E164].to_numpy(dtype=object)[accepted]
    if len(known) == len(wanted) and np.array_equal(known.to_numpy(), wanted):
        # One territory, first run: the chunks hold the accepted rows in source order, so no
        # hash lookup of a million strings is needed (checked, not assumed).
        found[accepted] = np.arange(len(wanted))
    elif len(known):
        found[accepted] = known.get_indexer(wanted)
    del known
    in_chunk = found >= 0
    group = which[found[in_chunk]]
    # Outcomes as small codes first, the strings once at the end. A row rejected before
    # planning says REJECTED as a plain str, as numpy's np.full(..., REJECTED) always made it.
    kinds = (str(REJECTED), SENT, FAILED, REJECTED)
    code_of: dict[str, int] = {SENT: 1, FAILED: 2, REJECTED: 3}
    outcome_code = np.zeros(len(rows), dtype=np.int8)
    outcome_code[in_chunk] = np.array([code_of[g[0]] for g in groups], dtype=np.int8)[group]
    for column, values in ((1, reasons), (2, details)):
        per_group = np.empty(len(groups), dtype=object)
        per_group[:] = [g[column] for g in groups]
        values[in_chunk] = per_group[group]
    lost = accepted & ~in_chunk
    if dry_run:
        reasons[lost] = DRY_RUN
    else:  # accepted but in no chunk: cannot happen unless the ledger lost it; say so
        outcome_code[lost] = code_of[FAILED]
        reasons[lost] = NOT_PLANNED
    outcomes = np.array(kinds, dtype=object)[outcome_code]
    rows = rows.copy(deep=False)  # the caller's frame is left as it was
    # As lists: pandas infers the columns' dtypes from lists as it always did here.
    for name, values in ((OUTCOME, outcomes), (REASON, reasons), (DETAIL, details)):
        rows[name] = values.tolist()
    return rows


@dataclass(frozen=True)
class Counts:
    loaded: int
    sent: int
    failed: int
    rejected: dict[str, int]
    failed_reasons: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "sent": self.sent,
            "failed": self.failed,
            "rejected": dict(self.rejected),
            "failed_reasons": dict(self.failed_reasons),
        }


def count_outcomes(rows: pd.DataFrame) -> Counts:
    # One factorize of the outcomes, then counts by code: no comparison of a million strings
    # per outcome.
    codes, names = pd.factorize(rows[OUTCOME].to_numpy(dtype=object), use_na_sentinel=False)
    per = np.bincount(codes, minlength=len(names))
    where = {name: i for i, name in enumerate(names.tolist()) if isinstance(name, str)}
    reasons = rows[REASON].to_numpy(dtype=object)

    def by_reason(outcome: str) -> dict[str, int]:
        if outcome not in where:
            return {}
        return dict(sorted(Counter(reasons[codes == where[outcome]].tolist()).items()))

    counts = Counts(
        loaded=len(rows),
        sent=int(per[where[SENT]]) if SENT in where else 0,
        failed=int(per[where[FAILED]]) if FAILED in where else 0,
        rejected=by_reason(REJECTED),
        failed_reasons=by_reason(FAILED),
    )
    check_identity(counts)
    return counts


def check_identity(counts: Counts) -> None:
    total = counts.sent + counts.failed + sum(counts.rejected.values())
    if total != counts.loaded:
        raise AssertionError(
            f"accounting identity broken: loaded {counts.loaded} != sent {counts.sent} "
            f"+ failed {counts.failed} + rejected {sum(counts.rejected.values())}"
        )


# -- preparation (I/O) -----------------------------------------------------------------------


@dataclass
class Prepared:
    """What the flow needs after preparation: small, serialisable."""

    campaign_id: str
    rows_path: str
    chunk_indices: list[int]
    decisions: dict[str, str] = field(default_factory=dict)  # territory -> explanation
    credits_before: float | None = None  # before the campaign's first run
    credits_now: float | None = None  # when this run started
    currency: str = "EUR"
    dry_run: bool = False
    dry_plan: list[dict[str, Any]] = field(default_factory=list)
    global_limit_is_rate: bool = False
    to_send: int = 0  # recipients in the chunks left to send
    source_columns: list[str] = field(default_factory=list)  # the source's own, for rejects.csv
    approval_reasons: list[str] = field(
        default_factory=list
    )  # why it waits for a yes; nothing written
    money: Money | None = None  # the plan's money check (tasks/money.py); None: not checked


def state_dir(campaign_id: str) -> Path:
    """The campaign's working files (its rows), under the data folder every worker shares."""
    return runtime.state_dir() / campaign_id


def report_dir(campaign_id: str) -> Path:
    """The campaign's reports, under the data folder every worker shares."""
    return runtime.reports_dir() / campaign_id


def save_rows(rows: pd.DataFrame, campaign_id: str, run: str = "") -> str:
    """Write this run's rows (``rows.<run>.pkl``: two runs of one campaign never report each
    other's rows) and publish them as the campaign's latest ``rows.pkl`` (the follow-up's), by a
    hard link where the file system allows it."""
    folder = state_dir(campaign_id)
    latest = folder / "rows.pkl"
    path = folder / f"rows.{run}.pkl" if run else latest
    # Never let a reader see a half-written file: write aside, then rename; and never leave a
    # half-written one behind (it holds people's numbers): a failure removes it.
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    link = latest.with_suffix(f".{os.getpid()}.{threading.get_ident()}.link")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as fh:
            pickle.dump(_packed(rows), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)
        if path != latest:
            try:
                os.link(path, link)
            except OSError:
                shutil.copyfile(path, link)
            os.replace(link, latest)
    except OSError as exc:
        for left in (partial, link):
            left.unlink(missing_ok=True)
        if path != latest:
            path.unlink(missing_ok=True)  # this run's own file: nobody reads it without the run
        raise CampaignError(
            f"cannot write the campaign's rows in {folder} ({exc.strerror or type(exc).__name__})"
            ": nothing was sent; free some space (or fix the folder), then run the campaign again"
        ) from None
    return str(path)


def unwritable(folder: Path) -> str | None:
    """Why a folder the campaign writes to cannot take a file (None: it can). Checked before
    the first send: a report that cannot be written after sending hides what was sent."""
    probe = folder / f".probe.{os.getpid()}.{threading.get_ident()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write to {folder}: {exc.strerror or type(exc).__name__}"
    return None


def drop_run_rows(path: str) -> None:
    """A run's own rows, once reported (``rows.pkl`` keeps the latest for the follow-up)."""
    if Path(path).name != "rows.pkl":
        Path(path).unlink(missing_ok=True)


def load_rows(path: str) -> pd.DataFrame:
    with open(path, "rb") as fh:
        rows = pickle.load(fh)  # noqa: S301 - our own file, written by save_rows
    if isinstance(rows, tuple) and rows[:1] == (_PACKED,):
        rows = _unpacked(*rows[1:])
    assert isinstance(rows, pd.DataFrame)  # a plain frame too (older files, the erasure's)
    return rows


# A million strings cost pickle a memo entry and an opcode each, and as much again to read
# back: a column of distinct texts is written as one string with a separator instead, and a
# column that holds another's very string objects (the E.164 the source already had) as a mask
# on that column, which keeps them one object in memory after loading too.
_PACKED = "rows packed v1"
_SEPARATORS = ("\x00", "\x1f", "\n")
_PROBE = 1000  # values looked at to tell a column of distinct texts from one of repeats


def _packed(rows: pd.DataFrame) -> tuple[Any, ...] | pd.DataFrame:
    """What save_rows pickles: (marker, the other columns as a frame, the column order, the
    packed columns), or the frame itself when nothing is worth packing."""
    if not rows.columns.is_unique:
        return rows
    packed: dict[Any, tuple[Any, ...]] = {}
    texts: dict[Any, np.ndarray] = {}
    for name, column in rows.items():
        if not _object_backed(column.dtype) or len(column) < _PROBE:
            continue
        values = column.to_numpy(dtype=object)
        if (same := _same_as(values, texts)) is not None:
            other, mask = same
            packed[name] = (column.dtype, "same", other, np.packbits(mask), values[~mask])
        elif (text := _joined(values)) is not None:
            packed[name] = (column.dtype, "text", *text)
            texts[name] = values
    if not packed:
        return rows
    return (_PACKED, rows.drop(columns=list(packed)), rows.columns, packed)


def _object_backed(dtype: Any) -> bool:
    """Columns of Python objects: object, and pandas' str dtype kept in Python strings."""
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "python"
    return is_object_dtype(dtype)


def _same_as(values: np.ndarray, texts: Mapping[Any, np.ndarray]) -> tuple[Any, np.ndarray] | None:
    """(a packed column, where ``values`` holds its very objects) when it mostly does."""
    for name, other in texts.items():
        probe = [a is b for a, b in zip(values[:_PROBE], other[:_PROBE], strict=True)]
        if sum(probe) * 2 > _PROBE:
            mask = np.fromiter(map(operator.is_, values, other), dtype=bool, count=len(values))
            return name, mask
    return None


def _joined(values: np.ndarray) -> tuple[str, str] | None:
    """(separator, the values joined by it) for distinct objects that are all exactly str."""
    if len({id(v) for v in values[:_PROBE]}) < _PROBE:
        return None  # repeated objects: one pickle memo entry each, already cheap
    strings = values.tolist()
    if set(map(type, strings)) != {str}:
        return None
    for sep in _SEPARATORS:
        joined = sep.join(strings)
        if joined.count(sep) == len(strings) - 1:  # no value holds the separator
            return sep, joined
    return None


def _unpacked(rest: pd.DataFrame, columns: pd.Index, packed: dict[Any, Any]) -> pd.DataFrame:
    rows = rest.copy(deep=False)
    texts: dict[Any, np.ndarray] = {}
    for name, (dtype, kind, *parts) in packed.items():
        if kind == "text":
            sep, joined = parts
            values = np.empty(len(rest), dtype=object)
            values[:] = joined.split(sep)
            texts[name] = values
        else:
            other, bits, others = parts
            mask = np.unpackbits(bits, count=len(rest)).astype(bool)
            values = np.empty(len(rest), dtype=object)
            values[mask] = texts[other][mask]
            values[~mask] = others
        # The same objects in the column, whichever of the two dtypes it had.
        rows[name] = pd.Series(values, index=rest.index, dtype=dtype, copy=False)
    rows = rows[list(columns)]
    rows.columns = columns
    return rows


def decide_slots(
    territories: Iterable[str],
    now: datetime,
    policy: WindowPolicy,
    *,
    n_chunks: int,
    concurrency: int,
    lead: timedelta,
    margin: timedelta,
    allow_immediate: bool,
    seconds_per_call: float = 2.0,
) -> dict[str, SlotDecision]:
    """One slot decision per territory, with the whole fan-out's duration as margin."""
    fanout = timedelta(seconds=math.ceil(n_chunks / max(1, concurrency)) * seconds_per_call)
    return {
        t: plan_slot(
            now, t, policy, lead=lead, fanout=fanout, margin=margin, allow_immediate=allow_immediate
        )
        for t in sorted(set(territories))
    }


def mark_no_slot(
    rows: pd.DataFrame, decisions: Mapping[str, SlotDecision], among: pd.Series
) -> pd.DataFrame:
    """Reject the rows of ``among`` whose territory has no slot within the horizon."""
    stuck = [t for t, d in decisions.items() if not d.at_once and d.slot is None]
    if stuck:
        hit = among & rows[REASON].isna() & rows[TERRITORY].isin(stuck)
        rows.loc[hit, REASON] = NO_SLOT
        rows.loc[hit, DETAIL] = rows.loc[hit, TERRITORY].map(
            {t: decisions[t].explanation for t in stuck}
        )
    return rows


def recently_texted(
    ledger: lg.Ledger, rows: pd.DataFrame, campaign_id: str, days: int, now: datetime
) -> set[str]:
    if days <= 0:
        return set()
    accepted = rows.loc[rows[REASON].isna(), E164]
    return ledger.recently_texted(
        accepted, since=now - timedelta(days=days), exclude_campaign=campaign_id
    )


__all__ = [
    "DRY_RUN",
    "OPTED_OUT",
    "RECENTLY_SURVEYED",
    "CampaignError",
    "Counts",
    "Prepared",
    "apply_suppression",
    "batch_chunks",
    "check_identity",
    "clean_rows",
    "count_outcomes",
    "decide_slots",
    "load_rows",
    "mark_no_slot",
    "new_campaign_id",
    "normalise_list",
    "plan_chunks",
    "recently_texted",
    "row_outcomes",
    "save_rows",
    "drop_run_rows",
    "validate_campaign_id",
    "with_earlier_recipients",
    "withdrawals",
    "without",
]
