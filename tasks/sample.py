"""Random samples with quotas: who of a campaign's accepted rows is surveyed (pure).

A survey team asks "400 people of this week's 12,000, at most 150 per territory, nobody surveyed
in the last 6 months". ``draw`` decides it from explicit inputs: each accepted row's quota value
(``cells``), whether it may be drawn at all (``eligible``: False for someone surveyed within the
exclusion window, which the caller reads from the ledger), the ``SampleSpec`` and a seed. It
reads no clock, no file and no global random state: the same inputs and the same seed give the
same draw, on any machine, and the seed itself is chosen by the caller (the command line, or
the flow's own randomness when none is given) and recorded with the draw.

Choices, so that the operator can predict the draw:

- **The percentage's base is the population** (every accepted row, eligible or not): "10 %" of
  12,000 rows asks for 1,200, rounded to the nearest (half up), at least one. Fewer eligible
  people make the draw short, and the record says so.
- **Exact size**: ``k = min(requested, eligible, what the quotas allow)``. When ``k`` is below
  the request, the record has ``short: true`` and ``limited_by`` ("eligible" or "quota").
- **Quota N** ("at most N per value"): a simple random draw among the eligible, walking a seeded
  random order and skipping anyone whose value already has N. A quota without a size is allowed
  and means "everyone eligible, but at most N per value" (a useful weekly cap per agency).
- **Proportional** keeps the population's shares: ``k`` is apportioned to the values by their
  share of the population (largest remainders; ties broken by the seed), a value never given
  more than its eligible people, what it cannot take shared again among the others by the same
  rule. When every value has enough eligible people, each gets its exact share rounded down or
  up. It needs a size (without one everybody eligible is drawn: already proportional).
- **An exclusion window alone** (no size, no quota) draws everyone eligible: those surveyed
  within the window end ``not_sampled``.
- **Order independence**: given ``keys`` (each row's E.164 number), the draw depends on who is
  in the file, not on the order of its rows: rows are first put in the order of their keys,
  then shuffled by the seed. Without keys, the file's order is part of the input.
- **Nobody not eligible is ever drawn**, whatever the size or the quotas.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

import numpy as np

# A seed the JSON summary and the Prefect UI (JavaScript numbers) show exactly.
MAX_SEED = 2**53 - 1
PROPORTIONAL: Literal["proportional"] = "proportional"
_PROPORTIONAL_WORDS = frozenset({"proportional", "proportionnel", "proportionnelle"})
# French writes 12 000 or 12 000 (no-break spaces) and 10,5 %.
_SPACES = re.compile(r"[\s\u00a0\u202f]+")


def parse_size(text: str) -> tuple[int | None, float | None]:
    """A sample's size as typed: a count ``"400"`` -> (400, None), or a percentage ``"10%"``
    (``"10,5 %"`` too) -> (None, 10.0). A count is at least 1; a percentage is in (0, 100]."""
    typed = _SPACES.sub("", str(text))
    if not typed:
        raise ValueError("--sample : indiquez un nombre de personnes (400) ou un pourcentage (10%)")
    if typed.endswith("%"):
        try:
            percent = Decimal(typed[:-1].replace(",", "."))
        except InvalidOperation:
            percent = Decimal("NaN")
        if not percent.is_finite() or not 0 < percent <= 100:
            raise ValueError(
                f"--sample {_shown(text)} : un pourcentage est un nombre supérieur à 0 et "
                "au plus 100, suivi de % (10%)"
            )
        return None, float(percent)
    if not typed.isascii() or not typed.isdigit():
        raise ValueError(
            f"--sample {_shown(text)} : indiquez un nombre entier de personnes (400) "
            "ou un pourcentage (10%)"
        )
    count = int(typed)
    if count < 1:
        raise ValueError(f"--sample {_shown(text)} : un échantillon compte au moins 1 personne")
    return count, None


def parse_quota(text: str) -> int | Literal["proportional"]:
    """A quota as typed: ``"150"`` (at most 150 per value) or ``"proportional"`` (French
    ``proportionnel`` too): keep the population's shares."""
    typed = _SPACES.sub("", str(text))
    if typed.lower() in _PROPORTIONAL_WORDS:
        return PROPORTIONAL
    if typed.isascii() and typed.isdigit() and int(typed) >= 1:
        return int(typed)
    raise ValueError(
        f"--quota {_shown(text)} : indiquez un nombre entier d'au moins 1 (au plus N personnes "
        "par valeur) ou « proportional » (garder les parts de la population)"
    )


