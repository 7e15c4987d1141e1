"""What a careless or hostile operator tries at the flow's edge: passwords in URLs, odd campaign
ids, a campaign larger than planned (approval), and how runs are named in the Prefect UI."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
import sqlalchemy as sa
from helpers import (
    cli,
    flow_runs_mentioning,
    logs_of,
    mobiles,
    need_server,
    one_clear_line,
    texted,
    write_csv,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flows.survey_campaign import RecipientSource, send_survey_campaign
from tasks import approval as approve
from tasks import dburl, folders, rows_file
from tasks import plan as pl

PASSWORD = "Sup3rS3cretPw"  # a test value the flow must never store
QUERY_SECRET = "Qu3rySecretPw"


def read_run(run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


# -- database URLs: no credential in what Prefect stores -----------------------------------


@pytest.mark.parametrize(
    ("url", "public", "password", "query"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u@h/db", "pw", {}),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?sslmode=require",
         None, {"password": "pw"}),
        ("mysql+pymysql://root:p%40ss@h:3306/d?PWD=x", "mysql+pymysql://root@h:3306/d", "p@ss",
         {"PWD": "x"}),
        ("postgres://u:pw@h/db", "postgresql://u@h/db", "pw", {}),
        ("sqlite:///data/x.db", "sqlite:///data/x.db", None, {}),
        # a password holding "/", "#" or "?"; keys percent-encoded, in capitals, or unknown
        ("postgresql://u:pa/ss@host/db", "postgresql://u@host/db", "pa/ss", {}),
        ("mysql://u:p#w@h/db", "mysql://u@h/db", "p#w", {}),
        ("postgresql://u:p?w@h/db", "postgresql://u@h/db", "p?w", {}),
        ("postgresql://u@h/db?pass%77ord=x&sslmode=require", "postgresql://u@h/db?sslmode=require",
         None, {"password": "x"}),
        ("postgresql://u@h/db?%70assword=x", "postgresql://u@h/db", None, {"password": "x"}),
        ("postgresql://u@h/db?PASSWORD=x&token=t", "postgresql://u@h/db", None,
         {"PASSWORD": "x", "token": "t"}),
    ],
)  # fmt: skip
def test_split_takes_every_secret_out_and_join_puts_it_back(
    url: str, public: str, password: str | None, query: dict[str, str]
) -> None:
    got, creds = dburl.split(url)
    assert got == public
    assert (creds.password, creds.query) == (password, query)
    again, none = dburl.split(dburl.join(got, creds))
    assert again == public and (none.password, none.query) == (password, query)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_a_password_never_survives_split_nor_mask(password: str) -> None:
    from urllib.parse import quote

    secret = quote(password, safe="")
    url = f"postgresql://reader:{secret}@db.example/crm?sslpassword=zz{secret}"
    public, creds = dburl.split(url)
    assert creds.password == password and creds.query == {"sslpassword": f"zz{password}"}
    assert public == "postgresql://reader@db.example/crm"
    assert dburl.mask(url) == "postgresql://reader:***@db.example/crm?sslpassword=***"


@given(
    password=st.text(min_size=3, max_size=16),
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", max_size=6),
    options=st.lists(st.tuples(st.sampled_from(["sslmode", "charset", "PWD", "token",
                                                "pass%77ord", "odbc_connect"]),
                               st.text(max_size=8)), max_size=3),
)  # fmt: skip
def test_mask_hides_a_password_whatever_it_holds_and_every_option_not_known_safe(
    password: str, user: str, options: list[tuple[str, str]]
) -> None:
    def once(part: str, text: str) -> bool:  # so that finding it in the mask means it leaked
        return "*" not in part and text.find(part) == text.rfind(part)

    query = "&".join(f"{k}={v}" for k, v in options)
    url = f"postgresql://{user}:{password}@db.example/crm" + (f"?{query}" if options else "")
    assume(once(password, url))
    shown = dburl.mask(url)
    assert password not in shown and shown.startswith(f"postgresql://{user}:***")
    for key, value in options:
        if key not in dburl.SAFE_QUERY_KEYS and value and once(value, url):
            assert value not in shown


@pytest.mark.parametrize(
    "url", ["postgresql://u:p@h:notaport/db", "://nothing", "", "postgresql://u:p@h/d\nb"]
)
def test_an_unreadable_url_is_one_line_that_never_echoes_the_password(url: str) -> None:
    with pytest.raises(dburl.DbUrlError) as caught:
        dburl.split(url)
    text = str(caught.value)
    assert "\n" not in text and ":p@" not in text


def test_a_password_typed_into_the_cli_url_reaches_no_flow_run_nor_log(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    need_server("127.0.0.1", 5432, "PostgreSQL")
    table = f"customers_{secrets.token_hex(4)}"
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with engine.begin() as db:
        db.execute(sa.text(f"CREATE TABLE {table} (id int, mobile text)"))
        for i, number in enumerate(mobiles(3, start=7100)):
            db.execute(sa.text(f"INSERT INTO {table} VALUES (:i, :m)"), {"i": i, "m": number})
    try:
        # Trust auth: any password connects, so the run goes through while carrying secrets.
        url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test?password={QUERY_SECRET}"
        done = cli(
            campaign_env, "--survey-id", "s1", "--db-url", url, "--query", table,
            "--campaign-id", f"pw-{table}", **env,
        )  # fmt: skip
    finally:
        with engine.begin() as db:
            db.execute(sa.text(f"DROP TABLE {table}"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["sent"] == 3
    assert PASSWORD not in done.stdout + done.stderr
    for secret in (PASSWORD, QUERY_SECRET):
        assert flow_runs_mentioning(secret) == []
    run = next(r for r in flow_runs_mentioning(f"pw-{table}"))
    assert run.parameters["recipients"]["db_url"] == "postgresql://postgres@127.0.0.1:5432/test"
    shown = logs_of(run.id)
    assert PASSWORD not in shown and QUERY_SECRET not in shown
    for path in (campaign_env / "data").rglob("*"):
        if path.is_file() and path.suffix != ".pkl":
            body = path.read_bytes()
            assert PASSWORD.encode() not in body and QUERY_SECRET.encode() not in body, path


def test_an_unreadable_db_url_is_refused_before_any_flow_run(
    campaign_env: Path, env: dict[str, str]
) -> None:
    url = f"postgresql://u:{PASSWORD}@host:notaport/db"
    done = cli(campaign_env, "--survey-id", "s1", "--db-url", url, "--query", "t", **env)
    one_clear_line(done, "database URL")
    assert done.returncode == 2 and PASSWORD not in done.stderr + done.stdout
    assert flow_runs_mentioning(PASSWORD) == []


def test_a_flow_run_given_a_url_with_a_password_fails_without_echoing_it(
    campaign_env: Path, simulator: Any
) -> None:
    with pytest.raises(Exception) as caught:  # Prefect wraps the validation error
        RecipientSource(kind="sql", path=None, db_url=f"postgresql://u:{PASSWORD}@h/db", query="t")
    assert PASSWORD not in str(caught.value) and "Mot de passe de la base" in str(caught.value)
    state = send_survey_campaign(
        survey_id="s1",
        recipients={"kind": "sql", "db_url": f"postgresql://u@h/db?pwd={PASSWORD}", "query": "t"},
        return_state=True,
    )
    assert state.is_failed()
    assert PASSWORD not in str(state.message)
    assert texted(simulator) == {}


# -- the form's rule: what Prefect may store ---------------------------------------------------
#
# One rule (tasks/dburl.py: PUBLIC_URL_PATTERN) is both the form's JSON-schema pattern, which the
# Prefect server applies before it stores a run, and the flow's own check.

SAFE_KEYS = st.deferred(lambda: st.sampled_from(sorted(dburl.SAFE_QUERY_KEYS)))
SECRET_KEYS = ["password", "passwd", "pwd", "sslpassword", "pass", "secret", "token", "api_key",
               "odbc_connect", "PASSWORD", "Password", "PWD", "SSLMODE"]  # fmt: skip


def flow_schema() -> dict[str, Any]:
    """The send flow's parameter schema, as `prefect deploy` stores it on the deployment."""
    from prefect.utilities.callables import parameter_schema

    schema: dict[str, Any] = parameter_schema(send_survey_campaign).model_dump_for_openapi()
    return schema


