"""The inbox for files, its rules: which dropped files are taken, when, under which campaign id,
and what the operator reads about each (pure: no file system, no clock, no Prefect).

A folder per survey, ``<data folder>/inbox/<survey id>/``: a CSV or Excel file dropped there
becomes a send campaign that waits for a person's approval. The watcher
(``tasks/steps/inbox.py``, the flow ``flows/inbox.py``) looks at the folders, asks these rules,
and does the file work through ``tasks/inbox_io.py``.

Taken once: the campaign id is made from the survey and the file's content (``campaign_id``),
so the same list dropped again, under any name, is the same campaign: the inbox's registry
recognises it, and were the registry lost, the send deployment's idempotency key and then the
ledger (a resumed campaign never texts anyone twice) still would.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tasks import i18n
from tasks.i18n import Lang
from tasks.plan import validate_campaign_id

INBOX = "inbox"  # under the data folder
TAKEN = "pris"  # inside a survey's folder: the files taken, kept for the campaign to read
README = "LISEZ-MOI.txt"
SOURCES = "sources.txt"  # in a survey's folder: addresses of lists, one a line
FETCHED = ".sources"  # in a survey's folder: where they are fetched to before being looked at
ERROR_NOTE = ".erreur.txt"  # beside a file that cannot be taken: why, and what to do
DUPLICATE_NOTE = ".deja-pris.txt"  # beside a file whose content was taken already
NOTE_SUFFIXES = (ERROR_NOTE, DUPLICATE_NOTE)

# What the recipients' loaders read (tasks/recipients/): CSV and Excel. ".txt" is left out on
# purpose: a folder shared on the network collects notes, ours included.
CSV_SUFFIXES = (".csv", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
# Files a desktop or an office suite leaves beside others: never an operator's list.
SYSTEM_FILES = {"thumbs.db", "desktop.ini", ".ds_store"}

# A file is taken once it has not changed between two looks this far apart, and is this old.
LOOK_GAP_SECONDS = 2.0
MIN_AGE_SECONDS = 5.0

# A survey folder's name is the survey's identifier in the SMS Partner account.
_SURVEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


class Kind(StrEnum):
    table = "table"  # a CSV or Excel file: a list to take
    old_excel = "old_excel"  # .xls: the loaders do not read it; the operator saves it as .xlsx
    other = "other"  # any other file: the operator is told it is not taken
    ignored = "ignored"  # hidden, a lock file, ours: not the operator's list


def kind_of(name: str) -> Kind:
    """What a file in a survey's folder is, from its name."""
    lower = name.lower()
    if (
        lower.startswith((".", "~$", "~"))  # hidden, Office lock files, editors' copies
        or lower in SYSTEM_FILES
        or name == README
        or lower == SOURCES
        or lower.endswith(NOTE_SUFFIXES)
        or lower.endswith((".tmp", ".part", ".crdownload", ".partial"))  # copies under way
    ):
        return Kind.ignored
    if lower.endswith(CSV_SUFFIXES + EXCEL_SUFFIXES):
        return Kind.table
    if lower.endswith(".xls"):
        return Kind.old_excel
    return Kind.other


def source_urls(text: str) -> list[str]:
    """The addresses of a ``sources.txt``: one a line; blank lines and ``#`` comments left out."""
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def source_kind(name: str) -> str:
    """The send flow's ``recipients.kind`` of a taken file: ``excel`` or ``csv``."""
    return "excel" if name.lower().endswith(EXCEL_SUFFIXES) else "csv"


@dataclass(frozen=True)
class Look:
    """A file as seen at one moment: its size and modification time (seconds)."""

    size: int
    mtime: float


def settled(first: Look | None, second: Look | None, now: float) -> bool:
    """Whether a file is whole: unchanged between two looks, and old enough (a copy over the
    network, a spreadsheet being saved, write in bursts)."""
    if first is None or second is None:
        return False  # gone between the looks
    return first == second and now - second.mtime >= MIN_AGE_SECONDS


def valid_survey_id(name: str) -> bool:
    return bool(_SURVEY_ID.fullmatch(name))


def campaign_id(survey_id: str, content_sha256: str) -> str:
    """The campaign of a file: the survey's name, ``depot`` and a digest of the survey and the
    file's content. The same list dropped again, under any name, gives the same id."""
    stem = re.sub(r"[^a-z0-9]+", "-", survey_id.lower()).strip("-")[:40] or "enquete"
    digest = hashlib.sha256(f"{survey_id}\0{content_sha256}".encode()).hexdigest()[:12]
    return validate_campaign_id(f"{stem}-depot-{digest}")


