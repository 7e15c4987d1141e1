"""Planning, pure: from the cleaned rows of one run to the chunks it sends, and what it costs.

Purpose and scope: campaign ids and the binding of a campaign to its survey and input; the
rows' reject marks (suppression, the frequency cap, no slot); one slot per territory; chunks
and their grouping into send tasks; money and approval applied to the plan (``attempt``); the
``Prepared`` plan the flow carries to the send and the report.

It is NOT where the ledger is read or written, nor the rows file (``tasks/rows_file.py``), nor
the outcomes counted back (``tasks/accounting.py``). It reads no clock (``now`` is passed), no
file, no database: what it needs from the ledger comes in as plain functions (``Lookups``), so
a test plans against a dict. ``tasks/steps/prepare.py`` binds them to the ledger and writes
the result.

Imported by: ``tasks/steps/prepare.py`` (the one caller of ``attempt``), the flows (campaign
ids, ``CampaignError``), the send step (``batch_chunks``), the approval and report steps
(``Prepared``). It imports rules only (money, slots, numbers, the ledger's nouns).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

from tasks import money as mn
from tasks import sample as smp
from tasks.audience import (
    AudiencePlan,
    assign_surveys,
    missing_column,
    quota_column_problem,
)
from tasks.errors import OperatorError, known_id
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.ledger.model import NOT_IN_INPUT, OPTED_OUT_SINCE, ChunkPlan, ChunkRow
from tasks.numbers import clean_column, parse_loose
from tasks.outcomes import (
    NO_SLOT,
    NOT_SAMPLED,
    OPTED_OUT,
    RECENTLY_SURVEYED,
    UNDELIVERABLE,
    ChunkState,
)
from tasks.pressure import CAP, PressureRule, rules_for
from tasks.row_columns import DETAIL, E164, REASON, ROW, RULE, SURVEY, TERRITORY
from tasks.slots import PARIS, SlotDecision, WindowPolicy, plan_slot

MAX_CHUNK = 500  # the gateway's limit per call

_CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")

# Chunks no send can have reached: what they carry may still change before they are sent.
UNSENT = (ChunkState.pending, ChunkState.failed)
# Chunks whose numbers may have been texted (sent, or a send that may have landed).
MAY_HAVE_TEXTED = (ChunkState.sent, ChunkState.sending, ChunkState.in_doubt)
# Chunks nothing is left to send of.
_DONE = (ChunkState.sent, ChunkState.cancelled)


class CampaignError(OperatorError):
    """Bad input or configuration: str() is one line for the operator."""


# -- what a run asks for -----------------------------------------------------------------------


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
    audience: AudiencePlan = AudiencePlan()  # sample, pressure rules, a survey per segment


@dataclass(frozen=True)
class Lookups:
    """What the planner asks the ledger, as plain functions: the prepare step binds them to the
    campaign's ledger, a test to a dict. Each is called at most once per ``attempt``, in the
    order below, and only when the plan needs the answer."""

    # Numbers (E.164) another campaign texted at or after a moment: the frequency cap.
    texted_since: Callable[[Iterable[str], datetime], set[str]]
    # What the gateway charged this campaign per recipient so far (None: nothing yet).
    observed_price: Callable[[], float | None]
    # Per number, how many other campaigns texted it at or after a moment (of one survey when
    # given): the contact-pressure rules and the sample's exclusion. None: ``texted_since``
    # stands in (then only rules of a limit of 1 over all surveys can be applied).
    texted_counts: Callable[[Iterable[str], datetime, str | None], dict[str, int]] | None = None
    # The campaign's recorded draw, if an earlier run made one: its record, and which of the
    # given numbers it drew (a resumed campaign keeps its draw).
    earlier_draw: Callable[[Sequence[str]], tuple[dict[str, Any], set[str]] | None] | None = None


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
    money: mn.Money | None = None  # the plan's money check (tasks/money.py); None: not checked
    sample: dict[str, Any] | None = None  # the draw's record (tasks/sample.py); None: no sample
    surveys: list[str] = field(default_factory=list)  # the survey ids this campaign sends
    first_slot: str | None = None  # the earliest chunk's slot (None: one goes at once, or none)


# -- campaign ids and what binds a campaign ----------------------------------------------------


def validate_campaign_id(campaign_id: str) -> str:
    # fullmatch: with match, "$" also matches before a trailing newline ("id\n" passed and made
    # a folder with a newline in its name).
    if not isinstance(campaign_id, str) or not _CAMPAIGN_ID.fullmatch(campaign_id):
        raise CampaignError(
            "campaign id must be 1-120 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return known_id(campaign_id)


def new_campaign_id(survey_id: str, now: datetime) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", survey_id.lower()).strip("-")[:40] or "survey"
    return known_id(f"{stem}-{now.astimezone(PARIS):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}")


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


# -- the rows and their reject marks -----------------------------------------------------------


def clean_rows(df: pd.DataFrame, phone_column: str, *, allow_foreign: bool) -> pd.DataFrame:
    """The source's rows with E.164, territory and a reject reason per row (duplicates marked)."""
    cleaned = clean_column(df[phone_column], allow_foreign=allow_foreign)
    rows = df.copy(deep=False)  # copy-on-write: the source's columns are shared, not copied
    rows[ROW] = range(1, len(df) + 1)
    for name, values in zip((E164, TERRITORY, REASON), cleaned, strict=True):
        rows[name] = pd.Series(values, index=df.index, dtype=object)
    rows[DETAIL] = None
    return rows


