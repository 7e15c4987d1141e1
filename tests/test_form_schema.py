"""The run forms' schemas, without a browser: every field a French title and help text at every
depth, every parameter name kept, the old ways of giving a source and a window still taken, and
the Prefect server's own check refusing what the form refuses (without quoting it)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from flows import parameters as p
from flows.erase_person import erase_person
from flows.follow_up import follow_up_campaign
from flows.purge_personal_data import purge_personal_data
from flows.survey_campaign import send_survey_campaign

FLOWS = [send_survey_campaign, follow_up_campaign, erase_person, purge_personal_data]

SEND_PARAMETERS = {
    "survey_id", "recipients", "campaign_id", "dry_run", "window", "limits", "suppression_list",
    "approve_above_cost", "approve_above_recipients", "approval_timeout_hours", "approval_mode",
    "lang", "resume_changed_input", "api_key_block", "send_within_credits", "audience",
}  # fmt: skip

# A few words that give English away; French shares none of them.
ENGLISH = re.compile(
    r"\b(the|of|and|or|when|empty|default|file|path|survey|chunk|secret block|none|"
    r"sqlalchemy|sondageident|fan-out|in_doubt|af2m_\d+)\b",
    re.I,
)


def schema_of(flow: Any) -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    schema: dict[str, Any] = parameter_schema(flow).model_dump_for_openapi()
    return schema


def fields(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every property the form shows: the parameters, and their models' fields."""
    found = [(name, prop) for name, prop in schema["properties"].items()]
    for model, definition in schema.get("definitions", {}).items():
        found += [(f"{model}.{n}", prop) for n, prop in definition.get("properties", {}).items()]
    return found


def readable(text: str) -> str:
    return re.sub(r"\S*[/:]\S*", " ", text)  # paths and addresses are not prose


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.name)
def test_every_field_has_a_french_title_and_help(flow: Any) -> None:
    for name, prop in fields(schema_of(flow)):
        title, help_text = prop.get("title", ""), prop.get("description", "")
        assert title and help_text, name
        assert title != name.split(".")[-1], f"{name}: its Python name as title"
        assert not ENGLISH.search(readable(title)), (name, title)
        assert not ENGLISH.search(readable(help_text)), (name, help_text)
        for branch in prop.get("anyOf", []):  # the switch's words, and the source kinds
            if "$ref" not in branch:
                assert branch.get("title") and not ENGLISH.search(branch["title"]), (name, branch)
        for choice in prop.get("enum", []):
            assert not re.fullmatch(r"[a-z0-9_]+", choice) or choice in ("fr", "en"), (name, choice)


def test_the_send_form_keeps_every_parameter_in_the_operators_order() -> None:
    schema = schema_of(send_survey_campaign)
    assert set(schema["properties"]) == SEND_PARAMETERS
    order = sorted(schema["properties"], key=lambda n: schema["properties"][n]["position"])
    assert order[:4] == ["survey_id", "recipients", "suppression_list", "audience"]
    # Who is asked: the sample, the pressure rules, the witnesses, a survey per segment.
    audience = list(schema["definitions"]["Audience"]["properties"])
    assert audience == [
        "sample", "quota_by", "quota", "sample_exclude_days", "seed", "pressure_rules",
        "witnesses", "witnesses_only", "survey_by", "survey_map", "default_survey",
    ]  # fmt: skip
    assert order.index("window") < order.index("approve_above_cost") < order.index("limits")
    limits = list(schema["definitions"]["Limits"]["properties"])
    assert limits[:3] == ["max_cost", "cost_per_sms", "frequency_cap_days"]
    titles = [schema["definitions"]["Limits"]["properties"][n]["title"] for n in limits[3:]]
    assert all(t.startswith("Avancé") for t in titles), titles
    # The money stop's line tells the operator to tick this box by its title (tasks/i18n.py).
    assert schema["properties"]["send_within_credits"]["title"] == (
        "Envoyer ce que les crédits permettent"
    )