def server_refusal(schema: dict[str, Any], parameters: dict[str, Any]) -> str | None:
    """What the Prefect server answers (after "Error creating flow run: ") for these parameters
    on a deployment with enforce_parameter_schema, or None when it would store the run: its own
    validation code, run here."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    try:
        validate(parameters, schema, raise_on_error=True)
    except ValidationError as exc:
        return str(exc)
    return None


SCHEMA = flow_schema()


def url_refused() -> str:
    """The server's whole answer to a refused database URL: it quotes the rule, never the URL."""
    return (
        "Validation failed for field 'recipients'. Failure reason: "
        f"{dburl.PUBLIC_URL_EXPECTED!r} was expected"
    )


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        # the documented shapes, and usual options
        ("postgresql://crm_reader@crm.example.internal/crm", True),
        ("mysql+pymysql://u@h:3306/db?charset=utf8mb4", True),
        ("sqlite:///data/x.sqlite", True),
        ("sqlite://", True),
        ("postgres://reader@db.example:5432/crm?sslmode=require&application_name=survey", True),
        ("postgresql://reader@[::1]:5432/crm", True),
        ("postgresql://reader%40tenant@db.example/crm", True),  # an encoded "@" in the user
        ("postgresql+psycopg://reader@h/crm?options=-c%20search_path%3Dcrm", True),
        ("postgresql://reader@h/crm?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&", True),
        ("mariadb+pymysql://reader@h/db?ssl_ca=/etc/ca.pem&ssl_key=/etc/k.pem", True),
        ("", True),  # no URL (a file source)
        ("  ", True),
        # a password, whatever it holds
        ("postgresql://u:pw@h/db", False),
        ("postgresql://u:pa/ss@host/db", False),
        ("mysql://u:p#w@h/db", False),
        ("postgresql://u:p?w@h/db", False),
        ("postgresql://u:p@ss@h/db", False),
        ("postgresql://u:p%40ss@h/db", False),
        ("postgresql://u:@h/db", False),
        ("postgresql://:pw@h/db", False),
        ("postgresql://u:pw@[::1]:5432/db", False),
        ("postgresql://u/x:pw@h/db", False),
        # SQLAlchemy reads a password ("5432/db?application_name=a") in this one
        ("postgresql://u@h:5432/db?application_name=a@b", False),
        # a query key that is, or may be, a secret: any spelling
        ("postgresql://u@h/db?password=x", False),
        ("postgresql://u@h/db?pass%77ord=x", False),
        ("postgresql://u@h/db?%70assword=x", False),
        ("postgresql://u@h/db?PassWord=x", False),
        ("postgresql://u@h/db?pass+word=x", False),
        ("postgresql://u@h/db?sslmode=require&sslpassword=x", False),
        ("postgresql://u@h/db?sslmode=x&password", False),
        ("mssql+pyodbc://u@h/db?odbc_connect=DRIVER%3Dx%3BPWD%3Dsecret", False),
        ("postgresql://u@h/db?token=x", False),
        ("postgresql://u@h/db?sslmodepassword=x", False),
        ("postgresql://u@h/db?=x", False),
        # not a URL, or one that reads differently to different readers
        ("u:pw@h/db", False),
        ("host=h user=u password=pw", False),
        ("postgresql://u@h/db#frag", False),
        ("postgresql://u@h/db\n?password=x", False),
        ("postgresql://u@h/d\tb", False),
    ],
)
def test_the_form_stores_a_database_url_only_without_a_secret(url: str, stored: bool) -> None:
    from sqlalchemy.engine import make_url

    said = server_refusal(SCHEMA, {"survey_id": "s", "recipients": {"kind": "sql", "db_url": url}})
    assert (said is None) is stored
    if said is not None:
        assert said == url_refused()
    assert dburl.is_public(url) is stored
    if stored and url.strip():
        parsed = make_url(url.strip())
        assert parsed.password is None and set(parsed.query) <= dburl.SAFE_QUERY_KEYS