def stored_name(name: str, taken: Iterable[str], content_sha256: str) -> str:
    """The file's name in ``pris/``: its own, unless a file of that name was taken before
    (a list dropped every week under the same name); then with a piece of its digest."""
    if name not in set(taken):
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}-{content_sha256[:8]}.{suffix}" if dot else f"{name}-{content_sha256[:8]}"


def note_name(name: str, suffix: str) -> str:
    return name + suffix


# -- what the operator reads ----------------------------------------------------------------------


class Outcome(StrEnum):
    started = "started"  # a campaign was started; it waits for approval
    known = "known"  # its campaign was started before (the send deployment said so)
    duplicate = "duplicate"  # the same content was taken already: nothing started
    refused = "refused"  # cannot be read, or not a list: a note beside it
    bad_folder = "bad_folder"  # the folder's name is not a survey id: a note in it


class Refusal(StrEnum):
    """Why a file is not taken (each has its sentence and next step below)."""

    not_a_list = "not_a_list"
    old_excel = "old_excel"
    unreadable = "unreadable"
    empty = "empty"
    no_phone_column = "no_phone_column"
    outside_project = "outside_project"
    start_failed = "start_failed"


_TEXTS: dict[str, dict[str, str]] = {
    "problem.not_a_list": {
        "fr": "ce type de fichier n'est pas une liste de destinataires : déposez un fichier CSV "
        "ou Excel (.xlsx).",
        "en": "this kind of file is not a list of recipients: drop a CSV or Excel (.xlsx) file.",
    },
    "problem.old_excel": {
        "fr": "les classeurs Excel anciens (.xls) ne sont pas lus : ouvrez-le dans Excel, "
        "enregistrez-le au format .xlsx, puis déposez-le à nouveau.",
        "en": "old Excel workbooks (.xls) are not read: open it in Excel, save it as .xlsx, "
        "then drop it again.",
    },
    "problem.unreadable": {
        "fr": "le fichier ne se lit pas comme un tableau CSV ou Excel : ouvrez-le dans votre "
        "tableur, enregistrez-le au format CSV ou .xlsx, puis déposez-le à nouveau.",
        "en": "the file cannot be read as a CSV or Excel table: open it in your spreadsheet, "
        "save it as CSV or .xlsx, then drop it again.",
    },
    "problem.empty": {
        "fr": "le fichier ne contient aucun destinataire : vérifiez que c'est la bonne liste, "
        "puis déposez-la à nouveau.",
        "en": "the file holds no recipient: check it is the right list, then drop it again.",
    },
    "problem.no_phone_column": {
        "fr": "aucune colonne de numéros de téléphone trouvée : intitulez la colonne des "
        "numéros « Téléphone », « Mobile » ou « Portable », puis déposez le fichier à nouveau.",
        "en": "no column of phone numbers found: head the numbers' column “Phone”, “Mobile” "
        "or “Téléphone”, then drop the file again.",
    },
    "problem.outside_project": {
        "fr": "le dossier de dépôt est hors du dossier du projet, où la campagne ne peut pas "
        "lire le fichier : demandez au service informatique de placer le dossier de données "
        "dans le dossier du projet.",
        "en": "the inbox is outside the project's folder, where the campaign cannot read the "
        "file: ask IT to put the data folder inside the project's folder.",
    },
    "problem.start_failed": {
        "fr": "la campagne n'a pas pu être créée dans Prefect : le fichier reste pris, il sera "
        "repris au prochain passage ; si cela dure, prévenez le service informatique.",
        "en": "the campaign could not be created in Prefect: the file stays taken and will be "
        "tried again at the next pass; if it lasts, tell IT.",
    },
    "problem.source": {
        "fr": "adresse {n} de sources.txt : {reason} ; puis enregistrez sources.txt à nouveau "
        "pour réessayer.",
        "en": "address {n} of sources.txt: {reason}; then save sources.txt again to try again.",
    },
    "note.detail": {
        "fr": "Détail pour le service informatique : {detail}",
        "en": "Detail for IT: {detail}",
    },
    "note.duplicate": {
        "fr": "Ce fichier a déjà été pris le {when} (campagne {campaign}) : rien n'est envoyé "
        "une seconde fois. Vous pouvez le supprimer.",
        "en": "This file was taken already on {when} (campaign {campaign}): nothing is sent a "
        "second time. You may delete it.",
    },
    "note.bad_folder": {
        "fr": "« {name} » n'est pas un identifiant d'enquête : renommez ce dossier avec "
        "l'identifiant de l'enquête dans votre compte SMS Partner (lettres sans accent, "
        "chiffres, - ou _, sans espace). Rien de ce dossier n'est pris d'ici là.",
        "en": "“{name}” is not a survey identifier: rename this folder after the survey's "
        "identifier in your SMS Partner account (letters without accents, digits, - or _, no "
        "space). Nothing in this folder is taken until then.",
    },
    "readme": {
        "fr": "Boîte de dépôt des listes de destinataires\n\n"
        "Un dossier par enquête, nommé par l'identifiant de l'enquête dans le compte SMS "
        "Partner (par exemple : {example}).\n"
        "Déposez-y une liste au format CSV ou Excel (.xlsx) avec une colonne de numéros de "
        "téléphone. En moins de 5 minutes, elle devient une campagne qui attend votre accord "
        "dans Prefect : rien n'est envoyé avant qu'une personne l'approuve.\n"
        "Pour une liste qui se trouve sur un site (https://) ou un stockage (s3://, gs://, "
        "az://) : écrivez son adresse dans un fichier « {sources} » du dossier de l'enquête, "
        "une adresse par ligne ; elle est prise quand vous enregistrez ce fichier.\n"
        "Le fichier pris est rangé dans le sous-dossier « {taken} ». Le même fichier déposé "
        "une seconde fois n'envoie rien. Un fichier qui ne peut pas être lu reçoit à côté de "
        "lui une note « <nom du fichier>{error} » qui dit quoi faire.\n",
        "en": "Inbox for lists of recipients\n\n"
        "One folder per survey, named after the survey's identifier in the SMS Partner "
        "account (for example: {example}).\n"
        "Drop a CSV or Excel (.xlsx) list with a column of phone numbers there. Within 5 "
        "minutes it becomes a campaign that waits for your approval in Prefect: nothing is "
        "sent before a person approves it.\n"
        "For a list on a website (https://) or in a storage (s3://, gs://, az://): write its "
        "address in a file “{sources}” of the survey's folder, one address a line; it is "
        "taken when you save that file.\n"
        "The file taken is moved to the subfolder “{taken}”. The same file dropped again "
        "sends nothing. A file that cannot be read gets a note “<file name>{error}” beside "
        "it that says what to do.\n",
    },
    # the run's artifact and log
    "outcome.started": {
        "fr": "campagne créée : elle attend votre accord (ouvrez-la dans Prefect, bouton "
        "« Resume »)",
        "en": "campaign created: it waits for your approval (open it in Prefect, “Resume” button)",
    },
    "outcome.known": {
        "fr": "campagne déjà créée pour ce fichier : rien de plus",
        "en": "campaign already created for this file: nothing more",
    },
    "outcome.duplicate": {
        "fr": "déjà pris le {when} : rien n'est envoyé une seconde fois",
        "en": "taken already on {when}: nothing is sent a second time",
    },
    "title": {"fr": "Boîte de dépôt", "en": "Inbox"},
    "survey": {"fr": "Enquête {survey}", "en": "Survey {survey}"},
    "line": {"fr": "**{file}** : {said}", "en": "**{file}**: {said}"},
    "campaign": {"fr": "campagne {campaign}", "en": "campaign {campaign}"},
    "folder": {"fr": "Dossier de dépôt : `{folder}`", "en": "Inbox folder: `{folder}`"},
    "nothing": {
        "fr": "Rien de nouveau dans la boîte de dépôt ({folder}).",
        "en": "Nothing new in the inbox ({folder}).",
    },
    "log.event": {"fr": "{survey} / {file} : {said}", "en": "{survey} / {file}: {said}"},
    "state.refused.one": {
        "fr": "1 fichier refusé ({file}) : {said}",
        "en": "1 file refused ({file}): {said}",
    },
    "state.refused.other": {
        "fr": "{n} fichiers refusés, dont {file} : {said}",
        "en": "{n} files refused, {file} among them: {said}",
    },
    "state.name.refused": {"fr": "Fichier refusé", "en": "File refused"},
    "state.done": {
        "fr": "campagnes créées : {started} ; déjà créées : {known} ; fichiers déjà pris : "
        "{duplicate}",
        "en": "campaigns created: {started}; created before: {known}; files taken already: "
        "{duplicate}",
    },
}


