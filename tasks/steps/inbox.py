"""The inbox for files, as Prefect runs it: look at the survey folders, take the whole new
lists, start a send run waiting for approval on each, say what was done (artifact, log).

The rules (which files, when, which campaign id, the words) are in ``tasks/inbox.py``; the
folders, notes and registry in ``tasks/inbox_io.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterIdempotencyKey,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.utilities.urls import url_for

from tasks import i18n, runtime
from tasks import inbox as ib
from tasks import inbox_io as io
from tasks.errors import known_id, mask
from tasks.i18n import Lang
from tasks.steps import step

SEND_DEPLOYMENT = "send-survey-campaign/weekly-survey"
# The send run's parameters as its form stores them, from plain values (flows/inbox.py).
SendParameters = Callable[[Mapping[str, Any]], dict[str, Any]]
ARTIFACT_KEY = "boite-de-depot"
PARIS = "Europe/Paris"


@dataclass(frozen=True)
class Ready:
    """A file to start a campaign on: new and whole in a survey's folder, or found in
    ``pris/`` without its campaign (the watcher stopped between the move and the start)."""

    survey: str
    name: str
    in_taken: bool = False


@dataclass
class Looked:
    ready: list[Ready] = field(default_factory=list)
    events: list[ib.Event] = field(default_factory=list)


@step("look-at-inboxes")
def look_task(lang: Lang) -> Looked:
    """The inbox's survey folders: bad folder names and files that are not lists get their
    note; the whole new lists, and the taken files without a campaign, are ready."""
    inbox = io.inbox_dir(runtime.data_dir())
    inbox.mkdir(parents=True, exist_ok=True)
    io.write_note(inbox / ib.README, ib.readme(lang))
    registry = io.Registry(runtime.state_dir())
    looked = Looked()
    waiting: list[tuple[str, str]] = []
    for folder in io.survey_folders(inbox):
        survey = folder.name
        if not ib.valid_survey_id(survey):
            if io.write_note(folder / ib.README, ib.bad_folder_note(survey, lang)):
                said = ib.say(lang, "note.bad_folder", name=survey)
                looked.events.append(ib.Event(io.shown(survey), "", ib.Outcome.bad_folder, said))
            continue
        io.remove_stale_notes(folder)
        looked.events += _fetch_sources(folder, registry, lang)
        known = registry.stored_names(survey)
        looked.ready += [Ready(survey, n, True) for n in io.taken_files(folder) if n not in known]
        for name in io.files_in(folder):
            kind = ib.kind_of(name)
            if kind == ib.Kind.ignored or _noted(folder, name):
                continue
            if kind == ib.Kind.table:
                waiting.append((survey, name))
                continue
            problem = ib.Refusal.old_excel if kind == ib.Kind.old_excel else ib.Refusal.not_a_list
            looked.events.append(_refuse(folder, name, problem, lang))
    looked.ready += _whole(inbox, waiting)
    return looked


def _fetch_sources(folder: Path, registry: io.Registry, lang: Lang) -> list[ib.Event]:
    """The lists at the addresses of the survey's ``sources.txt``, fetched once each time the
    file is saved, and put in the folder as dropped files (a list already taken is dropped
    silently: the same address gave the same list). An address that gives no list is said in
    ``sources.txt.erreur.txt`` and the run."""
    from tasks.recipients.remote import RemoteFileError, download, shown_url

    sources = folder / ib.SOURCES
    seen = io.look(sources)
    if seen is None or registry.sources_seen(folder.name) == seen.mtime:
        return []
    registry.saw_sources(folder.name, seen.mtime)
    events, problems = [], []
    urls = ib.source_urls(sources.read_text(encoding="utf-8", errors="replace"))
    for n, url in enumerate(urls, start=1):
        try:
            fetched = download(url, folder / ib.FETCHED)
        except RemoteFileError as exc:
            said = ib.source_problem(n, exc.message, lang)
            problems.append(said)
            events.append(ib.Event(folder.name, shown_url(url), ib.Outcome.refused, said))
            continue
        if registry.find(folder.name, io.sha256_of(fetched)):
            fetched.unlink()  # the list at this address did not change since it was taken
            continue
        io.place_fetched(fetched, folder, age=2 * ib.MIN_AGE_SECONDS)
    note = folder / ib.note_name(ib.SOURCES, ib.ERROR_NOTE)
    if problems:
        io.write_note(note, "\n".join(p[:1].upper() + p[1:] for p in problems) + "\n")
    else:
        note.unlink(missing_ok=True)
    return events


def _noted(folder: Path, name: str) -> bool:
    """A note newer than the file already says what became of it (a file saved again after
    its note is looked at again)."""
    file_look = io.look(folder / name)
    for suffix in ib.NOTE_SUFFIXES:
        note = io.look(folder / ib.note_name(name, suffix))
        if note and file_look and note.mtime >= file_look.mtime:
            return True
    return False


def _whole(inbox: Path, waiting: list[tuple[str, str]]) -> list[Ready]:
    """The files unchanged between two looks and old enough; the others wait for the next
    pass (still being copied or saved)."""
    if not waiting:
        return []
    first = {w: io.look(inbox / w[0] / w[1]) for w in waiting}
    time.sleep(ib.LOOK_GAP_SECONDS)
    now = time.time()
    return [
        Ready(survey, name)
        for survey, name in waiting
        if ib.settled(first[(survey, name)], io.look(inbox / survey / name), now)
    ]


def _refuse(folder: Path, name: str, problem: ib.Refusal, lang: Lang, detail: str = "") -> ib.Event:
    io.write_note(folder / ib.note_name(name, ib.ERROR_NOTE), ib.error_note(problem, lang, detail))
    said = ib.problem_text(problem, lang)
    return ib.Event(folder.name, io.shown(name), ib.Outcome.refused, said)


@step("take-file")
def take_task(ready: Ready, lang: Lang, as_stored: SendParameters) -> ib.Event:
    """Check one list, move it to ``pris/`` and start its campaign; or say why not."""
    folder = io.inbox_dir(runtime.data_dir()) / ready.survey
    path = folder / ib.TAKEN / ready.name if ready.in_taken else folder / ready.name
    registry = io.Registry(runtime.state_dir())
    sha = io.sha256_of(path)
    cid = known_id(ib.campaign_id(ready.survey, sha))
    earlier = registry.find(ready.survey, sha)
    if earlier and not ready.in_taken:
        when = _when(str(earlier.get("taken_at", "")), lang)
        io.write_note(
            folder / ib.note_name(ready.name, ib.DUPLICATE_NOTE),
            ib.duplicate_note(when, str(earlier.get("campaign_id", cid)), lang),
        )
        said = ib.outcome_text(ib.Outcome.duplicate, lang, when)
        return ib.Event(ready.survey, io.shown(ready.name), ib.Outcome.duplicate, said, cid)
    if not ready.in_taken:
        checked = io.check_list(path)
        if checked.problem is not None:
            return _refuse(folder, ready.name, checked.problem, lang, checked.detail)
        if _relative(path) is None:
            return _refuse(folder, ready.name, ib.Refusal.outside_project, lang)
        stored = ib.stored_name(
            ready.name, registry.stored_names(ready.survey) | set(io.taken_files(folder)), sha
        )
        path = io.take(folder, ready.name, stored)
        io.remove_stale_notes(folder)  # the note of an earlier version of it, if any
    return _start(registry, ready, path, sha, cid, lang, as_stored)


def _start(
    registry: io.Registry,
    ready: Ready,
    path: Path,
    sha: str,
    cid: str,
    lang: Lang,
    as_stored: SendParameters,
) -> ib.Event:
    """A run of the send deployment on the taken file, paused for approval whatever its size;
    created under the campaign id as its idempotency key (a second start finds the first)."""
    relative = _relative(path)
    shown = io.shown(ready.name)
    if relative is None:
        said = ib.problem_text(ib.Refusal.outside_project, lang)
        return ib.Event(ready.survey, shown, ib.Outcome.refused, said, cid)
    asked = datetime.now(UTC)
    key = f"inbox:{cid}"
    try:
        run = _run_under(key)
        outcome = ib.Outcome.known if run else ib.Outcome.started
        if run is None:
            made = run_deployment(
                SEND_DEPLOYMENT,
                parameters=as_stored(
                    {
                        "survey_id": ready.survey,
                        "recipients": {"kind": ib.source_kind(path.name), "path": relative},
                        "campaign_id": cid,
                        "approval_mode": "pause",
                        "approve_above_recipients": 0,  # always a person's yes before any send
                        "lang": lang,
                    }
                ),
                flow_run_name=cid,
                timeout=0,
                idempotency_key=key,  # should two passes race, the server keeps one run
                tags=["inbox"],
                as_subflow=False,
            )
            run = cast(FlowRun, made)  # a sync call: the run itself, not a coroutine
    except Exception as exc:  # the server down, the deployment missing: tried again next pass
        get_run_logger().warning("%s: %s", cid, mask(f"{type(exc).__name__}: {exc}"))
        said = ib.problem_text(ib.Refusal.start_failed, lang)
        return ib.Event(ready.survey, shown, ib.Outcome.refused, said, cid)
    registry.record(
        ready.survey,
        sha,
        campaign_id=cid,
        file=path.name,
        dropped_as=ready.name,
        taken_at=asked.isoformat(timespec="seconds"),
        flow_run_id=str(run.id),
    )
    link = url_for(run) or ""
    return ib.Event(ready.survey, shown, outcome, ib.outcome_text(outcome, lang), cid, link)


def _run_under(key: str) -> FlowRun | None:
    """The send deployment's run made under this idempotency key, if any (the registry was
    lost, or the watcher stopped after the start)."""
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(SEND_DEPLOYMENT)
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(idempotency_key=FlowRunFilterIdempotencyKey(any_=[key])),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            limit=1,
        )
    return found[0] if found else None


def _relative(path: Path) -> str | None:
    """The path the send run is given: relative to the data folder, which the send form reads
    from (flows.parameters.confine) and every worker of a shared folder sees, wherever its clone
    lies (a deployment's form takes no absolute path); None when the file is outside it."""
    try:
        relative = Path(os.path.relpath(path.resolve(), runtime.data_dir().resolve()))
    except ValueError:  # another drive (Windows)
        return None
    return None if relative.parts[:1] == ("..",) else relative.as_posix()


def _when(stamp: str, lang: Lang) -> str:
    try:
        return i18n.when(datetime.fromisoformat(stamp), PARIS, lang)
    except ValueError:
        return stamp or "?"


def report(events: list[ib.Event], lang: Lang) -> str | None:
    """Each event in the run's log, and the artifact when something was done; the refusal's
    one line (None: nothing was refused)."""
    logger = get_run_logger()
    folder = str(io.inbox_dir(runtime.data_dir()))
    if not events:
        logger.info(ib.say(lang, "nothing", folder=folder))
        return None
    for event in events:
        refused = event.outcome in (ib.Outcome.refused, ib.Outcome.bad_folder)
        (logger.warning if refused else logger.info)(ib.log_line(event, lang))
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=ib.markdown(events, folder, lang),
        description=ib.say(lang, "title"),
    )
    return ib.refused_line(events, lang)


__all__ = ["SEND_DEPLOYMENT", "Looked", "Ready", "look_task", "report", "take_task"]