def test_a_source_of_one_kind_shows_its_own_fields_only() -> None:
    schema = schema_of(send_survey_campaign)
    kinds = [b["$ref"].rsplit("/", 1)[-1] for b in schema["properties"]["recipients"]["anyOf"]]
    assert kinds == ["FileSource", "DatabaseSource", "UrlSource"]
    shown = {k: set(schema["definitions"][k]["properties"]) for k in kinds}
    assert shown["FileSource"] == {"path", "sheet", "phone_column"}
    assert shown["DatabaseSource"] == {"db_url", "query", "credentials_block", "phone_column"}
    assert shown["UrlSource"] == {"url", "sheet", "phone_column"}


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ({"kind": "csv", "path": "data/x.csv"}, p.FileSource),
        ({"path": "data/x.csv"}, p.FileSource),
        ({"kind": "excel", "path": "data/x.xlsx", "sheet": "S"}, p.FileSource),
        ({"kind": "sql", "db_url": "postgresql://u@h/db", "query": "t"}, p.DatabaseSource),
        # the old form's every field, the other kinds' empty
        (p.RecipientSource().model_dump(mode="json"), p.FileSource),
        ({"db_url": "sqlite:///data/x.db", "query": "t"}, p.DatabaseSource),  # the form's own
        ({"url": "https://example.org/liste.csv"}, p.UrlSource),
        (p.RecipientSource(path="data/x.csv"), p.FileSource),
        (
            p.RecipientSource(kind=p.SourceKind.sql, db_url="sqlite:///x.db", query="t"),
            p.DatabaseSource,
        ),
    ],
)
def test_old_and_new_ways_of_giving_the_recipients_still_validate(given: Any, kind: type) -> None:
    from pydantic import TypeAdapter

    source = TypeAdapter(p.Recipients).validate_python(given)
    assert isinstance(source, kind)
    if not isinstance(source, p.UrlSource):
        assert source.plain().sql is (kind is p.DatabaseSource)


def test_the_programmatic_source_keeps_working() -> None:
    assert p.RecipientSource().plain().path == "data/samples/recipients.csv"
    sql = p.RecipientSource(kind="sql", path=None, db_url="postgresql://u@h/db", query="t")
    assert sql.plain().sql and sql.plain().query == "t"
    with pytest.raises(ValidationError) as refused:
        p.RecipientSource(kind="sql", db_url="postgresql://u:Pw1x@h/db", query="t")
    assert "Pw1x" not in str(refused.value)


def test_window_choices_read_french_and_the_old_values_still_work() -> None:
    window = p.DeliveryWindow(preset="af2m_2024")  # the command line's --window af2m_2024
    assert window.preset is p.WindowPreset.af2m_2024
    shown = window.model_dump(mode="json")["preset"]
    assert shown == p.WINDOW_LABELS[p.WindowPreset.af2m_2024]
    assert p.DeliveryWindow(preset=shown).preset is p.WindowPreset.af2m_2024  # what the UI sends
    preset = schema_of(send_survey_campaign)["definitions"]["DeliveryWindow"]["properties"]
    listed, codes = preset["preset"]["anyOf"]
    assert listed["enum"] == list(p.WINDOW_LABELS.values())
    assert codes["enum"] == ["strict", "af2m_2024", "af2m_2026"]
    assert preset["preset"]["default"] == p.WINDOW_LABELS[p.WindowPreset.strict]


# What the form submits (its defaults: labels) and what callers of the deployment sent before
# the form was French (`prefect deployment run ... -p approval_mode=pause`, run_deployment).
FORM_CHOICES = {
    "approval_mode": p.APPROVAL_LABELS[p.ApprovalMode.stop],
    "window": {"preset": p.WINDOW_LABELS[p.WindowPreset.af2m_2026]},
}
OLD_CODES = {"approval_mode": "pause", "window": {"preset": "strict"}}


