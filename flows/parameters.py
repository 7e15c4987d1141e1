"""The flows' form models and shared fields: one title, description and default each (the
Prefect UI builds each flow's Run form from them), each model turning itself into the plain
values the rules take.

The form is read by a city hall's operator, not a developer: every title, help text and choice
is French and free of jargon. What the UI shows is the JSON schema, so:

- a top-level parameter's title is its Python name unless ``json_schema_extra`` says otherwise
  (``operator_words``); inside a model, ``Field(title=..., description=...)`` is shown as is;
- an optional field (``X | None``) would show a "str / None" switch and 'Property is type
  "None"': ``optional_box`` (inside a model) and ``optional_switch`` (top level) keep one box;
- enum values are what the select shows: ``readable_choice`` shows French labels and still
  takes the old values (the command line's ``--window strict``, programmatic callers, and the
  Prefect server's check of a deployment run's parameters).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import time as dtime
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from tasks import dburl, runtime
from tasks import ledger as lg
from tasks import sample as smp
from tasks.approval import Approval, ApprovalMode
from tasks.audience import AudiencePlan, parse_survey_map
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.plan import PlanRequest, PlanRules
from tasks.pressure import parse_rule, rules_for
from tasks.sendcore import READ_TIMEOUT, SendPolicy
from tasks.sending import SendSettings
from tasks.slots import HORIZON_DAYS, LEAD, MARGIN, WindowPolicy
from tasks.steps.prepare import Source
from tasks.steps.send import Throttle

# -- how the form shows a field ------------------------------------------------------------------


def operator_words(title: str, description: str, **more: Any) -> dict[str, Any]:
    """The ``Field`` keywords of a top-level parameter: its title and description, said again in
    its ``json_schema_extra`` (with ``more``), because Prefect titles a parameter with its Python
    name and describes it with the docstring, and that dict is applied last: the form shows
    these words."""
    shown = {"title": title, "description": description}
    return {**shown, "json_schema_extra": {**shown, **more}}


def optional_box(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of an optional field inside a model: one plain box (empty: none)
    instead of a "str / None" switch. Without a default in the schema, the Prefect server takes
    null as well as a value (its ``_fix_null_typing``), so nothing that validated is refused."""
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if branches:
        schema.update(branches[0])
    if "default" in schema and schema["default"] is None:
        del schema["default"]


def optional_switch(
    value: dict[str, Any], value_label: str, none_label: str, *, open_on_value: bool = False
) -> dict[str, Any]:
    """The ``anyOf`` of an optional top-level parameter (``operator_words(..., **this)``), its
    two sides named in French. Prefect's form opens on the side of the default: a string opens
    on an empty box (``open_on_value``: its form default is "", read as none); a number, whose
    none has no such stand-in, on the none side, where Prefect adds its own 'Property is type
    "None"' (a ``const`` none would avoid it, but turns the field into a raw JSON editor once
    chosen). The server still takes null, as before."""
    words = {"anyOf": [{**value, "title": value_label}, {"type": "null", "title": none_label}]}
    return {**words, "default": ""} if open_on_value else words


def blank_is_none(value: Any) -> Any:
    """An emptied box may come as "": it means "none", as null does."""
    return None if isinstance(value, str) and not value.strip() else value


# The two sides of a choice in the form: the French list an operator picks from, and the old
# values that scripts and API callers send (never listed unless asked for).
CHOICE_TITLE = "Choix"
CODE_TITLE = "Code technique"
CODE_WORDS = f"«\u00a0{CODE_TITLE}\u00a0» : réservé à l'informaticien."  # no break in « »


def readable_choice(
    labels: Mapping[Any, str],
) -> tuple[BeforeValidator, PlainSerializer, WithJsonSchema]:
    """Annotations of an enum field whose choices the form shows as French ``labels``: a label or
    an old value (``strict``, ``pause``) validates to the member, and JSON (the form's default, a
    stored run) carries the label.

    The schema is an ``anyOf`` of the labels and the old values. A select's options are its
    ``enum`` verbatim (Prefect's form has no separate option label), and jsonschema applies every
    ``enum`` it meets, so one select cannot show labels while the server takes codes; an
    ``anyOf`` can: the server takes either side (``-p approval_mode=pause`` still runs), the form
    opens on the first for any text (it picks a side by the value's type) and lists only labels.
    ``const`` sides are no way out in Prefect 3.9: picking one sends no value at all, and the
    box shows the code with "is a const and cannot be changed"."""
    by_label = {label: member for member, label in labels.items()}
    members = {str(member): member for member in labels}

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            return by_label.get(value, members.get(value, value))
        return value

    def label(value: Any) -> str:
        return labels[members[str(value)]]

    sides = [
        {"type": "string", "enum": list(labels.values()), "title": CHOICE_TITLE},
        {"type": "string", "enum": list(members), "title": CODE_TITLE},
    ]
    return (
        BeforeValidator(parse),
        PlainSerializer(label, return_type=str, when_used="json"),
        WithJsonSchema({"anyOf": sides}),
    )


