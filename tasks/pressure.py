"""Contact-pressure rules: how often one person may be surveyed, across the ledger's campaigns
(pure rules: no clock, no database; the ledger and the planner hand in what they read).

A rule has a name, a limit and a window in days: a person already texted by ``limit`` other
campaigns within the last ``days`` days is set aside under that rule. A rule scoped to the survey
(``:survey``) counts only the texts of the survey being sent. The frequency cap
(``--frequency-cap-days N``) is the rule ``cap=1/N`` over every survey of the ledger.

The rules are judged in their order: a person is counted under the first rule they reach, so
each skip is counted once. A chunk's ``held`` map says, for each number set aside, which rule
and which campaign held it (``held_value``; ``split_held`` reads it back, older ledgers' values
being the campaign alone, set aside by the cap).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

CAP = "cap"  # the frequency cap's rule, and what an older ledger's held value means
SURVEY_SCOPE = "survey"
# Neither a rule name ([A-Za-z0-9_-]) nor a campaign id ([A-Za-z0-9._-]) can hold it.
HELD_SEPARATOR = ":"
EXPECTED = (
    "NOM=LIMITE/JOURS ou NOM=LIMITE/JOURS:survey (par exemple cap=1/30 ou survey=2/90:survey)"
)

_RULE = re.compile(r"^([A-Za-z0-9_-]+)=([0-9]+)/([0-9]+)(?::(survey))?$")
MAX_DAYS = 36_500  # a century: past it a window's start is no date at all


@dataclass(frozen=True)
class PressureRule:
    """At most ``limit`` campaigns per person within ``days`` days (of this survey only when
    ``this_survey``)."""

    name: str
    limit: int
    days: int
    this_survey: bool = False

    @property
    def label(self) -> str:
        """The rule as the operator writes it (``cap=1/30``, ``survey=1/180:survey``)."""
        scope = f":{SURVEY_SCOPE}" if self.this_survey else ""
        return f"{self.name}={self.limit}/{self.days}{scope}"

    def since(self, now: datetime) -> datetime:
        """The start of the rule's window at ``now``."""
        return now - timedelta(days=self.days)


def parse_rule(text: str) -> PressureRule:
    """``NAME=LIMIT/DAYS`` (every survey) or ``NAME=LIMIT/DAYS:survey`` (this survey only);
    ValueError with a one-line French message otherwise."""
    found = _RULE.match(text.strip())
    if found is None:
        raise ValueError(f"règle de pression illisible « {_shown(text)} » : attendu {EXPECTED}")
    name, limit, days, scope = found.groups()
    if int(limit) < 1 or not 1 <= int(days) <= MAX_DAYS:
        raise ValueError(
            f"règle de pression « {_shown(text)} » : la limite doit valoir au moins 1 et le "
            f"nombre de jours entre 1 et {MAX_DAYS} (attendu {EXPECTED})"
        )
    return PressureRule(name, int(limit), int(days), this_survey=scope is not None)


def rules_for(cap_days: int, texts: Sequence[str]) -> tuple[PressureRule, ...]:
    """The campaign's rules in judging order: the frequency cap (``cap=1/N`` when ``cap_days``
    is above 0) first, then the written rules. A written rule named ``cap`` takes the cap's
    place (first); two written rules of one name are a ValueError."""
    written = [parse_rule(t) for t in texts]
    names = [r.name for r in written]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(
            f"règle de pression « {twice[0]} » donnée deux fois : chaque règle a son propre nom"
        )
    cap = [r for r in written if r.name == CAP]
    if not cap and cap_days > 0:
        cap = [PressureRule(CAP, 1, cap_days)]
    return (*cap, *(r for r in written if r.name != CAP))


def first_rule_reached(counts: Mapping[str, int], rules: Sequence[PressureRule]) -> str | None:
    """For one person, given how many other campaigns texted them within each rule's window
    (rule name -> count; a missing name counts 0): the first rule whose limit is reached."""
    for rule in rules:
        if counts.get(rule.name, 0) >= rule.limit:
            return rule.name
    return None


@dataclass(frozen=True)
class Text:
    """One text of a person by another campaign, as the ledger recorded it (``survey``: the
    survey sent, None when unknown)."""

    campaign: str
    at: datetime
    survey: str | None


def counts_by_rule(
    texts: Iterable[Text], rules: Sequence[PressureRule], now: datetime, survey: str | None
) -> dict[str, int]:
    """How many distinct other campaigns texted one person within each rule's window, counting
    for a survey-scoped rule only the texts of ``survey``."""
    texts = list(texts)
    counts: dict[str, int] = {}
    for rule in rules:
        counts[rule.name] = len(_within(texts, rule, now, survey))
    return counts


def holder(
    texts: Iterable[Text], rules: Sequence[PressureRule], now: datetime, survey: str | None
) -> tuple[str, str] | None:
    """(rule, campaign) that holds one person, or None when no rule is reached: the first rule
    reached, and among the campaigns it counted the latest to text them (ties: the greatest id,
    so the answer does not depend on the order the database gave)."""
    texts = list(texts)
    rule = first_rule_reached(counts_by_rule(texts, rules, now, survey), rules)
    if rule is None:
        return None
    counted = _within(texts, next(r for r in rules if r.name == rule), now, survey)
    latest = max(counted.items(), key=lambda item: (item[1], item[0]))
    return rule, latest[0]


def held_value(rule: str, campaign: str) -> str:
    """What a chunk's ``held`` map records for a number set aside by ``rule`` for ``campaign``."""
    return f"{rule}{HELD_SEPARATOR}{campaign}"


def split_held(value: str) -> tuple[str, str]:
    """(rule, campaign) of a ``held`` value; an older ledger's value is the campaign alone,
    held by the frequency cap."""
    rule, separator, campaign = value.partition(HELD_SEPARATOR)
    if not separator:
        return CAP, value
    return rule, campaign


def _within(
    texts: Sequence[Text], rule: PressureRule, now: datetime, survey: str | None
) -> dict[str, datetime]:
    """{campaign: its latest text} of the texts the rule counts at ``now``."""
    since = rule.since(now)
    found: dict[str, datetime] = {}
    for t in texts:
        if t.at < since or (rule.this_survey and t.survey != survey):
            continue
        if t.campaign not in found or t.at > found[t.campaign]:
            found[t.campaign] = t.at
    return found


def _shown(text: str) -> str:
    """The operator's text on one line, cut short: the error stays one readable line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 60 else flat[:57] + "..."