@pytest.mark.parametrize("given", [FORM_CHOICES, OLD_CODES], ids=["form-labels", "old-codes"])
def test_the_server_takes_the_french_labels_and_the_old_codes(given: dict[str, Any]) -> None:
    """The Prefect server's own check (``validate`` after ``preprocess_schema``) of a
    deployment run's parameters: a script that ran the deployment with the codes still runs."""
    from prefect.utilities.schema_tools.validation import preprocess_schema, validate

    schema = preprocess_schema(schema_of(send_survey_campaign))
    assert validate({"survey_id": "s", **given}, schema, preprocess=False) == []
    said = refusal({"survey_id": "s", "approval_mode": "oui"})
    assert said and "approval_mode" in said  # anything else is still refused


def test_the_form_opens_on_the_french_list_and_never_lists_a_code() -> None:
    """Prefect's form shows a choice's first side for any text value: the French labels; the
    old codes are on a second side only a script needs."""
    schema = schema_of(send_survey_campaign)
    for prop in (
        schema["properties"]["approval_mode"],
        schema["definitions"]["DeliveryWindow"]["properties"]["preset"],
    ):
        listed, codes = prop["anyOf"]
        assert (listed["title"], codes["title"]) == (p.CHOICE_TITLE, p.CODE_TITLE)
        assert listed["type"] == "string" and prop["default"] in listed["enum"]
        assert not any(re.fullmatch(r"[a-z0-9_]+", label) for label in listed["enum"]), listed
    for mode, label in p.APPROVAL_LABELS.items():  # either side gives the same member
        for given in (label, str(mode)):
            assert TypeAdapter(p.ApprovalModeChoice).validate_python(given) is mode


def refusal(parameters: dict[str, Any]) -> str | None:
    """What the Prefect server answers for these parameters (its own validation code)."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    try:
        validate(parameters, schema_of(send_survey_campaign), raise_on_error=True)
    except ValidationError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:S3cretPw@files.example.org/liste.csv",
        "https://files.example.org/liste.csv?X-Amz-Signature=S3cretPw&X-Amz-Credential=a",
        "https://acct.blob.core.windows.net/c/liste.csv?sv=2024&sig=S3cretPw",
        "https://files.example.org/liste.csv?token=S3cretPw",
        "s3://tok:S3cretPw@bucket/liste.csv",
    ],
)
def test_an_address_with_a_password_or_token_is_refused_unquoted(url: str) -> None:
    said = refusal({"survey_id": "s", "recipients": {"url": url}})
    assert said is not None and "S3cretPw" not in said, said
    assert p.FILE_URL_EXPECTED in said
    with pytest.raises(ValidationError) as refused:
        p.UrlSource(url=url)
    assert "S3cretPw" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["https://files.example.org/listes/semaine.csv", "s3://mairie/listes/a.xlsx",
            "gs://b/l.csv", "az://c/l.csv", "https://x.example/l.csv?download=1"],
)  # fmt: skip
def test_a_plain_address_is_taken(url: str) -> None:
    assert refusal({"survey_id": "s", "recipients": {"url": url}}) is None
    assert p.UrlSource(url=url).url == url


def test_a_password_in_a_database_address_is_refused_whatever_the_kind_chosen() -> None:
    """The form's file kind does not show db_url, but a hand-made run could still send one."""
    said = refusal(
        {"survey_id": "s", "recipients": {"path": "data/x.csv", "db_url": "postgresql://u:Pw9@h/d"}}
    )
    assert said is not None and "Pw9" not in said


def test_a_windows_path_says_what_to_do(tmp_path: Any) -> None:
    typed = "C:\\Users\\agent\\Documents\\liste.csv"
    said = refusal({"survey_id": "s", "recipients": {"path": typed}})
    assert said is not None and "data/inbox/" in said and "copiez" in said
    with pytest.raises(ValueError, match="copiez liste.csv") as refused:
        p.confine(typed, tmp_path)
    assert "\n" not in str(refused.value)