def percent_encoded(draw: Any, text: str) -> str:
    """text with some of its characters percent-encoded (as a careless or hostile hand would)."""
    mask = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(f"%{ord(c):02X}" if m and ord(c) < 128 else c for c, m in zip(text, mask))


@st.composite
def db_urls(draw: Any) -> tuple[str, str | None, list[str]]:
    """(a URL, the password typed in it or None, its query keys as typed), from many shapes."""
    schemes = ["postgresql", "postgres", "postgresql+psycopg", "mysql", "mysql+pymysql",
               "mariadb", "sqlite", "mssql+pyodbc"]  # fmt: skip
    scheme = draw(st.sampled_from(schemes))
    user = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.-%40", max_size=8))
    # "Pw" marks a password, so a test can tell it from the rest; an empty one counts too
    password = draw(st.none() | st.just("") | st.text(max_size=12).map(lambda t: "Pw" + t))
    if password is not None and draw(st.booleans()):
        password = quote(password, safe="")
    host = draw(st.sampled_from(["", "h", "db.example", "127.0.0.1", "[::1]"]))
    port = draw(st.sampled_from(["", ":5432", ":3306"]))
    database = draw(st.sampled_from(["", "/", "/crm", "/data/x.sqlite"]))
    keys = draw(st.lists(SAFE_KEYS | st.sampled_from(SECRET_KEYS)
                         | st.text(max_size=6), max_size=3))  # fmt: skip
    keys = [percent_encoded(draw, k) if draw(st.booleans()) else k for k in keys]
    values = [draw(st.text(max_size=8)) for _ in keys]
    userinfo = ""
    if password is not None:
        userinfo = f"{user}:{password}@"
    elif user or draw(st.booleans()):
        userinfo = f"{user}@"
    query = "&".join(f"{k}={v}" for k, v in zip(keys, values))
    url = f"{scheme}://{userinfo}{host}{port}{database}" + (f"?{query}" if keys else "")
    return url, password, keys


