"""Money first: whether the account's credits and the campaign's budget cap cover what it would
send, decided before any send (pure rules; ``tasks/plan.py`` applies them to the plan).

What is counted:

- ``recipients``: those left to send in this run, in plan order (earlier runs' unfinished
  chunks first, then the chunks planned now).
- the price per recipient: what the gateway charged this campaign so far (a resumed campaign
  has learnt it: ``Ledger.observed_prices``), else the estimate (``cost_per_sms``).
- the credits: the account's balance when this run starts. Earlier runs' sends were already
  taken from it, so only this run's cost counts against it. ``None`` means unknown: the credits
  then limit nothing here (the budget cap still does), and at send time the gateway refuses what
  the account cannot pay (its code 11), each such chunk ending ``failed`` for
  ``insufficient_credits``. The gateway always gives a balance today; an unknown one is not a
  reason to stop a campaign.
- the budget cap (``max_cost``): for the whole campaign, so what earlier runs already spent
  counts against it.

Short of money, the campaign sends nothing (``CreditsShort``), unless the operator chose to send
what the money covers: then the recipients are kept in plan order, whole chunks while they fit,
the chunk that does not fit cut to what is left (a chunk of an earlier run, already in the
ledger, is kept whole or not at all), and everybody left out ends ``rejected`` with the reason of
the limit that binds (``insufficient_credits`` or ``budget_exceeded``). What is kept never costs
more than the money, at the price above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tasks import i18n
from tasks.errors import OperatorError
from tasks.i18n import Lang
from tasks.outcomes import BUDGET_EXCEEDED, INSUFFICIENT_CREDITS, Reason

if TYPE_CHECKING:
    from tasks.plan import Prepared

# The ledger's own tolerance when it checks a claim against the cap or the credits
# (``ledger.budget_refusal``): the plan and the claims agree on what fits.
EPSILON = 1e-9


@dataclass(frozen=True)
class Money:
    """What this run would send, against what the money allows."""

    recipients: int  # left to send, in plan order
    price: float  # per recipient
    credits: float | None  # the account's balance now; None: unknown
    max_cost: float | None  # the campaign's budget cap; None: no cap
    spent: float  # what earlier runs of the campaign already spent (against the cap)
    currency: str = "EUR"

    @property
    def cost(self) -> float:
        """The estimated cost of sending to every recipient left."""
        return self.recipients * self.price

    @property
    def budget_left(self) -> float | None:
        return None if self.max_cost is None else self.max_cost - self.spent

    @property
    def available(self) -> float | None:
        """The money this run may spend: the smaller of the credits and the cap's rest."""
        known = [m for m in (self.credits, self.budget_left) if m is not None]
        return min(known) if known else None

    @property
    def covered(self) -> int:
        """How many recipients the money covers (all of them when it is enough)."""
        return covered_by(self.available, self.price, self.recipients)

    @property
    def short(self) -> bool:
        return self.covered < self.recipients

    @property
    def shortfall(self) -> float:
        """What is missing, rounded up to the cent (0 when the money is enough)."""
        available = self.available
        if not self.short or available is None:
            return 0.0
        return math.ceil(round((self.cost - available) * 100, 6)) / 100

    @property
    def reason(self) -> Reason:
        """The limit that binds: the cap when it leaves less than the credits (or as much, as
        the ledger's claims say it), else the credits."""
        left = self.budget_left
        if left is not None and (self.credits is None or left <= self.credits):
            return BUDGET_EXCEEDED
        return INSUFFICIENT_CREDITS


def price_per_recipient(estimate: float, observed: float | None) -> float:
    """The gateway's own price once it has charged the campaign, else the estimate."""
    return estimate if observed is None else observed


def covered_by(money: float | None, price: float, recipients: int) -> int:
    """How many of ``recipients`` cost no more than ``money`` at ``price`` each."""
    if money is None or price <= 0:
        return recipients
    if money < 0:
        return 0
    n = min(recipients, math.floor((money + EPSILON) / price))
    # A float division can be one off either way: settle it on the products themselves.
    while n > 0 and n * price > money + EPSILON:
        n -= 1
    while n < recipients and (n + 1) * price <= money + EPSILON:
        n += 1
    return max(0, n)


def keep(sizes: Sequence[int], whole: Sequence[bool], covered: int) -> list[int]:
    """How many recipients of each chunk to send, in plan order, for at most ``covered`` in
    all: whole chunks while they fit; a chunk that does not fit is cut to what is left, unless
    it must stay whole (an earlier run's chunk, in the ledger), then it is left out and the next
    ones are tried."""
    kept: list[int] = []
    left = covered
    for size, must_stay_whole in zip(sizes, whole, strict=True):
        fits = size <= left
        n = size if fits else (0 if must_stay_whole else left)
        kept.append(n)
        left -= n
    return kept


def short_text(money: Money, lang: Lang) -> str:
    """What is missing, for how many recipients, and how many the money covers."""

    def amount(value: float | None) -> str:
        return i18n.money(value, money.currency, lang)

    return i18n.text(
        lang,
        f"money.short_{_limit(money)}",
        shortfall=amount(money.shortfall),
        n=i18n.plural(lang, "count.recipients", money.recipients),
        credits=amount(money.credits),
        cap=amount(money.max_cost),
        spent=amount(money.spent),
        cost=amount(money.cost),
        covered=i18n.number(money.covered, lang),
    )


def shortfall_line(money: Money, lang: Lang, *, command_line: bool) -> str:
    """The one line that stops a campaign short of money: what is missing, that nothing was
    sent, and what to do (the command line's option, or the form's box)."""
    where = "cli" if command_line else "ui"
    return " ".join(
        (
            short_text(money, lang),
            i18n.text(lang, "money.nothing_sent"),
            i18n.text(lang, f"money.next_{_limit(money)}_{where}"),
        )
    )


def _limit(money: Money) -> str:
    return "budget" if money.reason == BUDGET_EXCEEDED else "credits"


def within_line(money: Money, sending: int, lang: Lang, *, campaign: str) -> str:
    """The log line of a campaign sending what the money covers."""
    return i18n.text(
        lang,
        f"money.within_{_limit(money)}",
        campaign=campaign,
        sending=i18n.plural(lang, "count.recipients", sending),
        n=i18n.number(money.recipients, lang),
        left=i18n.number(money.recipients - sending, lang),
    )


class CreditsShort(OperatorError):
    """The account's credits or the budget cap do not cover the campaign: nothing was sent.

    ``prepared`` is the plan to report (nothing to send; every recipient the money did not
    cover is rejected with the reason); ``approval`` the verdict's record when a person had
    approved the send."""

    def __init__(
        self,
        message: object,
        *,
        summary: dict[str, Any] | None = None,
        prepared: Prepared | None = None,
        approval: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, summary=summary)
        self.prepared = prepared
        self.approval = approval

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with what the report needs
        return (
            _rebuild_short,
            (self.message, self.summary, self.prepared, self.approval),
        )


def _rebuild_short(
    message: str,
    summary: dict[str, Any] | None,
    prepared: Prepared | None,
    approval: dict[str, Any] | None,
) -> CreditsShort:
    return CreditsShort(message, summary=summary, prepared=prepared, approval=approval)