def test_the_top_level_switches_read_french_and_still_take_null() -> None:
    """Prefect's form shows an optional parameter as a switch between its two sides: both are
    named in French; a text opens on its box (its form default is "", read as none); the
    server still takes null (a caller passing campaign_id=None)."""
    schema = schema_of(send_survey_campaign)
    for name in ("campaign_id", "suppression_list", "approve_above_cost", "api_key_block"):
        value, none = schema["properties"][name]["anyOf"]
        assert value["title"] and none == {"type": "null", "title": none["title"]}, name
    for name in ("campaign_id", "suppression_list", "api_key_block"):
        assert schema["properties"][name]["default"] == "", name
    assert refusal({"survey_id": "s", "campaign_id": None, "approve_above_cost": None}) is None
    assert refusal({"survey_id": "s", "limits": {"max_cost": None, "global_limit": None}}) is None
    assert "approve_above_cost" in (refusal({"survey_id": "s", "approve_above_cost": -1}) or "")


def test_an_emptied_box_means_none() -> None:
    from pydantic import TypeAdapter

    for kind in (p.CampaignId, p.SuppressionList, p.ApiKeyBlock):
        assert TypeAdapter(kind).validate_python("") is None
        assert TypeAdapter(kind).validate_python("  ") is None


# -- a list given by its address (tasks/recipients/remote.py) -------------------------------------


@pytest.fixture
def served(tmp_path: Any) -> Any:
    """A folder served over http on 127.0.0.1 (remote.py takes plain http there only)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_list_given_by_its_address_is_downloaded_into_the_campaign_folder(
    campaign_env: Any, served: Any
) -> None:
    pytest.importorskip("tasks.recipients.remote")  # written by another change of issue 22
    from helpers import mobiles, write_csv

    from tasks import folders

    folder, base = served
    write_csv(folder / "semaine.csv", mobiles(3))
    state = send_survey_campaign(
        survey_id="s1",
        recipients={"url": f"{base}/semaine.csv"},
        campaign_id="par-adresse-1",
        dry_run=True,
        return_state=True,
    )
    assert state.is_completed(), state.message
    assert state.result()["loaded"] == 3
    kept = folders.state_dir("par-adresse-1") / "download" / "semaine.csv"
    assert kept.is_file()  # with the campaign's working files: purged with them


def test_an_address_that_cannot_be_fetched_ends_the_run_in_one_french_line(
    campaign_env: Any, served: Any
) -> None:
    pytest.importorskip("tasks.recipients.remote")
    _, base = served
    state = send_survey_campaign(
        survey_id="s1", recipients={"url": f"{base}/absente.csv"}, return_state=True
    )
    assert state.is_failed()
    assert state.message and "\n" not in state.message.strip()


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        ({"sample": "dix"}, p.SAMPLE_EXPECTED),
        ({"sample": "10 %%"}, p.SAMPLE_EXPECTED),
        ({"quota": "beaucoup"}, p.QUOTA_EXPECTED),
        ({"pressure_rules": ["trimestre=2/90", "trimestre"]}, p.RULE_EXPECTED),
    ],
)
def test_the_server_refuses_a_mistyped_audience_before_a_run_exists(
    audience: dict[str, Any], expected: str
) -> None:
    said = refusal({"survey_id": "s", "audience": audience})
    assert said is not None and expected in said, said


@pytest.mark.parametrize(
    "audience",
    [
        {"sample": "400", "quota": "150"},
        {"sample": "12\u202f000", "quota": "Proportionnel"},
        {"sample": "10,5 %", "quota": "proportional", "seed": 7},
        {"sample": "", "quota": ""},  # emptied boxes: none
        {"pressure_rules": ["trimestre=2/90", "meme=1/180:survey"]},
        {"survey_by": "langue", "survey_map": "fr=ENQ_FR, en=ENQ_EN"},
    ],
)
def test_the_server_and_the_model_take_what_the_form_explains(audience: dict[str, Any]) -> None:
    assert refusal({"survey_id": "s", "audience": audience}) is None
    p.Audience(**audience).plan(30)