@given(db_urls())
def test_no_url_the_form_accepts_holds_a_password_or_an_unknown_option(
    case: tuple[str, str | None, list[str]],
) -> None:
    from sqlalchemy.engine import make_url

    url, password, keys = case
    if password is not None:  # "user:...@": a password, whatever its characters
        assert not dburl.is_public(url)
    if any(k not in dburl.SAFE_QUERY_KEYS for k in keys):
        assert not dburl.is_public(url)
    if dburl.is_public(url):
        try:
            parsed = make_url(url.strip())
        except Exception:  # unreadable: the flow refuses it, nothing is in it
            return
        assert parsed.password is None and set(parsed.query) <= dburl.SAFE_QUERY_KEYS


@given(
    user=st.text(max_size=8),
    host=st.sampled_from(["h", "db.example", "127.0.0.1"]),
    database=st.text(max_size=10),
    options=st.dictionaries(SAFE_KEYS, st.text(max_size=10), max_size=3),
)
def test_a_url_without_a_password_and_with_usual_options_is_stored(
    user: str, host: str, database: str, options: dict[str, str]
) -> None:
    from urllib.parse import quote_plus

    url = f"postgresql://{quote(user, safe='')}@{host}/{quote(database, safe='')}"
    if options:
        url += "?" + "&".join(f"{k}={quote_plus(v)}" for k, v in options.items())
    assert dburl.is_public(url)


@given(db_urls() | st.tuples(st.text(max_size=40), st.none(), st.just([])))
def test_what_split_keeps_passes_the_form(case: tuple[str, str | None, list[str]]) -> None:
    """A command-line run's URL, once split, is one the form would take: its secrets (the
    password, any option not known to be safe) travel through the process only."""
    url = case[0]
    try:
        public, _ = dburl.split(url)
    except dburl.DbUrlError as exc:
        assert "\n" not in str(exc) and not (case[1] and case[1] in str(exc))
        return
    assert dburl.is_public(public)
    assert not (case[1] and case[1] in public)


@settings(deadline=None)  # Prefect's validation prepares the schema on each call
@given(db_urls() | st.tuples(st.text(max_size=40), st.none(), st.just([])))
def test_the_server_and_the_flow_refuse_the_same_urls_and_neither_quotes_them(
    case: tuple[str, str | None, list[str]],
) -> None:
    from pydantic import ValidationError

    url, password, _ = case
    said = server_refusal(SCHEMA, {"survey_id": "s", "recipients": {"kind": "sql", "db_url": url}})
    assert (said is None) is dburl.is_public(url)
    try:
        RecipientSource(kind="sql", db_url=url, query="t")
        flow_refused = None
    except ValidationError as exc:
        flow_refused = str(exc)
    if said is not None:
        assert said == url_refused()  # the answer quotes the rule, never the URL
        assert flow_refused is not None and "Mot de passe de la base" in flow_refused
        if password:
            assert password not in flow_refused
    elif flow_refused is not None:  # the flow refuses more only what it cannot read
        with pytest.raises(dburl.DbUrlError):
            dburl.split(url)


@pytest.mark.parametrize(
    "value", [{"password": PASSWORD}, [f"postgresql://u:{PASSWORD}@h/db"], 12, True]
)
def test_a_db_url_of_another_type_is_refused_without_being_quoted(value: Any) -> None:
    said = server_refusal(SCHEMA, {"survey_id": "s", "recipients": {"db_url": value}})
    assert said == url_refused()


# -- paths typed into a form: confined to the data folder ---------------------------------------


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone's root as a worker's current directory, with data/ and a file beside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "samples").mkdir(parents=True)
    (tmp_path / "data" / "e2e").mkdir()
    (tmp_path / "data" / "samples" / "recipients.csv").write_text("phone\n")
    (tmp_path / "data" / "e2e" / "x.csv").write_text("phone\n")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "datax").mkdir()
    (tmp_path / "datax" / "y.csv").write_text("")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (tmp_path / "data" / "out").symlink_to(outside)
    (tmp_path / "data" / "outdir").symlink_to(tmp_path)
    (tmp_path / "data" / "in").symlink_to(tmp_path / "data" / "e2e" / "x.csv")
    (tmp_path / "data" / "loop").symlink_to(tmp_path / "data" / "loop")
    return tmp_path