def say(lang: Lang, key: str, **values: object) -> str:
    return i18n.say_in(_TEXTS, lang, key, **values)


def problem_text(problem: Refusal, lang: Lang) -> str:
    return say(lang, f"problem.{problem}")


def error_note(problem: Refusal, lang: Lang, detail: str = "") -> str:
    """The note beside a file that is not taken: the reason and next step on its first line,
    the technical detail (already masked) for IT below."""
    lines = [_capital(problem_text(problem, lang))]
    if detail:
        lines += ["", say(lang, "note.detail", detail=detail)]
    return "\n".join(lines) + "\n"


def duplicate_note(when: str, campaign: str, lang: Lang) -> str:
    return say(lang, "note.duplicate", when=when, campaign=campaign) + "\n"


def bad_folder_note(name: str, lang: Lang) -> str:
    return say(lang, "note.bad_folder", name=name) + "\n"


def readme(lang: Lang, example: str = "satisfaction-2026") -> str:
    return say(lang, "readme", example=example, taken=TAKEN, error=ERROR_NOTE, sources=SOURCES)


def source_problem(n: int, reason: str, lang: Lang) -> str:
    """Why the ``n``-th address of ``sources.txt`` (from 1) gave no list, and what to do."""
    return say(lang, "problem.source", n=n, reason=reason.rstrip("."))