def normalise_list(raw: Iterable[str]) -> set[str]:
    """E.164 of every parsable number of a stop or suppression list."""
    out = set()
    for value in raw:
        e164 = parse_loose(value)
        if e164:
            out.add(e164)
    return out


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


def candidates(rows: pd.DataFrame, existing: Sequence[ChunkRow]) -> np.ndarray:
    """The numbers to look up in the never-text store: this input's accepted ones (E.164, one
    each: duplicates are rejected) and those earlier runs planned but no send can have reached
    yet."""
    fresh = rows[E164].to_numpy(dtype=object)[rows[REASON].isna().to_numpy()]
    unsent = [n for c in existing if c.state in UNSENT for n in c.numbers]
    return np.concatenate([fresh, np.array(unsent, dtype=object)]) if unsent else fresh


# -- earlier runs of the campaign --------------------------------------------------------------


def withdrawals(
    existing: Sequence[ChunkRow], rows: pd.DataFrame, never: set[str]
) -> dict[str, str]:
    """The numbers to take out of earlier runs' unsent chunks before anything is sent again,
    and why: in the never-text store since they were planned, or no longer in the input the
    campaign is resumed on (whoever was removed from the list is not texted)."""
    unsent = {n for c in existing if c.state in UNSENT for n in c.numbers}
    if not unsent:
        return {}
    present = set(rows[E164].dropna())
    why = {n: NOT_IN_INPUT for n in unsent - present}
    why.update(dict.fromkeys(unsent & never, OPTED_OUT_SINCE))
    return why


def without(existing: Sequence[ChunkRow], why: Mapping[str, str]) -> list[ChunkRow]:
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


def with_earlier_recipients(rows: pd.DataFrame, existing: Sequence[ChunkRow]) -> pd.DataFrame:
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


def left_to_send(existing: Sequence[ChunkRow], plan: Sequence[ChunkPlan]) -> int:
    """Recipients in the chunks still to send: earlier runs' unfinished ones and the new plan."""
    unsent = sum(c.size for c in existing if c.state not in _DONE)
    return unsent + sum(len(c.numbers) for c in plan)


# -- slots, chunks and send tasks --------------------------------------------------------------


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