ApiKeyBlock = Annotated[
    str | None,
    BeforeValidator(blank_is_none),
    Field(
        **operator_words(
            "Avancé · compte SMS Partner (nom de la clé)",
            "Pour plusieurs comptes SMS Partner : le nom sous lequel la clé de ce compte est "
            "enregistrée dans Prefect (menu Blocks). Vide : le compte par défaut.",
            **optional_switch(
                {"type": "string"}, "Autre compte", "Compte par défaut", open_on_value=True
            ),
        ),
    ),
]

Language = Annotated[
    Lang,
    Field(
        **operator_words("Langue des rapports", "fr : français (par défaut) ; en : anglais."),
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


# Where an operator hands a file over without a shell (another module polls it).
INBOX_HINT = "data/inbox/<enquête>/"

# A file path typed into a form: relative, no ".." segment, no control character. The server
# refuses the rest before storing a run; ``confine`` then keeps it inside the data folder
# (symlinks followed), which a pattern cannot see.
FORM_PATH_PATTERN = (
    r"^(?![/\\~]|[A-Za-z]:)"  # not absolute (/x, \x, ~/x, C:x)
    r"(?!(?:[^/\\]*[/\\])*\.\.(?:[/\\]|$))"  # no ".." segment
    r"[^\x00-\x1f\x7f]*$"
)
FORM_PATH_EXPECTED = (
    "un fichier du dossier data du serveur, écrit comme data/samples/recipients.csv (pas un "
    "chemin de votre poste comme C:..., ni /... ni ..) : copiez d'abord le fichier dans ce "
    f"dossier, ou déposez-le dans {INBOX_HINT}"
)
_WINDOWS_PATH = re.compile(r"^\s*(?:[A-Za-z]:[\\/]|\\\\)")  # C:\... or \\server\share


def confine(path: str, root: Path) -> str:
    """``path`` resolved (relative to the current directory, symlinks followed) when it lies
    inside ``root``; else ValueError in one line quoting only what was typed. For paths from a
    deployment's form: anyone with the UI could otherwise make a worker read any of its files."""
    typed = str(path)
    refused = ValueError(
        f"le fichier {typed!r} est hors du dossier data : une campagne lancée depuis Prefect ne "
        "lit que les fichiers de ce dossier (par exemple data/samples/recipients.csv) ; "
        f"copiez-y le fichier, ou déposez-le dans {INBOX_HINT}"
    )
    if _WINDOWS_PATH.match(typed):
        raise ValueError(windows_path_refusal(typed))
    if not typed.strip() or any(ord(c) < 32 or ord(c) == 127 for c in typed):
        raise refused
    try:
        base = Path(root).resolve()
        as_typed = (Path.cwd() / typed).resolve()
        in_data = (base / typed).resolve()
        if as_typed != base and as_typed.is_relative_to(base):
            return str(as_typed)
        # Written from the data folder itself (inbox/<survey>/pris/x.csv, as the inbox hands
        # it over): a worker's SURVEY_DATA_DIR may lie outside the clone. Only a file that is
        # there, and nothing of that name from the clone's root: a typo stays refused.
        if in_data.is_relative_to(base) and in_data.is_file() and not as_typed.exists():
            return str(in_data)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a null byte
        raise refused from None
    raise refused


def windows_path_refusal(typed: str) -> str:
    """What to do with a path of the operator's own computer: the server cannot see it."""
    name = re.split(r"[\\/]", typed.strip())[-1] or "le fichier"
    return (
        f"{typed!r} est un chemin de votre poste, que le serveur ne voit pas : copiez {name} dans "
        f"le dossier data du serveur (puis indiquez data/{name}), ou déposez-le dans {INBOX_HINT}"
    )


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
                f"le fichier {typed!r} est dans le dossier interne de l'outil (state) : une "
                "campagne lancée depuis Prefect ne lit que vos fichiers du dossier data"
            )
        raise refusal or ValueError("aucun dossier data où lire le fichier")

    path = inside(source.path) if source.path and not source.sql else source.path
    db_url = source.db_url
    if source.sql and db_url and db_url.startswith("sqlite:///"):
        db_url = "sqlite:///" + inside(db_url.removeprefix("sqlite:///"))
    listed = inside(named_list) if named_list else named_list
    return replace(source, path=path, db_url=db_url), listed


# A recipients file given by its address: https, or object storage (fsspec); plain http only to
# this machine, as tasks/recipients/remote.py allows (tests). Prefect stores and
# shows a run's parameters, so an address holding a password or a token is refused by the server
# (before the run exists, without quoting it) and by the model's own check.
URL_SCHEMES = ("https", "s3", "gs", "gcs", "az", "abfs", "abfss")
_SECRET_WORDS = ("sig", "token", "key", "pass", "secret", "auth", "credential", "session")


def _any_case(word: str) -> str:
    """A pattern for ``word`` in any case: JSON schema patterns take no (?i) flag."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


FILE_URL_PATTERN = (
    r"^(?:\s*|"  # blank: no address
    f"(?:(?:{'|'.join(_any_case(s) for s in URL_SCHEMES)})://"
    r"|[Hh][Tt][Tt][Pp]://(?=(?:127\.0\.0\.1|localhost|\[::1\])(?:[:/]|$)))"  # this machine
    r"(?![^/?#]*@)"  # no user part: user:password@ or token@
    rf"(?![^#]*[?&][^=&#]*(?:{'|'.join(_any_case(w) for w in _SECRET_WORDS)}))"  # no secret key
    r"[^\s\x00-\x1f\x7f#]+)$"
)
_FILE_URL = re.compile(FILE_URL_PATTERN)
FILE_URL_EXPECTED = (
    "une adresse https://, s3://, gs:// ou az:// sans identifiant, mot de passe ni jeton "
    "(pas de user:motdepasse@, de ?token=, ?sig= ou X-Amz-Signature=) : l'accès au stockage se "
    "configure sur le serveur, jamais dans l'adresse"
)


# -- the send flow's own fields -----------------------------------------------------------------

SurveyId = Annotated[
    str,
    Field(
        **operator_words(
            "Enquête SMS Partner",
            "L'identifiant de l'enquête, tel qu'il figure dans votre espace SMS Partner.",
        ),
    ),
]
CampaignId = Annotated[
    str | None,
    BeforeValidator(blank_is_none),
    Field(
        **operator_words(
            "Reprendre une campagne",
            "Pour finir une campagne déjà lancée : son identifiant (personne ne reçoit le SMS "
            "deux fois). Vide : une nouvelle campagne.",
            **optional_switch(
                {"type": "string"}, "Identifiant", "Nouvelle campagne", open_on_value=True
            ),
        ),
    ),
]
DryRun = Annotated[
    bool,
    Field(
        **operator_words(
            "Essai sans envoi", "Prépare la campagne et son rapport sans envoyer aucun SMS."
        ),
    ),
]
_OPT_OUT_WORDS = (
    "Un fichier CSV ou Excel de numéros à ne jamais contacter, dans le dossier data (par exemple "
    "data/opposition.csv). Il s'ajoute aux oppositions déjà connues. Vide : celles-ci seules."
)
SuppressionList = Annotated[
    str | None,
    BeforeValidator(blank_is_none),
    Field(
        **operator_words(
            "Liste d'opposition",
            _OPT_OUT_WORDS,
            **optional_switch({"type": "string"}, "Fichier", "Aucune", open_on_value=True),
            **refuse_unless(FORM_PATH_PATTERN, FORM_PATH_EXPECTED),
        ),
    ),
]
_COST_WORDS = (
    "Si le coût estimé dépasse ce montant, la campagne attend l'accord d'une personne avant "
    "tout envoi."
)
ApproveAboveCost = Annotated[
    float | None,
    Field(
        ge=0,
        **operator_words(
            "Demander l'accord au-delà de (€)",
            _COST_WORDS,
            **optional_switch({"type": "number", "minimum": 0}, "Montant", "Jamais"),
        ),
    ),
]
_SIZE_WORDS = (
    "S'il y a plus de destinataires, la campagne attend l'accord d'une personne avant tout envoi."
)
ApproveAboveRecipients = Annotated[
    int | None,
    Field(
        ge=0,
        **operator_words(
            "Demander l'accord au-delà de (destinataires)",
            _SIZE_WORDS,
            **optional_switch({"type": "integer", "minimum": 0}, "Nombre", "Jamais"),
        ),
    ),
]
ApprovalTimeoutHours = Annotated[
    float,
    Field(
        gt=0,
        le=24 * 14,
        **operator_words(
            "Avancé · délai pour donner l'accord (heures)",
            "Sans réponse dans ce délai, la campagne s'arrête sans rien envoyer.",
        ),
    ),
]
APPROVAL_LABELS = {
    # Short: a phone's select shows about 30 characters.
    ApprovalMode.pause: "Demander ici (conseillé)",
    ApprovalMode.stop: "Ne rien envoyer",
    ApprovalMode.approved: "Accord donné d'avance",
}
_approval_in, _approval_out, _approval_schema = readable_choice(APPROVAL_LABELS)
ApprovalModeChoice = Annotated[
    ApprovalMode,
    _approval_in,
    _approval_out,
    _approval_schema,
    Field(
        **operator_words(
            "Avancé · quand l'accord est nécessaire",
            "Quand la campagne dépasse un seuil d'accord : attendre qu'une personne "
            "l'approuve ici, s'arrêter sans rien envoyer, ou envoyer (accord donné d'avance). "
            + CODE_WORDS,
            default=APPROVAL_LABELS[ApprovalMode.pause],
        ),
    ),
]
# The operator's words: the line that stops a campaign short of money names this box
# (tasks/i18n.py, "cochez « Envoyer ce que les crédits permettent »").
SEND_WITHIN_CREDITS_TITLE = "Envoyer ce que les crédits permettent"
_WITHIN_WORDS = (
    "Si les crédits du compte ou le budget ne couvrent pas toute la campagne, rien n'est envoyé, "
    "sauf si ceci est activé : seuls les destinataires couverts reçoivent alors le SMS, les "
    "autres sont signalés comme non envoyés."
)
SendWithinCredits = Annotated[
    bool,
    Field(
        **operator_words(SEND_WITHIN_CREDITS_TITLE, _WITHIN_WORDS),
    ),
]
_RESUME_WORDS = (
    "Reprendre une campagne dont la liste a changé depuis son lancement est refusé ; activez "
    "pour y ajouter les nouvelles lignes (personne ne reçoit le SMS deux fois)."
)
ResumeChangedInput = Annotated[
    bool,
    Field(
        **operator_words("Avancé · reprendre avec une liste modifiée", _RESUME_WORDS),
    ),
]


# -- where the recipients come from: one model per kind, the form shows one kind's fields -------


class SourceKind(StrEnum):
    csv = "csv"
    excel = "excel"
    sql = "sql"
    url = "url"


def _phone_column() -> Any:
    return Field(
        None,
        title="Colonne des numéros",
        description="Vide : trouvée d'après l'en-tête (téléphone, portable, mobile...).",
        json_schema_extra=optional_box,
    )


def _sheet() -> Any:
    return Field(
        None,
        title="Feuille Excel",
        description="Le nom de la feuille ; vide : la première.",
        json_schema_extra=optional_box,
    )


_DB_URL_REFUSED = (
    "l'adresse de la base contient un mot de passe, ou une option qui peut en être un (seules "
    "les options usuelles comme ?sslmode= sont acceptées) : Prefect l'enregistrerait et "
    "l'afficherait ; enregistrez le mot de passe à part (champ « Mot de passe de la base ») ou "
    f"sur le serveur ({runtime.DB_PASSWORD_ENV})"
)
_URL_REFUSED = f"adresse du fichier refusée : il faut {FILE_URL_EXPECTED}"


class FileSource(BaseModel):
    """Un fichier CSV ou Excel du dossier data du serveur."""

    model_config = ConfigDict(title="Fichier", hide_input_in_errors=True)

    # csv or excel: the loader reads the file's own kind, so the form does not ask.
    kind: SkipJsonSchema[SourceKind] = SourceKind.csv
    path: str = Field(
        "data/samples/recipients.csv",
        title="Emplacement du fichier",
        description="Un fichier CSV ou Excel (.xlsx) du dossier data du serveur, écrit comme "
        "data/samples/recipients.csv. Un fichier de votre poste (C:...) : copiez-le d'abord "
        f"dans ce dossier, ou déposez-le dans {INBOX_HINT}",
        json_schema_extra=refuse_unless(FORM_PATH_PATTERN, FORM_PATH_EXPECTED),
    )
    sheet: str | None = _sheet()
    phone_column: str | None = _phone_column()

    _blank = field_validator("sheet", "phone_column", mode="before")(blank_is_none)

    def plain(self) -> Source:
        return Source(path=self.path, sheet=self.sheet)


class DatabaseSource(BaseModel):
    """Une requête sur une base de données, seulement lue."""

    model_config = ConfigDict(title="Base de données", hide_input_in_errors=True)

    kind: SkipJsonSchema[SourceKind] = SourceKind.sql
    db_url: str = Field(
        title="Adresse de la base",
        description="Sans mot de passe, par exemple postgresql://lecteur@serveur/crm : le mot "
        "de passe s'enregistre à part (champ suivant) ou sur le serveur, jamais ici.",
        # The server refuses (before storing the run) exactly what the check below refuses, and
        # its answer quotes PUBLIC_URL_EXPECTED, never the URL.
        json_schema_extra=refuse_unless(dburl.PUBLIC_URL_PATTERN, dburl.PUBLIC_URL_EXPECTED),
    )
    credentials_block: str | None = Field(
        None,
        title="Mot de passe de la base (nom de la clé)",
        description="Le nom sous lequel le mot de passe est enregistré dans Prefect (menu "
        "Blocks) ; vide : celui configuré sur le serveur.",
        json_schema_extra=optional_box,
    )
    query: str = Field(
        title="Requête ou table",
        description="Une requête SELECT ou un nom de table ; la base n'est jamais modifiée.",
    )
    phone_column: str | None = _phone_column()

    _blank = field_validator("credentials_block", "phone_column", mode="before")(blank_is_none)

    @field_validator("db_url")
    @classmethod
    def _no_secret_in_url(cls, value: str) -> str:
        if not dburl.is_public(value):  # the form's own pattern: one rule
            raise ValueError(_DB_URL_REFUSED)
        public, _ = dburl.split(value)  # DbUrlError (a ValueError) when unreadable
        return public

    def plain(self) -> Source:
        return Source(
            db_url=self.db_url,
            query=self.query,
            credentials_block=self.credentials_block,
            sql=True,
        )


class UrlSource(BaseModel):
    """Un fichier CSV ou Excel téléchargé depuis une adresse web ou un stockage en ligne."""

    model_config = ConfigDict(title="Adresse web", hide_input_in_errors=True)

    kind: SkipJsonSchema[SourceKind] = SourceKind.url
    url: str = Field(
        title="Adresse du fichier",
        description="https://... ou un stockage en ligne (s3://, gs://, az://), vers un fichier "
        ".csv ou .xlsx. Sans identifiant ni jeton dans l'adresse : l'accès se configure sur "
        "le serveur.",
        json_schema_extra=refuse_unless(FILE_URL_PATTERN, FILE_URL_EXPECTED),
    )
    sheet: str | None = _sheet()
    phone_column: str | None = _phone_column()

    _blank = field_validator("sheet", "phone_column", mode="before")(blank_is_none)

    @field_validator("url")
    @classmethod
    def _no_secret_in_address(cls, value: str) -> str:
        if not value.strip() or not _FILE_URL.search(value):
            raise ValueError(_URL_REFUSED)
        return value.strip()

    def fetched(self, path: Path) -> Source:
        """The source once its file is downloaded to ``path``."""
        return Source(path=str(path), sheet=self.sheet)


AnySource = FileSource | DatabaseSource | UrlSource


class RecipientSource(BaseModel):
    """Where the recipients come from, every kind's fields in one model: the programmatic
    form (``RecipientSource(path=...)``, ``RecipientSource(kind="sql", db_url=..., query=...)``)
    that existing callers build. The flow's form shows one kind at a time (``Recipients``);
    ``variant()`` is this source as that kind."""

    model_config = ConfigDict(hide_input_in_errors=True)

    kind: SourceKind = SourceKind.csv
    path: str | None = "data/samples/recipients.csv"
    sheet: str | None = None
    db_url: str | None = None
    credentials_block: str | None = None
    query: str | None = None
    url: str | None = None
    phone_column: str | None = None

    @field_validator("db_url")
    @classmethod
    def _no_secret_in_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not dburl.is_public(value):
            raise ValueError(_DB_URL_REFUSED)
        public, _ = dburl.split(value)
        return public

    def variant(self) -> AnySource:
        return as_source(self.model_dump())

    def plain(self) -> Source:
        """As before the kinds had a model each: every field as given (the loader says what
        is missing, e.g. a query)."""
        return Source(
            path=self.path,
            sheet=self.sheet,
            db_url=self.db_url,
            query=self.query,
            credentials_block=self.credentials_block,
            sql=self.kind == SourceKind.sql,
        )


def as_source(value: Any) -> Any:
    """The source kind a value is: a model of one kind as is; the full model or a dict (the old
    form: ``{"kind": "csv", "path": ...}``, ``{"path": ...}``, ``{"kind": "sql", "db_url": ...,
    "query": ...}``; the form's own, which carries no kind) by its ``kind``, else by the fields
    it fills. Other kinds' empty fields are dropped: the old form sent them all."""
    if isinstance(value, FileSource | DatabaseSource | UrlSource):
        return value
    if isinstance(value, RecipientSource):
        value = value.model_dump()
    if not isinstance(value, dict):
        return value  # pydantic says what is wrong
    filled = {k: v for k, v in value.items() if v is not None}
    kind = str(filled.get("kind", ""))
    model: type[BaseModel] = FileSource
    if kind == SourceKind.sql or (not kind and ("db_url" in filled or "query" in filled)):
        model = DatabaseSource
    elif kind == SourceKind.url or (not kind and "url" in filled):
        model = UrlSource
    if model is FileSource and kind not in (SourceKind.csv, SourceKind.excel):
        filled.pop("kind", None)
    return model.model_validate({k: v for k, v in filled.items() if k in model.model_fields})


_SOURCE_WORDS = (
    "Un fichier CSV ou Excel du dossier data, une base de données, ou une adresse web : "
    "choisissez, puis remplissez ses champs."
)
# The server checks every kind's typed value, whichever kind the form chose: an address with a
# password is refused even inside another kind's fields (the UI ignores "if"/"then"/"else").
# The checks stand on the source itself, not on its fields: when the value also fits no kind,
# jsonschema reports the error nearest the top, and the "anyOf" one would quote the whole value;
# a "const" error at the same depth wins over it, and quotes only what is expected.
_TYPED_CHECKS = [
    ("path", FORM_PATH_PATTERN, FORM_PATH_EXPECTED),
    ("db_url", dburl.PUBLIC_URL_PATTERN, dburl.PUBLIC_URL_EXPECTED),
    ("url", FILE_URL_PATTERN, FILE_URL_EXPECTED),
]
_SOURCE_CHECKS: dict[str, Any] = {}
for _name, _pattern, _expected in reversed(_TYPED_CHECKS):
    _SOURCE_CHECKS = {
        "if": {"properties": {_name: {"type": ["string", "null"], "pattern": _pattern}}},
        "then": _SOURCE_CHECKS,
        "else": {"const": _expected},
    }

Recipients = Annotated[
    AnySource,
    BeforeValidator(as_source),
    Field(
        **operator_words("Destinataires", _SOURCE_WORDS, **_SOURCE_CHECKS),
    ),
]


# -- when: the delivery window -------------------------------------------------------------------


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
WINDOW_LABELS = {
    # Short: a phone's select shows about 30 characters.
    WindowPreset.strict: "Lun.-sam. 8h-20h (conseillé)",
    WindowPreset.af2m_2024: "Lun.-sam. 8h-22h",
    WindowPreset.af2m_2026: "Tous les jours 8h-21h30",
}
_window_in, _window_out, _window_schema = readable_choice(WINDOW_LABELS)


class DeliveryWindow(BaseModel):
    """Quand les destinataires peuvent recevoir le SMS (à l'heure de chez eux)."""

    preset: Annotated[WindowPreset, _window_in, _window_out, _window_schema] = Field(
        WindowPreset.strict,
        title="Plage horaire",
        description="À l'heure locale du destinataire (outre-mer compris). Lun.-sam. : jamais "
        "le dimanche ni un jour férié. 8h-22h et tous les jours : ce que permettent les chartes "
        "des opérateurs (2024, 2026). " + CODE_WORDS,
        # The form's select shows the default: its label, not the code.
        json_schema_extra={"default": WINDOW_LABELS[WindowPreset.strict]},
    )
    gateway_hold: bool = Field(
        True,
        title="Respecter la retenue de SMS Partner (heure de Paris)",
        description="SMS Partner retient lui-même les envois hors de ses horaires (heure de "
        "Paris) ; à désactiver seulement si SMS Partner l'a levée pour votre compte.",
    )
    alsace_moselle: bool = Field(
        False,
        title="Jours fériés d'Alsace-Moselle",
        description="Évite aussi le Vendredi saint et le 26 décembre.",
    )
    horizon_days: int = Field(
        HORIZON_DAYS,
        ge=1,
        le=60,
        title="Programmer jusqu'à (jours à l'avance)",
        description="Jusqu'à combien de jours à l'avance un envoi peut être programmé.",
    )
    allow_immediate: bool = Field(
        True,
        title="Envoyer tout de suite si l'heure le permet",
        description="Désactivé : chaque envoi est programmé à une heure permise.",
    )
    allow_foreign: bool = Field(
        False,
        title="Accepter les numéros étrangers",
        description="Mobiles hors de France et de ses territoires d'outre-mer.",
    )

    def policy(self) -> WindowPolicy:
        return WindowPolicy(
            gateway_hold=self.gateway_hold,
            alsace_moselle=self.alsace_moselle,
            horizon_days=self.horizon_days,
            **PRESETS[self.preset],
        )


# -- who: the sample, the contact-pressure rules, witnesses, a survey per segment ----------------

PROPORTIONAL_WORDS = ("proportionnel", "proportionnelle", "proportional")

# What the server takes in the audience's boxes (the models' own checks say more, after): the
# form refuses a typo before a run exists, with what was expected.
_SPACE = r"[\s\u00a0\u202f]"
SAMPLE_PATTERN = (
    rf"^{_SPACE}*(?:[0-9][0-9\s\u00a0\u202f]*|[0-9]+(?:[.,][0-9]+)?{_SPACE}*%)?{_SPACE}*$"
)
SAMPLE_EXPECTED = "un nombre de personnes (400) ou une part de la liste (10 %)"
QUOTA_PATTERN = (
    rf"^{_SPACE}*(?:[0-9]+|{'|'.join(_any_case(w) for w in PROPORTIONAL_WORDS)})?{_SPACE}*$"
)
QUOTA_EXPECTED = "un nombre par valeur (150) ou « proportionnel »"
RULE_PATTERN = r"^\s*[A-Za-z0-9_-]+=[0-9]+/[0-9]+(?::survey)?\s*$"
RULE_EXPECTED = "une règle écrite NOM=NOMBRE/JOURS ou NOM=NOMBRE/JOURS:survey (trimestre=2/90)"


def _boxed(pattern: str, expected: str) -> Callable[[dict[str, Any]], None]:
    """``json_schema_extra`` of an optional text box the server checks against ``pattern``."""

    def extra(schema: dict[str, Any]) -> None:
        optional_box(schema)
        schema.update(refuse_unless(pattern, expected))

    return extra


class Audience(BaseModel):
    """Qui reçoit l'enquête : toute la liste (par défaut) ou un échantillon tiré au hasard, les
    règles qui évitent de trop solliciter les mêmes personnes, les témoins, une enquête par
    langue ou par service."""

    model_config = ConfigDict(extra="forbid")

    sample: str | None = Field(
        None,
        title="Taille de l'échantillon",
        description="Interroger seulement une partie de la liste, tirée au hasard : un nombre "
        "(400) ou une part (10 %). Vide : toute la liste.",
        json_schema_extra=_boxed(SAMPLE_PATTERN, SAMPLE_EXPECTED),
    )
    quota_by: str | None = Field(
        None,
        title="Répartir l'échantillon selon la colonne",
        description="Le nom d'une colonne du fichier (par exemple agence ou service). Vide : "
        "selon le territoire (métropole, chaque outre-mer).",
        json_schema_extra=optional_box,
    )
    quota: str | None = Field(
        None,
        title="Au plus, par valeur de cette colonne",
        description="Un nombre (150), ou «\u00a0proportionnel\u00a0» pour garder les "
        "proportions de la liste. Vide : pas de limite par valeur.",
        json_schema_extra=_boxed(QUOTA_PATTERN, QUOTA_EXPECTED),
    )
    sample_exclude_days: int = Field(
        0,
        ge=0,
        le=3650,
        title="Ne pas tirer qui a reçu une enquête depuis (jours)",
        description="0 : tout le monde peut être tiré (la règle «\u00a0pas deux "
        "enquêtes\u00a0» s'applique quand même).",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        title="Numéro de tirage",
        description="Le même numéro avec la même liste redonne le même échantillon. Vide : un "
        "nouveau tirage, dont le numéro figure dans le rapport.",
        json_schema_extra=optional_box,
    )
    pressure_rules: list[str] = Field(
        default_factory=list,
        title="Règles de sollicitation",
        description="En plus de «\u00a0Pas deux enquêtes à moins de\u00a0». Chaque règle "
        "(«\u00a0Add item\u00a0» en ajoute une) : NOM=NOMBRE/JOURS pour toutes les enquêtes "
        "(trimestre=2/90 : au plus 2 enquêtes en 90 jours), ou NOM=NOMBRE/JOURS:survey pour "
        "cette enquête seulement.",
        json_schema_extra={
            "items": {"type": "string", **refuse_unless(RULE_PATTERN, RULE_EXPECTED)}
        },
    )
    witnesses: str | None = Field(
        None,
        title="Fichier des témoins",
        description="Un fichier CSV de numéros du personnel, dans le dossier data : ils "
        "reçoivent le vrai SMS une fois par campagne, au premier envoi, sans compter dans les "
        "chiffres. Vide : aucun témoin.",
        json_schema_extra=optional_box,
    )
    witnesses_only: bool = Field(
        False,
        title="Envoyer seulement aux témoins",
        description="Pour voir le SMS avant la vraie campagne : personne d'autre ne le reçoit.",
    )
    survey_by: str | None = Field(
        None,
        title="Une enquête selon la colonne",
        description="Par exemple langue : chaque valeur reçoit l'enquête donnée ci-dessous. "
        "Vide : tout le monde reçoit l'enquête choisie en haut.",
        json_schema_extra=optional_box,
    )
    survey_map: str | None = Field(
        None,
        title="Enquête de chaque valeur",
        description="VALEUR=ENQUÊTE, séparées par des virgules : fr=ENQ_FR, en=ENQ_EN.",
        json_schema_extra=optional_box,
    )
    default_survey: bool = Field(
        True,
        title="Les autres valeurs reçoivent l'enquête choisie en haut",
        description="Désactivé : une valeur sans enquête arrête la campagne avant tout envoi.",
    )

    _blank = field_validator(
        "sample", "quota_by", "quota", "witnesses", "survey_by", "survey_map", mode="before"
    )(blank_is_none)

    @field_validator("sample")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None:
            smp.parse_size(value.replace(" ", "").replace("\u202f", ""))
        return value

    @field_validator("quota")
    @classmethod
    def _quota(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in PROPORTIONAL_WORDS:
            smp.parse_quota(value.strip())
        return value

    @field_validator("pressure_rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> Any:
        if isinstance(value, str):  # one rule per line, or separated by commas
            value = [v for v in re.split(r"[\n,;]", value) if v.strip()]
        if isinstance(value, list):
            value = [v.strip() for v in value if isinstance(v, str) and v.strip()]
            for text in value:
                parse_rule(text)
        return value

    @field_validator("survey_map")
    @classmethod
    def _map(cls, value: str | None) -> str | None:
        if value is not None:
            parse_survey_map(value)
        return value

    @model_validator(mode="after")
    def _together(self) -> Audience:
        if bool(self.survey_by) != bool(self.survey_map):
            raise ValueError(
                "une enquête selon la colonne demande la colonne ET la correspondance des "
                "enquêtes (VALEUR=ENQUÊTE)"
            )
        if (spec := self.spec()) is not None:
            spec.validate()
        return self

    def spec(self) -> smp.SampleSpec | None:
        """The sample asked for (None: everybody): a size, a quota per value, or an exclusion
        window."""
        if self.sample is None and self.quota is None and not self.sample_exclude_days:
            return None
        count, percent = (
            smp.parse_size(self.sample.replace(" ", "").replace("\u202f", ""))
            if self.sample is not None
            else (None, None)
        )
        quota = (self.quota or "").strip()
        proportional = quota.lower() in PROPORTIONAL_WORDS
        return smp.SampleSpec(
            size=count,
            percent=percent,
            quota_by=self.quota_by,
            quota=None if proportional or not quota else int(smp.parse_quota(quota)),
            proportional=proportional,
            exclude_days=self.sample_exclude_days,
            seed=self.seed,
        )

    def plan(self, frequency_cap_days: int) -> AudiencePlan:
        """The planner's settings; a sample without a seed gets one here, said in the report so
        that the same draw can be made again."""
        spec = self.spec()
        seed = self.seed if self.seed is not None else secrets.randbelow(2**31)
        return AudiencePlan(
            sample=spec,
            seed=seed,
            rules=rules_for(frequency_cap_days, self.pressure_rules),
            survey_by=self.survey_by,
            survey_map=parse_survey_map(self.survey_map),
            default_survey=self.default_survey,
        )


AudienceParam = Annotated[
    Audience,
    Field(
        **operator_words(
            "Qui interroger",
            "Toute la liste, ou un échantillon ; les règles de sollicitation ; les témoins ; une "
            "enquête par langue ou par service.",
        )
    ),
]


# -- how much: the budget first, then the advanced settings ---------------------------------------

# Budget and technical settings stay one model: ``limits={"concurrency": 4}`` and
# ``--concurrency`` are the programmatic interface. The form shows the budget fields first and
# every technical one after them, titled "Avancé · ...", with safe defaults.
ADVANCED = "Avancé · "


class Limits(BaseModel):
    """Le budget d'abord ; les réglages « Avancé » ont des valeurs sûres : n'y touchez que sur
    conseil."""

    max_cost: float | None = Field(
        None,
        ge=0,
        title="Budget maximum (€)",
        description="Aucun envoi ne part s'il ferait dépasser ce montant. Vide : pas de plafond.",
        json_schema_extra=optional_box,
    )
    cost_per_sms: float = Field(
        0.045,
        gt=0,
        le=5,
        title="Prix estimé d'un SMS (€)",
        description="Sert à estimer le coût avant les premières réponses de SMS Partner, qui "
        "donnent le prix réel.",
    )
    frequency_cap_days: int = Field(
        30,
        ge=0,
        le=365,
        title="Pas deux enquêtes à moins de (jours)",
        description="Ne pas recontacter une personne qui a reçu une autre enquête dans ce délai "
        "; 0 : pas de limite.",
    )
    concurrency: int = Field(
        8,
        ge=1,
        le=64,
        title=ADVANCED + "envois en parallèle",
        description="Nombre d'appels simultanés à SMS Partner.",
    )
    chunk_size: int = Field(
        500,
        ge=1,
        le=500,
        title=ADVANCED + "numéros par envoi",
        description="Numéros par appel à SMS Partner (500 au plus).",
    )
    lead_minutes: int = Field(
        LEAD // timedelta(minutes=1),
        ge=6,
        le=120,
        title=ADVANCED + "avance d'un envoi programmé (minutes)",
        description="Un envoi programmé est confié à SMS Partner au moins ce délai avant "
        "son heure.",
    )
    retry_backoff: float = Field(
        SendPolicy.backoff,
        ge=0.01,
        le=60,
        title=ADVANCED + "attente avant un nouvel essai (secondes)",
        description="Doublée à chaque essai, avec un peu de hasard.",
    )
    max_attempts: int = Field(
        SendPolicy.max_attempts,
        ge=1,
        le=20,
        title=ADVANCED + "essais par envoi",
        description="Nombre d'essais d'un envoi qui échoue.",
    )
    read_timeout: float = Field(
        READ_TIMEOUT,
        ge=1,
        le=600,
        title=ADVANCED + "attente de la réponse (secondes)",
        description="Un envoi resté sans réponse est peut-être parti : il n'est jamais renvoyé "
        "avant que SMS Partner ait montré qu'il n'est pas parti.",
    )
    settle_seconds: float = Field(
        SendPolicy.settle.total_seconds(),
        ge=1,
        le=86400,
        title=ADVANCED + "délai de vérification (secondes)",
        description="Après un envoi sans réponse claire, le délai (pour un envoi programmé : "
        "après son heure) avant qu'un envoi inconnu de SMS Partner compte comme non parti.",
    )
    settle_wait_seconds: float = Field(
        900.0,
        ge=0,
        le=86400,
        title=ADVANCED + "attente des envois incertains (secondes)",
        description="Combien de temps la campagne attend, après les envois, pour vérifier ceux "
        "restés sans réponse ; au-delà, le suivi quotidien s'en charge.",
    )
    ledger_outage_seconds: float = Field(
        lg.DEFAULT_OUTAGE,
        ge=0,
        le=3600,
        title=ADVANCED + "panne tolérée de la base de suivi (secondes)",
        description="Combien de temps réessayer quand la base qui garde la trace des envois ne "
        "répond plus, avant d'arrêter la campagne.",
    )
    global_limit: str | None = Field(
        None,
        title=ADVANCED + "limite partagée entre serveurs",
        description="Le nom d'une limite de concurrence Prefect commune à tous les serveurs "
        "d'envoi (à créer avant). Vide : seulement les envois en parallèle ci-dessus.",
        json_schema_extra=optional_box,
    )

    _blank = field_validator("global_limit", mode="before")(blank_is_none)

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
        audience: AudiencePlan | None = None,
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
            audience=audience or AudiencePlan(rules=rules_for(self.frequency_cap_days, [])),
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
        audience: AudiencePlan | None = None,
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
            rules=audience.rules if audience else rules_for(self.frequency_cap_days, []),
            ledger_outage=self.ledger_outage_seconds,
            key_block=key_block,
        )


# The models as top-level parameters: Prefect would title them with their Python names.
Window = Annotated[
    DeliveryWindow,
    Field(**operator_words("Heures d'envoi", "Quand les destinataires peuvent recevoir le SMS.")),
]
Budget = Annotated[
    Limits,
    Field(
        **operator_words(
            "Budget et réglages avancés",
            "Le budget d'abord ; les réglages « Avancé » ont des valeurs sûres : n'y touchez "
            "que sur conseil.",
        )
    ),
]


# -- follow-up: retiring
# The follow-up's two settings of dead numbers (tasks/retire.py); the command line's
# --retire-after and --retire-days.
RetireAfter = Annotated[
    int,
    Field(
        ge=0,
        le=20,
        **operator_words(
            "Numéros non délivrés : campagnes de suite avant de les écarter",
            "Un numéro « non délivré » à ce nombre de campagnes de suite ne reçoit plus "
            "d'enquête pendant le délai ci-dessous (un statut en attente ne compte pas) ; "
            "délivré de nouveau, il redevient joignable. 0 : jamais écarté.",
        ),
    ),
]
RetireDays = Annotated[
    int,
    Field(
        ge=1,
        le=3650,
        **operator_words(
            "Numéros non délivrés : écartés pendant (jours)",
            "Combien de temps un numéro écarté ne reçoit plus d'enquête. Un opérateur peut "
            "réattribuer un numéro résilié après 45 à 120 jours.",
        ),
    ),
]
