"""French by default, English on demand: numbers, money, dates and places as people write them."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel.numbers import parse_decimal
from hypothesis import given
from hypothesis import strategies as st

from tasks.i18n import (
    CATALOG,
    DEFAULT_LANG,
    LANGS,
    money,
    number,
    plural,
    plural_form,
    territory_name,
    text,
    unit_price,
    when,
)
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
def test_totals_show_two_decimals_rounded_half_up_and_read_back(amount: Decimal) -> None:
    cents = amount.quantize(Decimal("0.01"), ROUND_HALF_UP)
    fr = money(float(amount), "EUR", "fr")
    assert fr.endswith(NBSP + "€") and "." not in fr
    assert len(fr.removesuffix(NBSP + "€").rpartition(",")[2]) == 2  # never "97,245 €"
    assert parse_decimal(fr.removesuffix(NBSP + "€"), locale="fr_FR") == cents
    en = money(float(amount), "EUR", "en")
    assert en.lstrip("-").startswith("€")
    assert parse_decimal(en.replace("€", ""), locale="en_GB") == cents


@given(amounts)
def test_unit_prices_keep_their_fractions_of_a_cent(amount: Decimal) -> None:
    fr = unit_price(float(amount), "EUR", "fr")
    assert parse_decimal(fr.removesuffix(NBSP + "€"), locale="fr_FR") == amount


def test_money_as_the_operator_reads_it() -> None:
    assert money(1234.5, "EUR", "fr") == "1\u202f234,50\u00a0€"
    assert money(1234.5, "EUR", "en") == "€1,234.50"
    assert money(97.245, "EUR", "fr") == "97,25\u00a0€"  # the "97,245 €", as billed
    assert money(2161 * 0.045, "EUR", "fr") == "97,25\u00a0€"  # a float product, rounded once
    assert unit_price(0.045, "EUR", "fr") == "0,045\u00a0€"  # an SMS costs a fraction of a cent
    assert money(None, "EUR", "fr") == "inconnu" and money(None, "EUR", "en") == "unknown"


# --- plurals (CLDR through Babel) -------------------------------------------------------------


def _cldr_form(n: int, lang: str) -> str:
    """The CLDR rule written out for integers: fr one for 0 and 1, many for non-zero millions
    (1 000 000 de lots); en one for 1 only."""
    if lang == "fr":
        return "one" if n in (0, 1) else "many" if n and n % 1_000_000 == 0 else "other"
    return "one" if n == 1 else "other"


PLURAL_KEYS = sorted({k.rsplit(".", 1)[0] for k in CATALOG if k.endswith(".other")})


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(PLURAL_KEYS))
def test_every_count_gets_its_languages_plural_form(n: int, key: str) -> None:
    for lang in LANGS:
        form = _cldr_form(n, lang)
        assert plural_form(n, lang) == form
        expected = CATALOG.get(f"{key}.{form}", CATALOG[f"{key}.other"])[lang]
        others = {f: "x" for _, f, _, _ in string.Formatter().parse(expected) if f and f != "n"}
        assert plural(lang, key, n, **others) == expected.format(n=number(n, lang), **others)


def test_plurals_read_as_french_people_write_them() -> None:
    assert plural("fr", "count.recipients", 0) == "0 destinataire"
    assert plural("fr", "count.chunks_checked", 1) == "1 lot envoyé vérifié"
    assert plural("fr", "count.chunks_checked", 2) == "2 lots envoyés vérifiés"
    assert plural("fr", "end.not_sent", 1) == "1 destinataire non envoyé"
    assert plural("fr", "progress.chunks", 1_000_000) == "1\u202f000\u202f000 de lots"
    assert plural("en", "count.recipients", 0) == "0 recipients"
    assert plural("en", "count.recipients", 1) == "1 recipient"


def test_every_plural_key_has_its_other_form_in_both_languages() -> None:
    for key in CATALOG:
        stem, _, form = key.rpartition(".")
        if form in ("one", "many", "two", "few", "zero"):
            assert f"{stem}.other" in CATALOG, key


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