@dataclass(frozen=True)
class Event:
    """One thing the watcher did with one file (or folder), for the artifact and the log.
    ``file`` is already masked; ``said`` is the outcome's sentence."""

    survey: str
    file: str
    outcome: Outcome
    said: str
    campaign: str = ""
    link: str = ""  # the campaign's run page in the UI


def outcome_text(outcome: Outcome, lang: Lang, when: str = "") -> str:
    return say(lang, f"outcome.{outcome}", when=when)


def log_line(event: Event, lang: Lang) -> str:
    return say(lang, "log.event", survey=event.survey, file=event.file, said=event.said)


def markdown(events: Sequence[Event], folder: str, lang: Lang) -> str:
    """The inbox run's artifact: per survey, one line per file it did something with (a list,
    not a table: the sentences are long, and a table cuts them off in the UI)."""
    lines = [f"# {say(lang, 'title')}", "", say(lang, "folder", folder=folder)]
    for survey in dict.fromkeys(e.survey for e in events):
        lines += ["", f"## {say(lang, 'survey', survey=survey)}", ""]
        for e in (e for e in events if e.survey == survey):
            said = say(lang, "line", file=_md(e.file), said=e.said) if e.file else e.said
            if e.campaign:
                shown = f"[{e.campaign}]({e.link})" if e.link else f"`{e.campaign}`"
                said += f" — {say(lang, 'campaign', campaign=shown)}"
            lines.append(f"- {said}")
    return "\n".join([*lines, ""])


def refused_line(events: Sequence[Event], lang: Lang) -> str | None:
    """The run's state message when files were refused (None: none was): how many, the first
    one and its reason, in one line."""
    refused = [e for e in events if e.outcome in (Outcome.refused, Outcome.bad_folder)]
    if not refused:
        return None
    first = refused[0]
    form = "one" if len(refused) == 1 else "other"
    return say(lang, f"state.refused.{form}", n=len(refused), file=first.file, said=first.said)


def done_line(events: Sequence[Event], lang: Lang) -> str:
    """The run's state message when nothing was refused: what it started."""
    n = {o: sum(e.outcome == o for e in events) for o in Outcome}
    return say(
        lang,
        "state.done",
        started=n[Outcome.started],
        known=n[Outcome.known],
        duplicate=n[Outcome.duplicate],
    )


def _md(text: str) -> str:
    """A file name as markdown shows it as it is (its ``*``, ``_``... not read as markup)."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text.replace("\n", " "))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


__all__ = [
    "Event",
    "Kind",
    "Look",
    "Outcome",
    "Refusal",
    "bad_folder_note",
    "campaign_id",
    "done_line",
    "duplicate_note",
    "error_note",
    "kind_of",
    "markdown",
    "readme",
    "refused_line",
    "settled",
    "source_kind",
    "source_problem",
    "source_urls",
    "stored_name",
    "valid_survey_id",
]