def _shown(text: str) -> str:
    """What the operator typed, short enough for a one-line message."""
    one_line = " ".join(str(text).split())
    return repr(one_line if len(one_line) <= 40 else one_line[:39] + "…")


@dataclass(frozen=True)
class SampleSpec:
    """What the campaign asks of its sample (the command line's ``--sample``, ``--quota-by``,
    ``--quota``, ``--sample-exclude-days``, ``--seed``)."""

    size: int | None = None
    percent: float | None = None
    quota_by: str | None = None  # the column; the caller puts "territory" there by default
    quota: int | None = None
    proportional: bool = False
    exclude_days: int = 0
    seed: int | None = None

    @property
    def active(self) -> bool:
        """A size or a percentage was asked for."""
        return self.size is not None or self.percent is not None

    @property
    def applies(self) -> bool:
        """Whether a draw takes place at all: a size, a quota or an exclusion window (without
        any, everyone is texted, as before samples existed)."""
        return self.active or self.quota is not None or self.exclude_days > 0

    def validate(self) -> SampleSpec:
        """The spec itself, or a ValueError in one French line naming the option at fault."""
        if self.size is not None and self.percent is not None:
            raise ValueError("--sample : un nombre ou un pourcentage, pas les deux")
        if self.size is not None and (isinstance(self.size, bool) or self.size < 1):
            raise ValueError("--sample : un échantillon compte au moins 1 personne")
        if self.percent is not None and not 0 < self.percent <= 100:
            raise ValueError("--sample : un pourcentage est supérieur à 0 et au plus 100")
        if self.quota is not None and self.proportional:
            raise ValueError("--quota : un nombre par valeur ou « proportional », pas les deux")
        if self.quota is not None and self.quota < 1:
            raise ValueError("--quota : au moins 1 personne par valeur")
        if self.proportional and not self.active:
            raise ValueError(
                "--quota proportional demande une taille d'échantillon (--sample 400 ou 10%)"
            )
        if self.exclude_days < 0:
            raise ValueError("--sample-exclude-days : un nombre de jours positif ou nul")
        if self.quota_by is not None and not self.quota_by.strip():
            raise ValueError("--quota-by : indiquez le nom d'une colonne du fichier")
        if self.quota_by is not None and not self.applies:
            raise ValueError(
                "--quota-by sans --sample, --quota ni --sample-exclude-days : "
                "indiquez la taille de l'échantillon ou le quota"
            )
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed : un nombre entier de 0 à {MAX_SEED}")
        return self

    @property
    def quota_word(self) -> int | str | None:
        """The quota as the record and the summary show it."""
        return PROPORTIONAL if self.proportional else self.quota


@dataclass(frozen=True)
class Draw:
    """The positions drawn (sorted) and the record kept in the ledger and shown in the summary
    and the report (JSON-able; no phone number in it)."""

    drawn: list[int]
    record: dict[str, Any]

    def not_drawn(self) -> list[int]:
        """The positions left out: they end ``not_sampled``."""
        taken = set(self.drawn)
        return [i for i in range(int(self.record["population"])) if i not in taken]


def requested_size(spec: SampleSpec, population: int) -> int | None:
    """How many people the spec asks for out of ``population`` accepted rows; None: no size
    (everyone eligible, within the quotas). A percentage is rounded half up, at least 1."""
    if spec.size is not None:
        return spec.size
    if spec.percent is None:
        return None
    if population == 0:
        return 0
    exact = Decimal(str(spec.percent)) * population / 100
    return max(1, int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP)))