def plan_chunks(
    accepted: pd.DataFrame,
    decisions: Mapping[str, SlotDecision],
    *,
    chunk_size: int,
    start_index: int = 0,
) -> list[ChunkPlan]:
    """Chunks of at most ``chunk_size`` numbers, one slot per chunk, in source order."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise CampaignError(f"chunk size must be between 1 and {MAX_CHUNK}")
    plan: list[ChunkPlan] = []
    # Chunks never mix territories, so a chunk can be re-planned on its own territory's rules;
    # one territory has one slot, so its rows make one group, groups in order of first row.
    # A row without a territory is its own group (and a KeyError below, as it always was).
    # A campaign of several surveys (``SURVEY``) never mixes them in a chunk either.
    surveys = (
        accepted[SURVEY].to_numpy(dtype=object)
        if SURVEY in accepted.columns
        else np.full(len(accepted), None, dtype=object)
    )
    territory_of = accepted[TERRITORY].to_numpy(dtype=object)
    if pd.isna(surveys).all():  # one survey: the territories alone (a million rows, no tuples)
        codes, territories = pd.factorize(territory_of, use_na_sentinel=False)
        keys = [(t, None) for t in territories.tolist()]
    else:
        pairs = pd.Series(list(zip(territory_of.tolist(), surveys.tolist(), strict=True)))
        codes, uniques = pd.factorize(pairs, use_na_sentinel=False)
        keys = list(uniques)
    numbers = accepted[E164].to_numpy(dtype=object)[np.argsort(codes, kind="stable")]
    ends = np.cumsum(np.bincount(codes, minlength=len(keys)))
    index, begin = start_index, 0
    for (territory, survey), end in zip(keys, ends.tolist(), strict=True):
        d = decisions[territory]
        slot = None if d.at_once or d.slot is None else d.slot.astimezone(PARIS).isoformat()
        for start in range(begin, end, chunk_size):
            chunk = tuple(numbers[start : min(start + chunk_size, end)].tolist())
            plan.append(ChunkPlan(index, territory, slot, chunk, survey_id=survey))
            index += 1
        begin = end
    return plan


def campaign_surveys(
    default: str, existing: Sequence[ChunkRow], plan: Sequence[ChunkPlan]
) -> list[str]:
    """The survey ids the campaign sends, its own first (chunks of None send it)."""
    found = dict.fromkeys([default])
    chunks: list[ChunkRow | ChunkPlan] = [*existing, *plan]
    for c in chunks:
        found.setdefault(c.survey_id or default)
    return list(found)


def first_slot(chunks: Sequence[ChunkRow | ChunkPlan]) -> str | None:
    """When the campaign's first SMS leave: the earliest slot, None when a chunk goes at once
    (or there is none)."""
    slots = [c.slot for c in chunks]
    if not slots or any(s is None for s in slots):
        return None
    return min((s for s in slots if s), key=datetime.fromisoformat)


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


class RowsPlan(NamedTuple):
    """The rows with their marks, the new chunks, the slot decisions, and the sample's draw."""

    rows: pd.DataFrame
    plan: list[ChunkPlan]
    decisions: dict[str, SlotDecision]
    sample: dict[str, Any] | None = None  # the draw's record (None: no sample asked)
    new_draw: list[str] | None = None  # numbers drawn now, to record (None: nothing to record)