@pytest.mark.parametrize(
    ("typed", "inside"),
    [
        ("data/samples/recipients.csv", "data/samples/recipients.csv"),
        ("data/e2e/x.csv", "data/e2e/x.csv"),
        ("./data/e2e/x.csv", "data/e2e/x.csv"),
        ("data/e2e/../samples/recipients.csv", "data/samples/recipients.csv"),
        ("data/not-yet.csv", "data/not-yet.csv"),  # whether it exists is the loader's business
        ("data/in", "data/e2e/x.csv"),  # a symlink that stays inside
        ("../x", None),
        ("../../../etc/passwd", None),
        ("/etc/passwd", None),
        ("data/../pyproject.toml", None),
        ("pyproject.toml", None),
        ("datax/y.csv", None),  # a sibling whose name starts like the folder's
        ("data", None),
        ("data/", None),
        (".", None),
        ("", None),
        ("data/out", None),  # a symlink under data/ pointing outside
        ("data/outdir/pyproject.toml", None),
        ("data/outdir/data/e2e/x.csv", "data/e2e/x.csv"),  # out and back in: it is inside
        ("data/loop", None),
        ("data/x\x00.csv", None),
        ("data/x\n.csv", None),
        ("~/data/e2e/x.csv", None),
    ],
)
def test_confine_keeps_a_typed_path_inside_the_data_folder(
    data_folder: Path, typed: str, inside: str | None
) -> None:
    from flows.parameters import confine

    for root in (Path("data"), data_folder / "data"):
        if inside is not None:
            assert confine(typed, root) == str((data_folder / inside).resolve())
            continue
        with pytest.raises(ValueError) as caught:
            confine(typed, root)
        said = str(caught.value)
        assert "\n" not in said and repr(typed) in said and "hors du dossier data" in said
        assert str(data_folder) not in said  # nothing but what was typed


SEGMENTS = ["data", "e2e", "samples", "..", ".", "x.csv", "out", "outdir", "in", "nope"]


@settings(deadline=None)  # a folder and symlinks made per example
@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6), st.booleans())
def test_confine_agrees_with_the_real_path_of_any_path(parts: list[str], absolute: bool) -> None:
    import os
    import tempfile

    from flows.parameters import confine

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        (root / "data" / "e2e").mkdir(parents=True)
        (root / "data" / "samples").mkdir()
        (root / "data" / "e2e" / "x.csv").write_text("")
        (root / "data" / "out").symlink_to(root / "x.csv")
        (root / "data" / "outdir").symlink_to(root)
        (root / "data" / "in").symlink_to(root / "data" / "e2e")
        typed = ("/" if absolute else "") + "/".join(parts)
        here = os.getcwd()
        os.chdir(root)
        try:
            real = os.path.realpath(typed)
            # Or written from the data folder itself, when nothing of that name is at the root
            # and the file is there (how the inbox hands over a file).
            in_data = os.path.realpath(os.path.join(root / "data", typed))
            data = str(root / "data") + os.sep
            expected = (
                real
                if real.startswith(data)
                else in_data
                if in_data.startswith(data) and os.path.isfile(in_data) and not os.path.exists(real)
                else None
            )
            try:
                got: str | None = confine(typed, Path("data"))
            except ValueError:
                got = None
        finally:
            os.chdir(here)
        assert got == expected


@pytest.mark.parametrize(
    ("path", "stored"),
    [
        ("data/samples/recipients.csv", True),
        ("data/e2e/x.csv", True),
        ("./data/x.csv", True),
        ("data/..x/y.csv", True),
        ("data/x..csv", True),
        ("pyproject.toml", True),  # relative, no "..": the flow's confine refuses it at run time
        ("../x", False),
        ("..", False),
        ("data/..", False),
        ("data/../pyproject.toml", False),
        ("data/../../x", False),
        ("data\\..\\x", False),
        ("/etc/passwd", False),
        ("\\etc\\passwd", False),
        ("~/x.csv", False),
        ("C:/x.csv", False),
        ("data/x\n.csv", False),
        ("data/x\n/../../y", False),
    ],
)
def test_the_server_refuses_absolute_paths_and_dotdot_in_the_forms_file_fields(
    path: str, stored: bool
) -> None:
    from flows.parameters import FORM_PATH_EXPECTED

    refused = f"Failure reason: {FORM_PATH_EXPECTED!r} was expected"
    for params, field in (
        ({"recipients": {"kind": "csv", "path": path}}, "recipients"),
        ({"suppression_list": path}, "suppression_list"),
    ):
        said = server_refusal(SCHEMA, {"survey_id": "s", **params})
        if stored:
            assert said is None
        else:
            assert said == f"Validation failed for field {field!r}. {refused}"