def draw(
    cells: Sequence[str],
    eligible: Sequence[bool],
    spec: SampleSpec,
    seed: int,
    keys: Sequence[str] | None = None,
) -> Draw:
    """Who is drawn among the accepted rows: position ``i`` is one row, ``cells[i]`` its quota
    value ("" or a label when it has none), ``eligible[i]`` False when it may not be drawn
    (surveyed within the exclusion window). ``keys`` (E.164 numbers) make the draw independent
    of the rows' order. See the module's docstring for the rules."""
    spec.validate()
    n = len(cells)
    if len(eligible) != n or (keys is not None and len(keys) != n):
        raise ValueError("cells, eligible and keys describe the same rows: same lengths")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed : un nombre entier de 0 à {MAX_SEED}")
    labels = [str(c) for c in cells]
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    cell_of = np.fromiter((index[c] for c in labels), dtype=np.int64, count=n)
    ok = np.asarray(eligible, dtype=bool).reshape(-1)
    count = len(names)
    population = np.bincount(cell_of, minlength=count).astype(np.int64)
    available = np.bincount(cell_of[ok], minlength=count).astype(np.int64)

    rng = np.random.default_rng(seed)
    if keys is None:
        canonical = np.arange(n)
    else:  # who, not where: identical rows sort together whatever the file's order
        canonical = np.lexsort((ok, cell_of, np.array([str(k) for k in keys], dtype=str)))
    order = canonical[rng.permutation(n)] if n else canonical
    ties = rng.permutation(count) if count else np.array([], dtype=np.int64)

    requested = requested_size(spec, n)
    cap = available if spec.quota is None else np.minimum(available, spec.quota)
    in_order = order[ok[order]]  # the eligible, in the seeded random order
    cell_seq = cell_of[in_order]
    rank = _rank_within(cell_seq, count)
    if requested is not None and spec.proportional:
        k = min(requested, int(available.sum()))
        target = np.array(apportion(k, population.tolist(), available.tolist(), ties.tolist()))
        chosen = in_order[rank < target[cell_seq]]
    else:
        candidates = in_order[rank < cap[cell_seq]]
        k = len(candidates) if requested is None else min(requested, len(candidates))
        chosen = candidates[:k]
    drawn = sorted(int(i) for i in chosen)
    per_cell = np.bincount(cell_of[chosen], minlength=count) if count else np.array([])

    limited_by = None
    if requested is not None and len(drawn) < requested:
        limited_by = "eligible" if int(available.sum()) < requested else "quota"
    record: dict[str, Any] = {
        "population": n,
        "eligible": int(ok.sum()),
        "drawn": len(drawn),
        "seed": seed,
        "size": requested,
        "percent": spec.percent,
        "quota_by": spec.quota_by,
        "quota": spec.quota_word,
        "exclude_days": spec.exclude_days,
        "short": limited_by is not None,
        "limited_by": limited_by,
        "cells": {
            str(name): {
                "population": int(population[c]),
                "eligible": int(available[c]),
                "drawn": int(per_cell[c]),
            }
            for c, name in enumerate(names)
        },
    }
    return Draw(drawn=drawn, record=record)


def _rank_within(cell_seq: np.ndarray, count: int) -> np.ndarray:
    """For each element, how many of the same cell come before it in the sequence."""
    if not len(cell_seq):
        return np.array([], dtype=np.int64)
    by_cell = np.argsort(cell_seq, kind="stable")
    sizes = np.bincount(cell_seq, minlength=count)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.empty(len(cell_seq), dtype=np.int64)
    rank[by_cell] = np.arange(len(cell_seq)) - starts[cell_seq[by_cell]]
    return rank


def apportion(
    k: int, weights: Sequence[int], caps: Sequence[int], ties: Sequence[int] | None = None
) -> list[int]:
    """``k`` seats shared by ``weights`` with largest remainders, no share above its cap, what
    a capped share cannot take shared again among the others by the same rule (exact integer
    arithmetic). ``ties``: each share's rank when remainders are equal (lower first); the
    shares' order when not given. ``k`` above the caps' total gives every share its cap."""
    size = len(weights)
    rank = list(range(size)) if ties is None else list(ties)
    seats = [0] * size
    open_ = [i for i in range(size) if weights[i] > 0]
    left = min(k, sum(caps[i] for i in open_))
    while left > 0 and open_:
        total = sum(weights[i] for i in open_)
        share = {i: left * weights[i] // total for i in open_}
        spare = left - sum(share.values())
        by_remainder = sorted(open_, key=lambda i: (-(left * weights[i] % total), rank[i]))
        for i in by_remainder[:spare]:
            share[i] += 1
        over = [i for i in open_ if share[i] > caps[i]]
        if not over:
            for i in open_:
                seats[i] = share[i]
            break
        for i in over:  # these take all they can; the rest is shared again
            seats[i] = caps[i]
            left -= caps[i]
        open_ = [i for i in open_ if i not in over]
    return seats


__all__ = [
    "MAX_SEED",
    "PROPORTIONAL",
    "Draw",
    "SampleSpec",
    "apportion",
    "draw",
    "parse_quota",
    "parse_size",
    "requested_size",
]
