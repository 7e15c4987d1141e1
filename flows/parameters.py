"""The flows' form models and shared fields: one title, description and default each (the
Prefect UI builds each flow's Run form from them), each model turning itself into the plain
values the rules take."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import time as dtime
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks import dburl, runtime
from tasks import ledger as lg
from tasks.approval import Approval, ApprovalMode
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.plan import PlanRequest, PlanRules
from tasks.runtime import API_KEY_ENV, SECRET_BLOCK
from tasks.sendcore import READ_TIMEOUT, SendPolicy
from tasks.sending import SendSettings
from tasks.slots import HORIZON_DAYS, LEAD, MARGIN, WindowPolicy
from tasks.steps.prepare import Source
from tasks.steps.send import Throttle

ApiKeyBlock = Annotated[
    str | None,
    Field(
        title="SMS Partner key (Secret block)",
        description="Name of the Prefect Secret block holding this account's API key; empty: "
        f"the worker's {API_KEY_ENV}, else the block '{SECRET_BLOCK}'.",
    ),
]

Language = Annotated[
    Lang,
    Field(
        title="Langue des rapports / Report language",
        description="fr: français (par défaut) ; en: English. The JSON summary, files' column "
        "names and reason codes stay as they are.",
    ),
]


def refuse_unless(pattern: str, expected: str) -> dict[str, Any]:
    """JSON schema that refuses anything but null or a string matching ``pattern``, with the
    message ``'<expected>' was expected``: a ``const`` error is the one jsonschema error that does
    not quote the value, and it wins over the field's own ``anyOf`` type error (a weak one in
    jsonschema's choice of the error to report), so Prefect's 409 answer ("Validation failed for
    field ...") never echoes what was typed. A plain ``pattern`` would quote it."""
    return {
        "if": {"type": ["string", "null"], "pattern": pattern},
        "else": {"const": expected},
    }


# A file path typed into a form: relative, no ".." segment, no control character. The server
# refuses the rest before storing a run; ``confine`` then keeps it inside the data folder
# (symlinks followed), which a pattern cannot see.
FORM_PATH_PATTERN = (
    r"^(?![/\\~]|[A-Za-z]:)"  # not absolute (/x, \x, ~/x, C:x)
    r"(?!(?:[^/\\]*[/\\])*\.\.(?:[/\\]|$))"  # no ".." segment
    r"[^\x00-\x1f\x7f]*$"
)
FORM_PATH_EXPECTED = (
    "a file of the data folder, written like data/samples/recipients.csv (not starting with / "
    "and without ..): copy the file into the data folder first"
)


def confine(path: str, root: Path) -> str:
    """``path`` resolved (relative to the current directory, symlinks followed) when it lies
    inside ``root``; else ValueError in one line quoting only what was typed. For paths from a
    deployment's form: anyone with the UI could otherwise make a worker read any of its files."""
    typed = str(path)
    refused = ValueError(
        f"the file {typed!r} is outside the data folder: a run started from a deployment may "
        "only read files inside it (e.g. data/samples/recipients.csv)"
    )
    if not typed.strip() or any(ord(c) < 32 or ord(c) == 127 for c in typed):
        raise refused
    try:
        base = Path(root).resolve()
        found = (Path.cwd() / typed).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a null byte
        raise refused from None
    if found != base and found.is_relative_to(base):
        return str(found)
    raise refused


def confine_form_paths(
    source: Source, named_list: str | None, roots: Sequence[Path]
) -> tuple[Source, str | None]:
    """The files a deployment's form named (the recipients, a SQLite source, the opt-out list),
    each confined to one of ``roots`` (the data folders) and never to their ``state/`` (the
    ledger, the key): ValueError in one line otherwise."""

    def inside(typed: str) -> str:
        refusal: ValueError | None = None
        for root in roots:
            try:
                found = confine(typed, root)
            except ValueError as exc:
                refusal = exc
                continue
            if not Path(found).is_relative_to((root / "state").resolve()):
                return found
            refusal = ValueError(
                f"the file {typed!r} is in the tool's own state folder: a run started from a "
                "deployment may only read your files in the data folder"
            )
        raise refusal or ValueError("no data folder to read from")

    path = inside(source.path) if source.path and not source.sql else source.path
    db_url = source.db_url
    if source.sql and db_url and db_url.startswith("sqlite:///"):
        db_url = "sqlite:///" + inside(db_url.removeprefix("sqlite:///"))
    listed = inside(named_list) if named_list else named_list
    return replace(source, path=path, db_url=db_url), listed


# The send flow's own fields (the Prefect UI's form shows their titles and descriptions).
SurveyId = Annotated[
    str,
    Field(
        title="Survey identifier",
        description="sondageIdent of a survey created in the SMS Partner account.",
    ),
]
CampaignId = Annotated[
    str | None,
    Field(
        title="Campaign id", description="Reuse an id to resume a campaign; empty for a new one."
    ),
]
DryRun = Annotated[bool, Field(title="Dry run", description="Plan and report, send nothing.")]
SuppressionList = Annotated[
    str | None,
    Field(
        title="Opt-out list",
        description="A CSV or Excel list of numbers never to text, added to the never-text "
        "store (it never replaces it); empty: the store alone. A path inside the data folder, "
        "relative to the repository root.",
        json_schema_extra=refuse_unless(FORM_PATH_PATTERN, FORM_PATH_EXPECTED),
    ),
]
ApproveAboveCost = Annotated[
    float | None,
    Field(
        ge=0,
        title="Approval above this cost (EUR)",
        description="Pause before any send for a person's approval when the estimated cost "
        "passes this amount; empty: never ask for the cost.",
    ),
]
ApproveAboveRecipients = Annotated[
    int | None,
    Field(
        ge=0,
        title="Approval above this many recipients",
        description="Pause before any send for a person's approval when more recipients "
        "would be texted; empty: never ask for the size.",
    ),
]
ApprovalTimeoutHours = Annotated[
    float,
    Field(
        gt=0,
        le=24 * 14,
        title="Wait for approval (hours)",
        description="Past this, an unanswered approval ends the campaign: nothing is sent.",
    ),
]
ApprovalModeChoice = Annotated[
    ApprovalMode,
    Field(
        title="When approval is needed",
        description="pause: ask in the Prefect UI; stop: stop before any send (nobody to "
        "ask); approved: approved in advance.",
    ),
]
SendWithinCredits = Annotated[
    bool,
    Field(
        # The operator's words: the line that stops a campaign short of money names this box.
        title="Envoyer ce que les crédits permettent / Send what the credits allow",
        description="When the account's credits or the budget cap do not cover the whole "
        "campaign, nothing is sent unless this is ticked: then only the recipients the money "
        "covers are texted, the others are reported as not sent.",
    ),
]
ResumeChangedInput = Annotated[
    bool,
    Field(
        title="Resume on a changed input",
        description="Resuming a campaign id on recipients that changed since its first run "
        "is refused; tick to add the new rows to it (nobody is texted twice).",
    ),
]


class SourceKind(StrEnum):
    csv = "csv"
    excel = "excel"
    sql = "sql"


class RecipientSource(BaseModel):
    """Where the recipients come from."""

    # A rejected URL must not be echoed into the run's state message (it may hold a password).
    model_config = ConfigDict(hide_input_in_errors=True)

    kind: SourceKind = Field(
        SourceKind.csv, title="Source kind", description="CSV file, Excel workbook or SQL database."
    )
    path: str | None = Field(
        "data/samples/recipients.csv",
        title="File path",
        description="CSV or .xlsx file inside the data folder, relative to the repository root "
        "(csv / excel).",
        json_schema_extra=refuse_unless(FORM_PATH_PATTERN, FORM_PATH_EXPECTED),
    )
    sheet: str | None = Field(
        None, title="Excel sheet", description="Sheet name; empty for the first sheet."
    )
    db_url: str | None = Field(
        None,
        title="Database URL",
        description="SQLAlchemy URL WITHOUT password (sql), e.g. postgresql://user@host/db. "
        "The password comes from the Secret block named below, else from the worker's "
        f"{runtime.DB_PASSWORD_ENV} environment variable. A URL holding a password, or a "
        "query option other than the usual ones (sslmode, charset, connect_timeout, ...), is "
        "refused.",
        # The server refuses (before storing the run) exactly what the check below refuses, and
        # its answer quotes PUBLIC_URL_EXPECTED, never the URL.
        json_schema_extra=refuse_unless(dburl.PUBLIC_URL_PATTERN, dburl.PUBLIC_URL_EXPECTED),
    )
    credentials_block: str | None = Field(
        None,
        title="Database password (Secret block)",
        description="Name of a Prefect Secret block holding the database password (sql); "
        f"empty: the worker's {runtime.DB_PASSWORD_ENV}.",
    )
    query: str | None = Field(
        None, title="SQL query or table", description="A SELECT statement or a table name (sql)."
    )
    phone_column: str | None = Field(
        None, title="Phone column", description="Column holding the numbers; empty to detect it."
    )

    @field_validator("db_url")
    @classmethod
    def _no_secret_in_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not dburl.is_public(value):  # the form's own pattern: one rule
            raise ValueError(
                "the database URL holds a password, or a query option that may be one (only "
                "usual options such as ?sslmode= are accepted): Prefect would store and show it; "
                "put the password in a Secret block (credentials_block) or the worker's "
                f"{runtime.DB_PASSWORD_ENV}"
            )
        public, _ = dburl.split(value)  # DbUrlError (a ValueError) when unreadable
        return public

    def plain(self) -> Source:
        return Source(
            path=self.path,
            sheet=self.sheet,
            db_url=self.db_url,
            query=self.query,
            credentials_block=self.credentials_block,
            sql=self.kind == SourceKind.sql,
        )


class WindowPreset(StrEnum):
    strict = "strict"  # SMS Partner's hold: Mon-Sat 08:00-20:00, no holidays
    af2m_2024 = "af2m_2024"  # operators' charter 2024: Mon-Sat 08:00-22:00
    af2m_2026 = "af2m_2026"  # operators' charter 2026: every day 08:00-21:30


PRESETS: dict[WindowPreset, dict[str, Any]] = {
    WindowPreset.strict: {},
    WindowPreset.af2m_2024: {"end": dtime(22, 0)},
    WindowPreset.af2m_2026: {
        "end": dtime(21, 30),
        "weekdays": frozenset(range(7)),
        "holidays": False,
    },
}


class DeliveryWindow(BaseModel):
    """When recipients may be texted (in their own time zone)."""

    preset: WindowPreset = Field(
        WindowPreset.strict,
        title="Sending hours",
        description="strict: Monday-Saturday 08:00-20:00, no public holidays (the default, "
        "the strictest rule). af2m_2024: until 22:00. af2m_2026: every day 08:00-21:30.",
    )
    gateway_hold: bool = Field(
        True,
        title="Gateway hold (Paris hours)",
        description="Also respect SMS Partner's own hold on Paris time; turn off only if your "
        "account's hold was lifted.",
    )
    alsace_moselle: bool = Field(
        False,
        title="Alsace-Moselle holidays",
        description="Also avoid Good Friday and 26 December.",
    )
    horizon_days: int = Field(HORIZON_DAYS, ge=1, le=60, title="Planning horizon (days)")
    allow_immediate: bool = Field(
        True,
        title="Send at once when allowed",
        description="Send without a schedule when the window is open long enough now.",
    )
    allow_foreign: bool = Field(
        False,
        title="Accept foreign numbers",
        description="Numbers outside France and its territories.",
    )

    def policy(self) -> WindowPolicy:
        return WindowPolicy(
            gateway_hold=self.gateway_hold,
            alsace_moselle=self.alsace_moselle,
            horizon_days=self.horizon_days,
            **PRESETS[self.preset],
        )


class Limits(BaseModel):
    """Budget, speed and frequency."""

    max_cost: float | None = Field(
        None,
        ge=0,
        title="Budget cap",
        description="Maximum cost of this campaign, in the account's currency.",
    )
    cost_per_sms: float = Field(
        0.045,
        gt=0,
        le=5,
        title="Estimated cost per SMS",
        description="Used until the gateway's first answers tell the real price.",
    )
    concurrency: int = Field(8, ge=1, le=64, title="Parallel API calls")
    chunk_size: int = Field(500, ge=1, le=500, title="Numbers per API call")
    frequency_cap_days: int = Field(
        30,
        ge=0,
        le=365,
        title="Frequency cap (days)",
        description="Skip numbers texted by another campaign within this many days; 0: off.",
    )
    lead_minutes: int = Field(
        LEAD // timedelta(minutes=1),
        ge=6,
        le=120,
        title="Lead time before a scheduled slot (minutes)",
    )
    retry_backoff: float = Field(
        SendPolicy.backoff,
        ge=0.01,
        le=60,
        title="Retry backoff (seconds)",
        description="First wait before retrying a failed call; doubles each time, with jitter.",
    )
    max_attempts: int = Field(SendPolicy.max_attempts, ge=1, le=20, title="Attempts per chunk")
    read_timeout: float = Field(
        READ_TIMEOUT,
        ge=1,
        le=600,
        title="Answer timeout (seconds)",
        description="How long a send waits for the gateway's answer. A send without an answer "
        "may have landed: it is never sent again before the gateway shows it did not.",
    )
    settle_seconds: float = Field(
        SendPolicy.settle.total_seconds(),
        ge=1,
        le=86400,
        title="Settle time (seconds)",
        description="How long after a send whose answer proved nothing (timeout, garbled or "
        "5xx answer) a 'not found' from the status endpoint starts to count as 'not sent'; for "
        "a scheduled chunk, counted from its slot. Status endpoints lag behind acceptance.",
    )
    settle_wait_seconds: float = Field(
        900.0,
        ge=0,
        le=86400,
        title="Wait for doubtful sends (seconds)",
        description="How long the run waits after the fan-out to settle such sends; those "
        "still unsettled end in_doubt, for a rerun or the daily follow-up to settle.",
    )
    ledger_outage_seconds: float = Field(
        lg.DEFAULT_OUTAGE,
        ge=0,
        le=3600,
        title="Ride through a ledger outage (seconds)",
        description="How long ledger operations are retried while the ledger database is "
        "unreachable (a restart, a failover) before the run stops.",
    )
    global_limit: str | None = Field(
        None,
        title="Prefect global limit",
        description="Name of a Prefect global concurrency limit shared by every worker (create "
        "it with `prefect gcl create NAME --limit N`; with --slot-decay-per-second it is a rate "
        "limit). Empty: only the parallel-calls bound above.",
    )

    def plan_rules(self, window: DeliveryWindow) -> PlanRules:
        return PlanRules(
            chunk_size=self.chunk_size,
            concurrency=self.concurrency,
            lead=timedelta(minutes=self.lead_minutes),
            margin=MARGIN,
            cap_days=self.frequency_cap_days,
            policy=window.policy(),
            allow_immediate=window.allow_immediate,
        )

    def plan_request(
        self,
        *,
        campaign_id: str,
        survey_id: str,
        ledger_url: str,
        window: DeliveryWindow,
        dry_run: bool,
        resume_changed_input: bool,
        send_within_credits: bool = False,
        lang: Lang = DEFAULT_LANG,
    ) -> PlanRequest:
        return PlanRequest(
            campaign_id=campaign_id,
            survey_id=survey_id,
            run=uuid.uuid4().hex[:12],  # this run's own state files
            ledger_url=ledger_url,
            ledger_outage=self.ledger_outage_seconds,
            rules=self.plan_rules(window),
            cost_per_sms=self.cost_per_sms,
            dry_run=dry_run,
            resume_changed_input=resume_changed_input,
            global_limit=self.global_limit,
            send_within_credits=send_within_credits,
            max_cost=self.max_cost,
            lang=lang,
        )

    def approval(
        self,
        *,
        above_cost: float | None,
        above_recipients: int | None,
        mode: ApprovalMode,
        timeout_hours: float,
        lang: Lang,
    ) -> Approval:
        """When the campaign waits for a person's yes: the form's thresholds, with the price
        and the budget cap a person is shown."""
        return Approval(
            above_cost=above_cost,
            above_recipients=above_recipients,
            mode=mode,
            timeout_hours=timeout_hours,
            cost_per_sms=self.cost_per_sms,
            max_cost=self.max_cost,
            lang=lang,
        )

    def send_policy(self) -> SendPolicy:
        return SendPolicy(
            max_attempts=self.max_attempts,
            backoff=self.retry_backoff,
            settle=timedelta(seconds=self.settle_seconds),
            first_look=min(SendPolicy.first_look, timedelta(seconds=self.settle_seconds)),
            look_every=min(SendPolicy.look_every, timedelta(seconds=self.settle_seconds)),
        )

    def throttle(self, rate_limited: bool) -> Throttle:
        return Throttle(self.concurrency, self.global_limit, rate_limited)

    def send_settings(
        self,
        *,
        campaign_id: str,
        survey_id: str,
        base_url: str,
        ledger_url: str,
        credits: float | None,
        window: DeliveryWindow,
        key_block: str | None,
    ) -> SendSettings:
        return SendSettings(
            campaign_id=campaign_id,
            survey_id=survey_id,
            base_url=base_url,
            ledger_url=ledger_url,
            owner=lg.owner_token(uuid.uuid4().hex[:8]),
            cost_per_recipient=self.cost_per_sms,
            max_cost=self.max_cost,
            credits=credits,
            policy=window.policy(),
            lead=timedelta(minutes=self.lead_minutes),
            margin=MARGIN,
            send=self.send_policy(),
            timeout=self.read_timeout,
            cap_days=self.frequency_cap_days,
            ledger_outage=self.ledger_outage_seconds,
            key_block=key_block,
        )