def plan_rows(
    rows: pd.DataFrame,
    existing: Sequence[ChunkRow],
    never: set[str],
    rules: PlanRules,
    now: datetime,
    texted_since: Callable[[Iterable[str], datetime], set[str]],
    *,
    audience: AudiencePlan | None = None,
    lookups: Lookups | None = None,
    undeliverable: set[str] | frozenset[str] = frozenset(),
    survey_id: str | None = None,
) -> RowsPlan:
    """Suppress, sample and plan the rows that no earlier run of this campaign planned
    (``existing``: its chunks, pseudonyms put back, numbers withdrawn from unsent ones already
    out); ``undeliverable``: those of ``never`` retired for not receiving SMS.

    Suppression is applied here, not before: numbers an earlier run planned keep that run's plan
    and outcome, and which numbers those are is known only from the ledger."""
    audience = audience or AudiencePlan()
    # Someone taken out of the campaign for leaving its input is planned anew if back in it.
    known = {
        n for c in existing for n in (*c.numbers, *c.refused) if c.refused.get(n) != NOT_IN_INPUT
    }
    blocked = never - known
    rows = apply_suppression(rows, UNDELIVERABLE, blocked & set(undeliverable))
    rows = apply_suppression(rows, OPTED_OUT, blocked)
    rows = _with_surveys(rows, audience, survey_id)
    # The rows still to plan: accepted, and in no earlier run's plan (one look-up of a million
    # numbers, narrowed as the steps below reject more).
    fresh = rows[REASON].isna() & ~rows[E164].isin(known)
    counts = _counts_lookup(texted_since, lookups)
    pressure = audience.rules or rules_for(rules.cap_days, ())
    fresh = _apply_pressure(rows, fresh, pressure, now, counts, survey_id)
    sample: dict[str, Any] | None = None
    new_draw: list[str] | None = None
    if audience.sample is not None:
        fresh, sample, new_draw = _apply_sample(rows, fresh, audience, now, counts, lookups)
    territories = rows.loc[fresh, TERRITORY]
    n_chunks = max(1, len(territories) // rules.chunk_size + territories.nunique())
    decisions = decide_slots(
        territories,
        now,
        rules.policy,
        n_chunks=n_chunks,
        concurrency=rules.concurrency,
        lead=rules.lead,
        margin=rules.margin,
        allow_immediate=rules.allow_immediate,
    )
    rows = mark_no_slot(rows, decisions, fresh)
    fresh &= rows[REASON].isna()
    start = max((c.chunk_index for c in existing), default=-1) + 1
    plan = plan_chunks(rows.loc[fresh], decisions, chunk_size=rules.chunk_size, start_index=start)
    return RowsPlan(rows, plan, decisions, sample, new_draw)


def _with_surveys(rows: pd.DataFrame, audience: AudiencePlan, default: str | None) -> pd.DataFrame:
    """Each row's survey (``SURVEY``): from its value in the segment column, or None (the
    campaign's survey). A value without a survey, and no default, stops the plan here."""
    if not audience.survey_by:
        return rows  # no column: every row is the campaign's (a million Nones cost memory)
    column = audience.survey_by
    if why := missing_column([str(c) for c in rows.columns], column, "enquête par segment"):
        raise CampaignError(why)
    # Only the rows that may be texted need a survey (a bad number's segment does not matter).
    live = rows[REASON].isna().to_numpy()
    values = rows[column].to_numpy(dtype=object)
    surveys = assign_surveys(
        values[live].tolist(),
        audience.survey_map,
        default if audience.default_survey else None,
        column,
    )
    out = np.full(len(rows), None, dtype=object)
    out[live] = [None if s == default else s for s in surveys]
    rows[SURVEY] = pd.Series(out, index=rows.index, dtype=object)
    return rows


CountsLookup = Callable[[Iterable[str], datetime, str | None], dict[str, int]]


def _counts_lookup(
    texted_since: Callable[[Iterable[str], datetime], set[str]], lookups: Lookups | None
) -> CountsLookup:
    if lookups is not None and lookups.texted_counts is not None:
        return lookups.texted_counts

    def from_set(numbers: Iterable[str], since: datetime, survey: str | None) -> dict[str, int]:
        if survey is not None:
            raise CampaignError("a contact-pressure rule of one survey needs the ledger's counts")
        return dict.fromkeys(texted_since(numbers, since), 1)

    return from_set


def _apply_pressure(
    rows: pd.DataFrame,
    fresh: pd.Series,
    pressure: Sequence[PressureRule],
    now: datetime,
    counts: CountsLookup,
    survey_id: str | None,
) -> pd.Series:
    """Reject the fresh rows a contact-pressure rule holds back, each under the first rule (in
    the order given) whose limit is reached; ``RULE`` names it for the report."""
    if not pressure or not fresh.any():
        return fresh
    numbers = rows.loc[fresh, E164]
    per_rule: dict[str, dict[str, int]] = {}
    for rule in pressure:
        since = now - timedelta(days=rule.days)
        if not rule.this_survey:
            per_rule[rule.name] = counts(numbers.tolist(), since, None)
            continue
        # "This survey": each row's own survey (a campaign of several surveys asks per survey).
        if survey_id is None:
            raise CampaignError(f"rule {rule.label} needs the campaign's survey id")
        found: dict[str, int] = {}
        surveys = (
            rows.loc[fresh, SURVEY].fillna(survey_id).astype(str)
            if SURVEY in rows.columns
            else pd.Series(survey_id, index=numbers.index)
        )
        for survey, group in numbers.groupby(surveys.to_numpy(), sort=False):
            found.update(counts(group.tolist(), since, str(survey)))
        per_rule[rule.name] = found
    # Each number under the first rule (in order) whose limit it reached: one pass per rule
    # over its counts, not one dict per number (weekly lists are mostly texted recently).
    held: dict[str, str] = {}
    for rule in pressure:
        for number, count in per_rule[rule.name].items():
            if count >= rule.limit:
                held.setdefault(number, rule.name)
    if not held:
        return fresh
    hit = fresh & rows[E164].isin(held)
    by_name = {r.name: r for r in pressure}
    if RULE not in rows.columns:  # only when a rule held someone back
        rows[RULE] = None
    rows.loc[hit, REASON] = RECENTLY_SURVEYED
    rows.loc[hit, RULE] = rows.loc[hit, E164].map(held)
    rows.loc[hit, DETAIL] = rows.loc[hit, RULE].map(lambda name: _pressure_detail(by_name[name]))
    return fresh & ~hit


def _pressure_detail(rule: PressureRule) -> str:
    if rule.name == CAP and rule.limit == 1 and not rule.this_survey:  # the frequency cap
        return f"texted by another campaign within {rule.days} days"
    scope = "of this survey " if rule.this_survey else ""
    return f"rule {rule.label}: {rule.limit} or more other campaigns {scope}within {rule.days} days"


def _apply_sample(
    rows: pd.DataFrame,
    fresh: pd.Series,
    audience: AudiencePlan,
    now: datetime,
    counts: CountsLookup,
    lookups: Lookups | None,
) -> tuple[pd.Series, dict[str, Any], list[str] | None]:
    """Keep the drawn rows of ``fresh``, reject the others as ``not_sampled``. A campaign keeps
    the draw its first run recorded (its rows not drawn then are not drawn now); a first run
    draws among the eligible (nobody surveyed within the exclusion window)."""
    spec = audience.sample
    assert spec is not None
    numbers = rows.loc[fresh, E164]
    earlier = lookups.earlier_draw(numbers.tolist()) if lookups and lookups.earlier_draw else None
    if earlier is not None:
        record, drawn_numbers = earlier
        drawn = fresh & rows[E164].isin(drawn_numbers)
        _not_drawn(
            rows, fresh & ~drawn, f"not drawn in the campaign's sample (seed {record.get('seed')})"
        )
        return drawn, record, None
    quota_by = spec.quota_by or TERRITORY
    if spec.quota_by and (
        why := missing_column([str(c) for c in rows.columns], quota_by, "quotas")
        or quota_column_problem(
            quota_by, rows.loc[fresh, quota_by].tolist(), lambda v: parse_loose(v) is not None
        )
    ):
        raise CampaignError(why)
    spec = replace(spec, quota_by=spec.quota_by or "territory")  # as the record names it
    excluded: set[str] = set()
    if spec.exclude_days > 0 and len(numbers):
        since = now - timedelta(days=spec.exclude_days)
        excluded = {n for n, k in counts(numbers.tolist(), since, None).items() if k > 0}
    cells = rows.loc[fresh, quota_by].fillna("").astype(str).tolist()
    eligible = [n not in excluded for n in numbers.tolist()]
    result = smp.draw(cells, eligible, spec, audience.seed, keys=numbers.tolist())
    chosen = numbers.iloc[result.drawn]
    drawn = fresh & rows[E164].isin(set(chosen.tolist()))
    out_excluded = fresh & ~drawn & rows[E164].isin(excluded)
    _not_drawn(
        rows, out_excluded, f"surveyed within {spec.exclude_days} days: not eligible for the sample"
    )
    _not_drawn(
        rows,
        fresh & ~drawn & ~out_excluded,
        f"not drawn in the campaign's sample (seed {audience.seed})",
    )
    return drawn, dict(result.record), chosen.tolist()


def _not_drawn(rows: pd.DataFrame, hit: pd.Series, detail: str) -> None:
    rows.loc[hit, REASON] = NOT_SAMPLED
    rows.loc[hit, DETAIL] = detail


# -- one attempt at the run's plan: money and approval applied ---------------------------------


@dataclass
class Attempt:
    """One run's plan before it is written: the rows with their marks, the campaign's earlier
    chunks as the ledger will hold them, the new chunks, and what money and approval made of
    them."""

    rows: pd.DataFrame
    existing: list[ChunkRow]
    plan: list[ChunkPlan]
    decisions: dict[str, SlotDecision]
    held: list[str]  # why the plan waits for a person's yes (empty: it does not)
    withdrawn: dict[str, str]  # numbers to take out of earlier runs' unsent chunks, and why
    money: mn.Money
    left_unsent: frozenset[int] = frozenset()  # earlier runs' chunks the money leaves for later
    stopped: bool = False  # short of money: nothing is written, nothing sent
    sample: dict[str, Any] | None = None  # the draw's record (None: no sample asked)
    new_draw: list[str] | None = None  # drawn now: recorded before the plan is written


def attempt(
    rows: pd.DataFrame,
    existing: Sequence[ChunkRow],
    never: set[str],
    request: PlanRequest,
    now: datetime,
    *,
    credits: float | None,
    currency: str | None,
    lookups: Lookups,
    approval: Callable[[int, float], list[str]],
    undeliverable: set[str] | frozenset[str] = frozenset(),
) -> Attempt:
    """The run's plan from the rows, the campaign's earlier chunks (pseudonyms put back) and
    the never-text store's answer for ``candidates``; ``credits`` is the account's balance,
    ``approval`` the reasons a plan of so many recipients at such a cost waits for a yes."""
    withdrawn = withdrawals(existing, rows, never)
    kept = without(existing, withdrawn)
    # pandas 3 copies on write: each attempt changes its own view, never `rows`
    planned, plan, decisions, sample, new_draw = plan_rows(
        rows.copy(deep=False),
        kept,
        never,
        request.rules,
        now,
        lookups.texted_since,
        audience=request.audience,
        lookups=lookups,
        undeliverable=undeliverable,
        survey_id=request.survey_id,
    )
    planned = with_earlier_recipients(planned, kept)
    money = _money(request, kept, plan, credits, currency, lookups.observed_price)
    a = Attempt(planned, kept, plan, decisions, [], withdrawn, money, sample=sample)
    a.new_draw = new_draw
    if money.short and request.send_within_credits:
        a = _within_money(a)
    sending = left_to_send(a.existing, a.plan) - _unsent_size(a)
    if request.thresholds and not request.dry_run:
        a.held = approval(sending, sending * money.price)
    # Short of money with nobody to ask and no choice made, or with nothing the money covers:
    # no send starts. A person asked (a plan held at a threshold) sees the shortfall in the
    # form and chooses.
    chosen = request.send_within_credits and sending > 0
    if money.short and not chosen and not request.dry_run and not a.held:
        a = _stopped(a)
    return a


def _money(
    request: PlanRequest,
    existing: list[ChunkRow],
    plan: list[ChunkPlan],
    credits: float | None,
    currency: str | None,
    observed_price: Callable[[], float | None],
) -> mn.Money:
    """What this run would send against the credits and the cap; a resumed campaign is priced
    at what the gateway charged it, and its earlier runs' spending counts against the cap."""
    observed = observed_price() if existing else None
    return mn.Money(
        recipients=left_to_send(existing, plan),
        price=mn.price_per_recipient(request.cost_per_sms, observed),
        credits=credits,
        max_cost=request.max_cost,
        spent=sum(c.cost or 0.0 for c in existing if c.state == ChunkState.sent),
        currency=currency or "EUR",
    )


def _within_money(a: Attempt) -> Attempt:
    """Only what the money covers, in plan order: earlier runs' chunks whole or not at all (the
    ledger holds them), the new ones cut where the money ends; everybody left out of the new
    ones is rejected with the limit's reason before any send (a rerun plans them again)."""
    unsent = [c for c in a.existing if c.state not in _DONE]
    sizes = [c.size for c in unsent] + [len(c.numbers) for c in a.plan]
    whole = [True] * len(unsent) + [False] * len(a.plan)
    kept = mn.keep(sizes, whole, a.money.covered)
    left_unsent = frozenset(c.chunk_index for c, k in zip(unsent, kept, strict=False) if k == 0)
    plan: list[ChunkPlan] = []
    out: list[str] = []
    for chunk, k in zip(a.plan, kept[len(unsent) :], strict=True):
        out.extend(chunk.numbers[k:])
        if k:
            plan.append(replace(chunk, numbers=chunk.numbers[:k]))
    rows = _not_covered(a.rows, out, a.money)
    return replace(a, rows=rows, plan=plan, left_unsent=left_unsent)


def _stopped(a: Attempt) -> Attempt:
    """Nothing is sent: every recipient the plan held is rejected with the limit's reason (an
    earlier run's chunks keep what the ledger says of them)."""
    out = [n for c in a.plan for n in c.numbers]
    rows = _not_covered(a.rows, out, a.money)
    unsent = frozenset(c.chunk_index for c in a.existing if c.state not in _DONE)
    return replace(a, rows=rows, plan=[], left_unsent=unsent, stopped=True)


def _not_covered(rows: pd.DataFrame, numbers: list[str], money: mn.Money) -> pd.DataFrame:
    if not numbers:
        return rows
    hit = rows[E164].isin(numbers) & rows[REASON].isna()
    limit = "the budget cap" if money.reason == mn.BUDGET_EXCEEDED else "the account's credits"
    rows = rows.copy(deep=False)
    rows.loc[hit, REASON] = money.reason
    rows.loc[hit, DETAIL] = f"not covered by {limit} before any send: not sent"
    return rows


def _unsent_size(a: Attempt) -> int:
    return sum(c.size for c in a.existing if c.chunk_index in a.left_unsent)


def prepared(
    a: Attempt,
    request: PlanRequest,
    *,
    rows_path: str,
    columns: list[str],
    credits: float | None,
    currency: str | None,
    first_credits: float | None,
) -> Prepared:
    """What the flow carries from the plan (``rows_path``: where its rows were written)."""
    dry = request.dry_run or bool(a.held)
    # The chunks left to send: earlier runs' unfinished ones the money covers, then the new.
    unsent = [c for c in a.existing if c.state not in _DONE and c.chunk_index not in a.left_unsent]
    out = Prepared(
        campaign_id=request.campaign_id,
        rows_path=rows_path,
        source_columns=columns,
        chunk_indices=[],
        decisions={t: d.explanation for t, d in a.decisions.items()},
        credits_before=first_credits,
        credits_now=credits,
        currency=currency or "EUR",
        dry_run=dry,
        approval_reasons=a.held,
        to_send=sum(c.size for c in unsent) + sum(len(c.numbers) for c in a.plan),
        money=a.money,
        sample=a.sample,
        surveys=campaign_surveys(request.survey_id, a.existing, a.plan),
        first_slot=first_slot([*unsent, *a.plan]),
    )
    if dry:
        # What would be sent: the chunks planned now and those earlier runs left unsent.
        out.dry_plan = [
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
        return out
    # What is left to send (no need to read every chunk's numbers back from the ledger).
    out.chunk_indices = [c.chunk_index for c in unsent] + [c.chunk_index for c in a.plan]
    return out


__all__ = [
    "MAX_CHUNK",
    "MAY_HAVE_TEXTED",
    "UNSENT",
    "Attempt",
    "CampaignError",
    "Lookups",
    "PlanRequest",
    "PlanRules",
    "Prepared",
    "RowsPlan",
    "apply_suppression",
    "attempt",
    "batch_chunks",
    "binding_problem",
    "campaign_surveys",
    "candidates",
    "clean_rows",
    "decide_slots",
    "first_slot",
    "input_fingerprint",
    "left_to_send",
    "mark_no_slot",
    "new_campaign_id",
    "normalise_list",
    "plan_chunks",
    "plan_rows",
    "prepared",
    "validate_campaign_id",
    "with_earlier_recipients",
    "withdrawals",
    "without",
]
