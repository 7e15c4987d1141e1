"""Who a campaign asks, pure: a survey per segment of the list, and the audience settings the
planner applies (the sample, the contact-pressure rules, the survey of each row).

A file with a language or service column reaches each person with the right survey, in one
campaign: ``--survey-by langue --survey-map fr=ENQ_FR,en=ENQ_EN`` (``--survey-id`` is then the
default survey, for values the map does not name). A value without a survey and no default is a
clear error before any send.

No I/O, clock, Prefect or database here: the flow's form model (``flows/parameters.py``) turns
itself into an ``AudiencePlan``, and ``tasks/plan.py`` applies it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tasks.errors import OperatorError
from tasks.pressure import PressureRule
from tasks.sample import SampleSpec

_SURVEY_ID = re.compile(r"[^\s,=;]{1,200}")


class AudienceError(OperatorError):
    """An audience setting that cannot be applied: str() is one line for the operator."""


@dataclass(frozen=True)
class AudiencePlan:
    """What the planner applies besides the window and the money."""

    sample: SampleSpec | None = None  # None: everybody eligible is asked
    seed: int = 0  # the draw's seed (the flow picks one when the operator gave none)
    rules: tuple[PressureRule, ...] = ()  # empty: no contact-pressure rule
    survey_by: str | None = None  # the column whose values choose the survey
    survey_map: Mapping[str, str] = field(default_factory=dict)  # value -> survey id
    default_survey: bool = True  # values the map does not name go to the campaign's survey


def key(value: object) -> str:
    """A column value as the map matches it: trimmed, case and accents ignored ("FR " and "fr",
    "Créole" and "creole" are one value)."""
    text = "" if value is None else str(value).strip()
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


def parse_survey_map(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``fr=ENQ_FR,en=ENQ_EN`` (commas or semicolons; a dict is taken as it is) -> value -> survey.
    The value may be blank (``=ENQ_X``: rows with an empty cell)."""
    if text is None:
        return {}
    pairs: list[tuple[str, str]]
    if isinstance(text, Mapping):
        pairs = [(str(k), str(v)) for k, v in text.items()]
    else:
        pairs = []
        for part in re.split(r"[,;\n]", text):
            if not part.strip():
                continue
            value, sep, survey = part.partition("=")
            if not sep:
                raise ValueError(
                    f"correspondance « {part.strip()} » illisible : écrivez VALEUR=ENQUÊTE, "
                    "séparées par des virgules (ex. fr=ENQ_FR,en=ENQ_EN)"
                )
            pairs.append((value, survey))
    out: dict[str, str] = {}
    for value, survey in pairs:
        survey = survey.strip()
        if not _SURVEY_ID.fullmatch(survey):
            raise ValueError(
                f"identifiant d'enquête « {survey} » invalide pour la valeur « {value.strip()} »"
            )
        k = key(value)
        if k in out and out[k] != survey:
            raise ValueError(f"la valeur « {value.strip()} » a deux enquêtes : {out[k]}, {survey}")
        out[k] = survey
    return out


def assign_surveys(
    values: Sequence[object], survey_map: Mapping[str, str], default: str | None, column: str
) -> list[str]:
    """The survey of each row from its value in ``column``; ``default`` for values the map does
    not name (None: such a value is an ``AudienceError`` naming them, before any send)."""
    out: list[str] = []
    missing: dict[str, int] = {}
    for value in values:
        survey = survey_map.get(key(value), default)
        if survey is None:
            shown = "" if value is None else str(value).strip()
            missing[shown] = missing.get(shown, 0) + 1
            survey = ""
        out.append(survey)
    if missing:
        listed = ", ".join(
            f"« {v} » ({n} ligne{'s' if n > 1 else ''})" if v else f"vide ({n})"
            for v, n in sorted(missing.items(), key=lambda kv: -kv[1])[:5]
        )
        more = f" et {len(missing) - 5} autres" if len(missing) > 5 else ""
        raise AudienceError(
            f"colonne « {column} » : aucune enquête pour {listed}{more} ; ajoutez-les à la "
            "correspondance des enquêtes ou donnez une enquête par défaut ; rien n'a été envoyé"
        )
    return out


MAX_QUOTA_VALUES = 200  # a quota column names groups (agencies, services), not people


def quota_column_problem(
    column: str, values: Sequence[object], is_phone: Callable[[object], bool]
) -> str | None:
    """Why ``column`` cannot split a sample (None: it can): quotas are per group, and the draw's
    record, kept in the report and the ledger, lists every value: a column of phone numbers
    (or of one value per person) would put people there."""
    distinct = {("" if v is None else str(v).strip()) for v in values}
    distinct.discard("")
    looked = list(distinct)[:50]
    if looked and sum(1 for v in looked if is_phone(v)) * 2 > len(looked):
        return (
            f"quotas : la colonne « {column} » contient des numéros de téléphone ; choisissez une "
            "colonne de groupes (agence, service...) ; rien n'a été envoyé"
        )
    if len(distinct) > MAX_QUOTA_VALUES:
        return (
            f"quotas : la colonne « {column} » a {len(distinct)} valeurs différentes (au plus "
            f"{MAX_QUOTA_VALUES}) ; choisissez une colonne de groupes (agence, service...) ; rien "
            "n'a été envoyé"
        )
    return None


def missing_column(columns: Sequence[str], wanted: str, what: str) -> str | None:
    """Why ``wanted`` cannot be read from the file's columns (None: it can), in one line."""
    if wanted in columns:
        return None
    shown = ", ".join(f"« {c} »" for c in columns[:8] if not str(c).startswith("_"))
    return f"{what} : la colonne « {wanted} » n'est pas dans le fichier (colonnes : {shown})"


__all__ = [
    "MAX_QUOTA_VALUES",
    "AudienceError",
    "AudiencePlan",
    "assign_surveys",
    "key",
    "missing_column",
    "parse_survey_map",
    "quota_column_problem",
]