# -- campaign ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["abc\n", "abc\r\n", "", " ", "-abc", "a/b", "x" * 121, "é"])
def test_campaign_ids_that_would_make_odd_folders_are_refused(bad: str) -> None:
    with pytest.raises(pl.CampaignError):
        pl.validate_campaign_id(bad)


@pytest.mark.parametrize("good", ["a", "Q4-2026_survey.1", "x" * 120])
def test_plain_campaign_ids_are_kept(good: str) -> None:
    assert pl.validate_campaign_id(good) == good


def test_an_empty_campaign_id_on_the_command_line_is_an_error_not_a_new_campaign(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    path = write_csv(campaign_env / "r.csv", mobiles(2, start=7200))
    for bad in ("", "abc\n"):
        done = cli(campaign_env, "--survey-id", "s1", "--recipients", str(path),
                   "--campaign-id", bad, **env)  # fmt: skip
        one_clear_line(done, "campaign id")
    assert texted(simulator) == {}
    assert not (campaign_env / "data" / "state").exists() or not any(
        "\n" in p.name for p in (campaign_env / "data" / "state").iterdir()
    )


# -- names and tags --------------------------------------------------------------------------


def test_a_campaign_run_is_named_and_tagged_after_its_campaign(
    campaign_env: Path, simulator: Any
) -> None:
    path = write_csv(campaign_env / "r.csv", mobiles(2, start=7300))
    state = send_survey_campaign(
        survey_id="s1", recipients=RecipientSource(path=str(path)), campaign_id="named-1",
        return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state.message
    run = read_run(state.state_details.flow_run_id)
    assert run.name == "named-1"
    assert "campaign:named-1" in run.tags


# -- approval ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "cost", "above_cost", "above_recipients", "why"),
    [
        (10, 0.45, None, None, 0),
        (10, 0.45, 0.45, 10, 0),  # at the threshold: no question
        (11, 0.50, 0.45, None, 1),
        (11, 0.40, None, 10, 1),
        (11, 0.50, 0.45, 10, 2),
        (0, 0.0, 0.0, 0, 0),
    ],
)
def test_approval_is_asked_only_above_a_threshold(
    recipients: int, cost: float, above_cost: float | None, above_recipients: int | None, why: int
) -> None:
    assert len(approve.reasons(recipients, cost, above_cost, above_recipients)) == why


def test_the_command_line_stops_above_a_threshold_unless_yes(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    path = write_csv(campaign_env / "r.csv", mobiles(5, start=7400))
    args = ("--survey-id", "s1", "--recipients", str(path), "--campaign-id", "big-1")
    done = cli(campaign_env, *args, "--approve-above-recipients", "4", **env)
    one_clear_line(done, "Accord nécessaire", "5 destinataires, au-delà de 4", "--yes")
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["approval"]["decision"] == "stopped"
    assert summary["rejected"].get("dry_run") == 5 and summary["sent"] == 0
    assert texted(simulator) == {}
    done = cli(campaign_env, *args, "--approve-above-cost", "0.01", "--yes", **env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["sent"] == 5
    assert sum(texted(simulator).values()) == 5


@pytest.fixture
def paused_campaign(campaign_env: Path, simulator: Any) -> Iterator[dict[str, Any]]:
    """A campaign started in a thread that pauses for approval; yields its run id and state."""
    path = write_csv(campaign_env / "r.csv", mobiles(4, start=7500))
    out: dict[str, Any] = {}

    def start() -> None:
        out["state"] = send_survey_campaign(
            survey_id="s1", recipients=RecipientSource(path=str(path)), campaign_id="paused-1",
            approve_above_recipients=3, return_state=True,
        )  # fmt: skip

    worker = threading.Thread(target=start, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = flow_runs_mentioning("paused-1")
        paused = [r for r in runs if r.state and r.state.is_paused()]
        if paused:
            out["run_id"] = paused[0].id
            break
        time.sleep(0.5)
    assert "run_id" in out, "the run never paused for approval"
    out["thread"] = worker
    yield out
    worker.join(timeout=5)


def test_a_paused_campaign_sends_nothing_until_approved_then_sends(
    paused_campaign: dict[str, Any], simulator: Any
) -> None:
    from prefect.flow_runs import resume_flow_run

    time.sleep(1)
    assert texted(simulator) == {}  # paused: nothing has left
    resume_flow_run(paused_campaign["run_id"], run_input={"decision": "Envoyer", "comment": "ok"})
    paused_campaign["thread"].join(timeout=60)
    state = paused_campaign["state"]
    assert state.is_completed(), state.message
    assert state.result()["approval"] == {
        "decision": "approved", "reasons": ["4 recipients above 3"], "comment": "ok",
    }  # fmt: skip
    assert sum(texted(simulator).values()) == 4


def test_a_refused_campaign_sends_nothing_and_ends_in_its_own_state(
    paused_campaign: dict[str, Any], simulator: Any
) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(
        paused_campaign["run_id"],
        run_input={"decision": "Refuser (rien n'est envoyé)", "comment": "trop cher 0612345678"},
    )
    paused_campaign["thread"].join(timeout=60)
    state = paused_campaign["state"]
    assert state.is_cancelled() and state.name == "Refusée"
    assert "Campagne refusée" in state.message and "rien n'a été envoyé" in state.message
    assert "0612345678" not in state.message  # a number typed in the comment is masked
    assert texted(simulator) == {}


# -- numbers in error texts ------------------------------------------------------------------


def test_an_unexpected_error_quoting_a_number_leaves_a_task_masked() -> None:
    from tasks.steps import MaskedError, masked_errors

    @masked_errors
    def choke(value: str) -> None:
        raise ValueError(f'invalid input syntax for type bigint: "{value}"')

    with pytest.raises(MaskedError) as caught:
        choke("06 12 34 50 12")
    assert "06 12 34 50 12" not in str(caught.value) and "bigint" in str(caught.value)
    with pytest.raises(KeyError):  # nothing to mask: the error is left as it was
        masked_errors(lambda: {}["missing"])()


def test_a_database_error_quoting_a_number_reaches_no_state_nor_log(
    campaign_env: Path, simulator: Any
) -> None:
    need_server("127.0.0.1", 5432, "PostgreSQL")
    query = "SELECT CAST(mobile AS bigint) AS mobile FROM (SELECT '06 12 34 50 12' AS mobile) AS t"
    state = send_survey_campaign(
        survey_id="s1",
        recipients=RecipientSource(
            kind="sql", path=None, db_url="postgresql://postgres@127.0.0.1:5432/test", query=query
        ),
        campaign_id="db-error-1",
        return_state=True,
    )
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    said = str(state.message) + logs_of(run_id)
    assert "06 12 34 50 12" not in said and "0612345012" not in said
    assert texted(simulator) == {}


# -- unusable state: one line, before any send ------------------------------------------------


@pytest.mark.parametrize("ledger", ["corrupt", "notaurl", "foo://x/y", "under-a-file", "secret"])
def test_an_unusable_ledger_is_one_line_without_its_password(tmp_path: Path, ledger: str) -> None:
    from tasks import ledger as lg
    from tasks.sending import shared_ledger

    (tmp_path / "bad.sqlite").write_bytes(b"this is not a database" * 100)
    (tmp_path / "plain-file").write_text("x")
    url = {
        "corrupt": f"sqlite:///{tmp_path}/bad.sqlite",
        "under-a-file": f"sqlite:///{tmp_path}/plain-file/ledger.sqlite",
        "secret": f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/db",
    }.get(ledger, ledger)
    with pytest.raises(lg.LedgerUnavailable) as caught:
        shared_ledger(url, outage=0.5).campaign_exists("x")
    text = str(caught.value)
    assert "\n" not in text and "ledger" in text and PASSWORD not in text


def test_a_corrupt_ledger_on_the_command_line_is_one_clear_line(
    campaign_env: Path, env: dict[str, str], simulator: Any
) -> None:
    (campaign_env / "bad.sqlite").write_bytes(b"this is not a database" * 100)
    path = write_csv(campaign_env / "r.csv", mobiles(2, start=7600))
    done = cli(campaign_env, "--survey-id", "s1", "--recipients", str(path),
               **{**env, "SURVEY_LEDGER_URL": f"sqlite:///{campaign_env}/bad.sqlite"})  # fmt: skip
    one_clear_line(done, "ledger", "not a database")
    assert texted(simulator) == {}


@pytest.mark.parametrize("blocked", ["data/reports", "data/state"])
def test_a_folder_that_cannot_be_written_stops_the_campaign_before_any_send(
    campaign_env: Path, simulator: Any, blocked: str
) -> None:
    # Root ignores permissions: a plain file where the folder should be blocks it for anyone.
    (campaign_env / "data").mkdir(exist_ok=True)
    (campaign_env / blocked).write_text("not a folder")
    path = write_csv(campaign_env / "r.csv", mobiles(2, start=7700))
    state = send_survey_campaign(
        survey_id="s1", recipients=RecipientSource(path=str(path)), return_state=True
    )
    assert state.is_failed()
    assert "cannot write" in str(state.message) and "nothing was sent" in str(state.message)
    assert texted(simulator) == {}


# -- a campaign id is bound to its survey and its input ----------------------------------------


def test_a_campaign_resumed_with_another_survey_or_input_is_refused(
    campaign_env: Path, simulator: Any
) -> None:
    first = write_csv(campaign_env / "r.csv", mobiles(3, start=7800))
    grown = write_csv(campaign_env / "r2.csv", mobiles(5, start=7800))

    def run(path: Path, survey: str, **kwargs: Any) -> Any:
        return send_survey_campaign(
            survey_id=survey, recipients=RecipientSource(path=str(path)), campaign_id="bound-1",
            return_state=True, **kwargs,
        )  # fmt: skip

    assert run(first, "s1").is_completed()
    other = run(first, "s2")
    assert other.is_failed() and "started with survey 's1'" in str(other.message)
    changed = run(grown, "s1")
    assert changed.is_failed() and "--resume-changed-input" in str(changed.message)
    assert sum(texted(simulator).values()) == 3  # neither refused run sent anything
    resumed = run(grown, "s1", resume_changed_input=True)
    assert resumed.is_completed(), resumed.message
    assert texted(simulator) == dict.fromkeys(mobiles(5, start=7800), 1)  # the 2 new, once
    assert run(grown, "s1").is_completed()  # now bound to the grown input
    assert sum(texted(simulator).values()) == 5


def test_two_runs_of_one_campaign_keep_their_own_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    mine = rows_file.save_rows(pd.DataFrame({"mobile": ["a"]}), "twice-1", "run1")
    theirs = rows_file.save_rows(pd.DataFrame({"mobile": ["b", "c"]}), "twice-1", "run2")
    assert rows_file.load_rows(mine)["mobile"].tolist() == ["a"]  # not overwritten by the other run
    assert rows_file.load_rows(theirs)["mobile"].tolist() == ["b", "c"]
    latest = str(folders.state_dir("twice-1") / "rows.pkl")
    assert rows_file.load_rows(latest)["mobile"].tolist() == ["b", "c"]  # the follow-up's view
    rows_file.drop_run_rows(mine)
    rows_file.drop_run_rows(latest)  # the latest is never dropped
    assert not Path(mine).exists() and Path(latest).exists()


def test_a_named_suppression_list_that_does_not_exist_stops_the_campaign(
    campaign_env: Path, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sending anyway would text the people who said STOP: the list named must be there.
    monkeypatch.setenv("SURVEY_SUPPRESSION_LIST", str(campaign_env / "no-such-list.csv"))
    path = write_csv(campaign_env / "r.csv", mobiles(2, start=7900))
    state = send_survey_campaign(
        survey_id="s1", recipients=RecipientSource(path=str(path)), return_state=True
    )
    assert state.is_failed() and "no-such-list.csv" in str(state.message)
    assert texted(simulator) == {}


def test_postgres_urls_work_for_the_ledger_and_the_recipients_alike() -> None:
    """One URL handling (tasks/dburl.py): the scheme many tools print works everywhere."""
    need_server("127.0.0.1", 5432, "PostgreSQL")
    from tasks.recipients import load_recipients
    from tasks.sending import shared_ledger

    url = "postgres://postgres@127.0.0.1:5432/test"
    assert shared_ledger(url, outage=1).campaign_exists("no-such-campaign") is False
    frame = load_recipients(db_url=url, query="SELECT '+33612345678' AS mobile")
    assert frame["mobile"].tolist() == ["+33612345678"]


def test_an_expected_failure_never_carries_a_full_number() -> None:
    """Whichever step says it (a loader, the gateway, the ledger), an error of the family is
    masked and one line; a campaign's id in it stays readable (it is a name, not a number)."""
    from tasks.errors import SurveyError
    from tasks.ledger import LedgerUnavailable
    from tasks.plan import CampaignError, validate_campaign_id

    said = LedgerUnavailable('invalid input syntax for type bigint: "06 12 34 50 12"\nDETAIL')
    assert "06 12 34 50 12" not in str(said) and "bigint" in str(said) and "\n" not in str(said)
    assert SurveyError("no phone column found").message == "no phone column found"
    cid = validate_campaign_id("demo-satisfaction-20250107-103012-ab31")
    error = CampaignError(f"campaign {cid} was started with survey 'x' by +33 6 12 34 50 12")
    assert cid in str(error) and "12 34 50" not in str(error)
    # A mistyped id reads back as typed (its digits are a date and a time, not a number), while
    # a name carrying a phone number is masked like any number.
    typo = "demo-satisfaction-20250107-103012-ab32"
    assert typo in str(CampaignError(f"campagne inconnue : {typo}"))
    assert "34 50" not in str(CampaignError("file rappel-06 12 34 50 12.csv"))
    assert "123450" not in str(CampaignError("file rappel-0612345012.csv"))
