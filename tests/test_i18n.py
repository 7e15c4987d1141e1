"""French by default, English on demand: numbers, money, dates and places as people write them."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import parse_decimal
from hypothesis import given
from hypothesis import strategies as st

from tasks.i18n import CATALOG, DEFAULT_LANG, LANGS, money, number, territory_name, text, when
from tasks.outcomes import TERRITORIES

NBSP = "\u00a0"
amounts = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=4, allow_nan=False
)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_whole_numbers_group_their_thousands_and_read_back(n: int) -> None:
    fr, en = number(n, "fr"), number(n, "en")
    assert "." not in fr and "," not in fr  # fr groups with a narrow no-break space
    assert int(parse_decimal(fr, locale="fr_FR")) == n
    assert int(parse_decimal(en, locale="en_GB")) == n


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False))
def test_decimals_use_a_decimal_comma_in_french(value: Decimal) -> None:
    fr = number(value, "fr")
    assert "." not in fr
    assert parse_decimal(fr, locale="fr_FR") == value


@given(amounts)
def test_euros_in_french_end_with_the_euro_sign_and_read_back(amount: Decimal) -> None:
    fr = money(float(amount), "EUR", "fr")
    assert fr.endswith(NBSP + "€") and "." not in fr
    assert parse_decimal(fr.removesuffix(NBSP + "€"), locale="fr_FR") == amount
    en = money(float(amount), "EUR", "en")
    assert en.lstrip("-").startswith("€")
    assert parse_decimal(en.replace("€", ""), locale="en_GB") == amount


def test_money_as_the_operator_reads_it() -> None:
    assert money(1234.5, "EUR", "fr") == "1\u202f234,50\u00a0€"
    assert money(1234.5, "EUR", "en") == "€1,234.50"
    assert money(0.045, "EUR", "fr") == "0,045\u00a0€"  # an SMS costs a fraction of a cent
    assert money(None, "EUR", "fr") == "inconnu" and money(None, "EUR", "en") == "unknown"


def test_dates_in_the_recipients_clock_with_its_name() -> None:
    slot = datetime(2025, 1, 7, 9, 0, tzinfo=UTC)  # 10:00 in Paris
    assert when(slot, "Europe/Paris", "fr") == "mardi 7 janvier 10:00 (heure de Paris)"
    assert when(slot, "Europe/Paris", "en") == "Tuesday 7 January 10:00 (Paris time)"
    assert when(slot, "Indian/Reunion", "fr") == "mardi 7 janvier 13:00 (heure de La Réunion)"
    assert when(slot, "Pacific/Marquesas", "fr") == "lundi 6 janvier 23:30 (heure des Marquises)"
    summer = datetime(2025, 7, 1, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert when(summer, "America/Cayenne", "fr") == "mardi 1 juillet 03:00 (heure de Cayenne)"
    with pytest.raises(ValueError):
        when(datetime(2025, 1, 7, 10, 0), "Europe/Paris", "fr")


def test_every_territory_has_a_name_in_both_languages() -> None:
    assert territory_name("FR", "fr") == "France métropolitaine"
    assert territory_name("RE", "fr") == "La Réunion" and territory_name("RE", "en") == "Réunion"
    assert territory_name("GF", "fr") == "Guyane" and territory_name("GF", "en") == "French Guiana"
    for code in TERRITORIES:
        for lang in LANGS:
            assert territory_name(code, lang) not in ("", code)
    assert territory_name("BE", "fr") == "Belgique"  # a foreign mobile (--allow-foreign)
    assert territory_name("unknown", "fr") == "inconnu"
    assert territory_name("??", "fr") == "??"


def test_the_catalog_says_everything_in_both_languages_with_the_same_fields() -> None:
    fields = string.Formatter()
    for key, entry in CATALOG.items():
        assert set(entry) == set(LANGS), key
        names = [{f for _, f, _, _ in fields.parse(entry[lang]) if f} for lang in LANGS]
        assert names[0] == names[1], key
    assert text("fr", "campaign.title", campaign="x") == "Campagne d'enquête x"
    with pytest.raises(ValueError):
        text("de", "campaign.title", campaign="x")  # type: ignore[arg-type]


# --- one home for the language ----------------------------------------------------------------


def _cli_lang() -> str:
    from flows.survey_campaign import parse_args

    return str(parse_args(["--survey-id", "s", "--recipients", "r.csv"]).lang)


def _flow_lang(module: str, flow: str) -> Any:
    import importlib
    import inspect

    fn = getattr(importlib.import_module(module), flow).fn
    return inspect.signature(fn).parameters["lang"].default


def _approval_lang() -> str:
    from tasks.approval import Approval

    return Approval().lang


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(_cli_lang, id="send command line"),
        pytest.param(
            lambda: _flow_lang("flows.survey_campaign", "send_survey_campaign"), id="send form"
        ),
        pytest.param(lambda: _flow_lang("flows.follow_up", "follow_up_campaign"), id="follow-up"),
        pytest.param(_approval_lang, id="approval"),
    ],
)
def test_every_language_default_is_the_one_in_i18n(where: Any) -> None:
    assert where() == DEFAULT_LANG == "fr"  # README: French by default


def test_the_command_lines_offer_exactly_the_languages_of_the_catalog() -> None:
    from flows.survey_campaign import parse_args

    for lang in LANGS:
        assert parse_args(["--survey-id", "s", "--recipients", "r", "--lang", lang]).lang == lang
    with pytest.raises(SystemExit):
        parse_args(["--survey-id", "s", "--recipients", "r", "--lang", "de"])
