"""The inbox for files: its rules as tables (tasks/inbox.py), then the watcher in-process on
Prefect's test server (flows/inbox.py), against a real deployment of the send flow: the run it
creates, the files moved, the notes, the registry. The run itself, paused for approval on a real
worker, is tested in tests/test_ui_inbox.py."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from flows.parameters import ApprovalModeChoice
from tasks import inbox as ib
from tasks.approval import ApprovalMode
from tasks.plan import validate_campaign_id

SHA_A = "a" * 64
SHA_B = "b" * 64


# -- the rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("liste.csv", ib.Kind.table),
        ("Patients décembre.XLSX", ib.Kind.table),
        ("export.tsv", ib.Kind.table),
        ("macro.xlsm", ib.Kind.table),
        ("ancienne.xls", ib.Kind.old_excel),
        ("liste.pdf", ib.Kind.other),
        ("notes.txt", ib.Kind.other),
        ("sans-extension", ib.Kind.other),
        (".cachée.csv", ib.Kind.ignored),
        ("~$liste.xlsx", ib.Kind.ignored),  # Excel's lock file while the list is open
        ("liste.csv.erreur.txt", ib.Kind.ignored),  # our own notes
        ("liste.csv.deja-pris.txt", ib.Kind.ignored),
        ("LISEZ-MOI.txt", ib.Kind.ignored),
        ("Thumbs.db", ib.Kind.ignored),
        ("liste.csv.part", ib.Kind.ignored),  # a copy under way
        ("liste.csv.crdownload", ib.Kind.ignored),
    ],
)
def test_which_files_are_lists(name: str, kind: ib.Kind) -> None:
    assert ib.kind_of(name) == kind


@pytest.mark.parametrize(
    ("first", "second", "now", "whole"),
    [
        (ib.Look(10, 100.0), ib.Look(10, 100.0), 106.0, True),
        (ib.Look(10, 100.0), ib.Look(10, 100.0), 104.0, False),  # too young: may go on growing
        (ib.Look(10, 100.0), ib.Look(20, 101.0), 200.0, False),  # grew between the looks
        (ib.Look(10, 100.0), ib.Look(10, 101.0), 200.0, False),  # rewritten between the looks
        (ib.Look(10, 100.0), None, 200.0, False),  # gone
        (None, ib.Look(10, 100.0), 200.0, False),  # appeared between the looks
    ],
)
def test_a_file_is_taken_once_whole(
    first: ib.Look | None, second: ib.Look | None, now: float, whole: bool
) -> None:
    assert ib.settled(first, second, now) is whole


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("satisfaction-2026", True),
        ("demo_satisfaction", True),
        ("Enquete.Mairie", True),
        ("Enquête satisfaction", False),
        ("-commence-par-un-tiret", False),
        ("a" * 81, False),
        ("", False),
    ],
)
def test_a_survey_folder_is_named_after_its_survey(name: str, valid: bool) -> None:
    assert ib.valid_survey_id(name) is valid


def test_the_campaign_id_comes_from_the_survey_and_the_content() -> None:
    cid = ib.campaign_id("Satisfaction_2026", SHA_A)
    assert cid == validate_campaign_id(cid)
    assert cid.startswith("satisfaction-2026-depot-") and len(cid.rsplit("-", 1)[1]) == 12
    assert ib.campaign_id("Satisfaction_2026", SHA_A) == cid  # the same file again
    assert ib.campaign_id("Satisfaction_2026", SHA_B) != cid  # another list
    assert ib.campaign_id("autre-enquete", SHA_A).rsplit("-", 1)[1] != cid.rsplit("-", 1)[1]
    long = ib.campaign_id("x" * 80, SHA_A)
    assert validate_campaign_id(long) == long and len(long) <= 120


@pytest.mark.parametrize(
    ("name", "taken", "stored"),
    [
        ("liste.csv", set(), "liste.csv"),
        ("liste.csv", {"autre.csv"}, "liste.csv"),
        ("liste.csv", {"liste.csv"}, "liste-aaaaaaaa.csv"),  # the weekly list, same name
        ("liste", {"liste"}, "liste-aaaaaaaa"),
    ],
)
def test_a_taken_file_never_replaces_another(name: str, taken: set[str], stored: str) -> None:
    assert ib.stored_name(name, taken, SHA_A) == stored


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("problem", list(ib.Refusal))
def test_each_refusal_is_one_line_with_a_next_step(problem: ib.Refusal, lang: Any) -> None:
    note = ib.error_note(problem, lang, detail="no phone column found among 3 columns")
    first, *rest = note.splitlines()
    assert first[0].isupper() and first.endswith(".")
    assert " : " in first if lang == "fr" else ": " in first  # what, then what to do
    assert rest == ["", ib.say(lang, "note.detail", detail="no phone column found among 3 columns")]
    assert "\n" not in ib.problem_text(problem, lang)


def test_the_notes_and_the_run_say_it_in_french() -> None:
    assert ib.duplicate_note("7 déc. 2026, 20:15", "s-depot-0123456789ab", "fr") == (
        "Ce fichier a déjà été pris le 7 déc. 2026, 20:15 (campagne s-depot-0123456789ab) : "
        "rien n'est envoyé une seconde fois. Vous pouvez le supprimer.\n"
    )
    assert "renommez ce dossier" in ib.bad_folder_note("Enquête 1", "fr")
    readme = ib.readme("fr")
    assert "pris" in readme and ".erreur.txt" in readme and "5 minutes" in readme
    refused = ib.Event("s", "liste.pdf", ib.Outcome.refused, "ce type de fichier ...")
    started = ib.Event("s", "l.csv", ib.Outcome.started, "campagne créée", "s-depot-1", "http://u")
    assert ib.refused_line([started], "fr") is None
    assert ib.refused_line([started, refused], "fr") == (
        "1 fichier refusé (liste.pdf) : ce type de fichier ..."
    )
    assert ib.refused_line(
        [refused, refused],
        "fr",
    ).startswith("2 fichiers refusés, dont")
    table = ib.markdown([started, refused], "data/inbox", "fr")
    assert table.splitlines()[2:] == [
        "Dossier de dépôt : `data/inbox`",
        "",
        "## Enquête s",
        "",
        "- **l.csv** : campagne créée — campagne [s-depot-1](http://u)",
        "- **liste.pdf** : ce type de fichier ...",
    ]
    odd = ib.Event("s", "*liste_[1].csv", ib.Outcome.refused, "r")
    assert "- **\\*liste\\_\\[1\\].csv** : r" in ib.markdown([odd], "data/inbox", "fr")
    assert ib.done_line([started], "fr") == (
        "campagnes créées : 1 ; déjà créées : 0 ; fichiers déjà pris : 0"
    )


# -- the watcher, in-process ----------------------------------------------------------------------

SURVEY = "satisfaction-2026"
CSV = "id;nom;mobile\n1;Client 1;06 12 34 56 78\n2;Client 2;06 98 76 54 32\n3;Client 3;\n"


def listed(tag: str) -> str:
    """A list of its own: the test server is shared, and a content is a campaign."""
    return CSV.replace("Client 3", f"Client {tag}")


@pytest.fixture(scope="module")
def send_deployment(prefect_harness: None) -> str:
    """The send flow deployed on the test server as weekly-survey (no worker: its runs wait)."""
    from flows.survey_campaign import send_survey_campaign

    deployment = send_survey_campaign.to_deployment(
        name="weekly-survey", parameters={"survey_id": "demo-satisfaction"}
    )
    return str(deployment.apply())


@pytest.fixture
def inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, send_deployment: str) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SURVEY_DATA_DIR", raising=False)
    monkeypatch.setattr(ib, "LOOK_GAP_SECONDS", 0.1)
    return tmp_path / "data" / "inbox"


def drop(folder: Path, name: str, content: str | bytes, age: float = 60) -> Path:
    """A file dropped ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def runs_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
        )


def watch() -> Any:
    from flows.inbox import watch_inboxes

    return watch_inboxes(return_state=True)


def test_a_dropped_list_starts_one_campaign_waiting_for_approval(
    inbox: Path, send_deployment: str
) -> None:
    before = {r.id for r in runs_of(send_deployment)}
    drop(inbox / SURVEY, "liste mai.csv", listed("mai"))
    state = watch()
    assert state.is_completed(), state.message
    assert state.message == "campagnes créées : 1 ; déjà créées : 0 ; fichiers déjà pris : 0"

    [run] = [r for r in runs_of(send_deployment) if r.id not in before]
    params = run.parameters
    cid = params["campaign_id"]
    assert params["survey_id"] == SURVEY
    recipients = params["recipients"]
    assert recipients["path"] == f"inbox/{SURVEY}/pris/liste mai.csv"  # in the data folder
    assert recipients["kind"] == "csv"
    # always a person's yes: the form's "ask in Prefect" choice (as the form stores it)
    mode = TypeAdapter(ApprovalModeChoice).validate_python(params["approval_mode"])
    assert mode == ApprovalMode.pause
    assert params["approve_above_recipients"] == 0
    assert run.name == cid and "inbox" in run.tags
    # the file moved to pris/, where the campaign reads it; the registry knows its content
    assert not (inbox / SURVEY / "liste mai.csv").exists()
    assert (inbox / SURVEY / "pris" / "liste mai.csv").read_text(encoding="utf-8") == listed("mai")
    registry = json.loads((inbox.parent / "state" / "inbox.json").read_text(encoding="utf-8"))
    [record] = registry["surveys"][SURVEY].values()
    assert record["campaign_id"] == cid and record["flow_run_id"] == str(run.id)
    assert (inbox / "LISEZ-MOI.txt").read_text(encoding="utf-8") == ib.readme("fr")

    # The same list dropped again, under another name: recognised, nothing started.
    drop(inbox / SURVEY, "copie de liste.csv", listed("mai"))
    state = watch()
    assert state.is_completed() and "fichiers déjà pris : 1" in (state.message or "")
    assert {r.id for r in runs_of(send_deployment)} - before == {run.id}
    note = (inbox / SURVEY / "copie de liste.csv.deja-pris.txt").read_text(encoding="utf-8")
    assert note.startswith("Ce fichier a déjà été pris le ") and cid in note
    # ... and a third pass does not write about it again
    assert watch().message == "campagnes créées : 0 ; déjà créées : 0 ; fichiers déjà pris : 0"


def test_the_registry_lost_the_same_file_still_starts_nothing_new(
    inbox: Path, send_deployment: str
) -> None:
    drop(inbox / SURVEY, "semaine.csv", listed("registry"))
    assert watch().is_completed()
    before = {r.id for r in runs_of(send_deployment)}
    (inbox.parent / "state" / "inbox.json").unlink()
    drop(inbox / SURVEY, "semaine.csv", listed("registry"))
    state = watch()
    # The copy taken before finds its run under its idempotency key (the campaign id), and
    # is known again; the copy dropped again is then recognised: no second run.
    assert state.message == "campagnes créées : 0 ; déjà créées : 1 ; fichiers déjà pris : 1"
    assert {r.id for r in runs_of(send_deployment)} == before
    assert [p.name for p in (inbox / SURVEY / "pris").iterdir()] == ["semaine.csv"]
    assert (inbox / SURVEY / "semaine.csv.deja-pris.txt").exists()


def test_a_file_still_being_written_waits(inbox: Path, send_deployment: str) -> None:
    path = drop(inbox / SURVEY, "en-cours.csv", listed("en-cours"), age=0)
    before = {r.id for r in runs_of(send_deployment)}
    assert watch().is_completed()
    assert path.exists() and not list((inbox / SURVEY).glob("en-cours.csv.*"))
    assert {r.id for r in runs_of(send_deployment)} == before
    then = time.time() - 60
    os.utime(path, (then, then))
    assert watch().message.startswith("campagnes créées : 1")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "content", "first_line"),
    [
        (
            "sans-numeros.csv",
            "id;nom\n1;Client 1\n",
            ib.error_note(ib.Refusal.no_phone_column, "fr"),
        ),
        ("vide.csv", "", ib.error_note(ib.Refusal.unreadable, "fr")),
        ("ancien.xls", b"\xd0\xcf\x11\xe0", ib.error_note(ib.Refusal.old_excel, "fr")),
        ("courrier.pdf", b"%PDF-1.4", ib.error_note(ib.Refusal.not_a_list, "fr")),
    ],
)
def test_a_file_that_cannot_be_taken_gets_its_reason_beside_it_and_in_the_run(
    inbox: Path, send_deployment: str, name: str, content: str | bytes, first_line: str
) -> None:
    before = {r.id for r in runs_of(send_deployment)}
    drop(inbox / SURVEY, name, content)
    state = watch()
    assert state.is_failed() and state.name == "Fichier refusé"
    reason = first_line.splitlines()[0]
    assert state.message == f"1 fichier refusé ({name}) : {reason[0].lower()}{reason[1:]}"
    note = (inbox / SURVEY / f"{name}.erreur.txt").read_text(encoding="utf-8")
    assert note.splitlines()[0] == reason
    assert (inbox / SURVEY / name).exists()  # left for the operator to fix
    assert {r.id for r in runs_of(send_deployment)} == before
    assert watch().is_completed()  # said once: the next pass does not fail again

    # Fixed and saved again (a while after the note): taken, and the note goes
    note_path = inbox / SURVEY / f"{name}.erreur.txt"
    then = time.time() - 120
    os.utime(note_path, (then, then))
    fixed = name.rsplit(".", 1)[0] + ".csv"
    if fixed != name:
        (inbox / SURVEY / name).unlink()
    drop(inbox / SURVEY, fixed, listed(name), age=30)
    assert watch().message.startswith("campagnes créées : 1")  # type: ignore[union-attr]
    assert not (inbox / SURVEY / f"{name}.erreur.txt").exists()


def test_a_folder_not_named_after_a_survey_gets_a_note(inbox: Path) -> None:
    drop(inbox / "Enquête mairie", "liste.csv", listed("mairie"))
    state = watch()
    assert state.is_failed()
    note = (inbox / "Enquête mairie" / "LISEZ-MOI.txt").read_text(encoding="utf-8")
    assert note.startswith("« Enquête mairie » n'est pas un identifiant d'enquête")
    assert (inbox / "Enquête mairie" / "liste.csv").exists()


def test_numbers_in_a_file_name_are_masked_in_what_the_run_says(
    inbox: Path, send_deployment: str
) -> None:
    from prefect.client.orchestration import get_client

    drop(inbox / SURVEY, "rappel 0612345678.pdf", b"%PDF")
    state = watch()
    assert "0612345678" not in (state.message or "")
    assert "rappel 06" in (state.message or "") and "•" in (state.message or "")
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["boite-de-depot"]))
        )
    shown = json.dumps([a.model_dump(mode="json") for a in found])
    assert found and "rappel" in shown
    assert "0612345678" not in shown


def test_lists_at_the_addresses_of_sources_txt_are_taken_when_it_is_saved(
    inbox: Path, send_deployment: str
) -> None:
    import fsspec

    with fsspec.open("memory://mairie/habitants.csv", "w", encoding="utf-8") as f:
        f.write(listed("sources"))
    folder = inbox / SURVEY
    drop(
        folder,
        "sources.txt",
        "# les listes de la mairie\nmemory://mairie/habitants.csv\n\nmemory://mairie/absente.csv\n",
        age=0,
    )
    state = watch()
    # the first address gives a list, taken in this pass; the second one its reason
    assert state.is_failed() and state.message.startswith(  # type: ignore[union-attr]
        "1 fichier refusé (memory://mairie/absente.csv) : adresse 2 de sources.txt : aucun "
        "fichier à l'adresse memory://mairie/absente.csv"
    )
    assert [p.name for p in (folder / "pris").iterdir()] == ["habitants.csv"]
    note = (folder / "sources.txt.erreur.txt").read_text(encoding="utf-8")
    assert note.startswith("Adresse 2 de sources.txt : ") and "enregistrez sources.txt" in note
    assert watch().message.startswith("campagnes créées : 0")  # type: ignore[union-attr]

    # Saved again without the bad address: fetched again, the same list is not taken twice
    drop(folder, "sources.txt", "memory://mairie/habitants.csv\n", age=-5)
    state = watch()
    assert state.message == "campagnes créées : 0 ; déjà créées : 0 ; fichiers déjà pris : 0"
    assert not (folder / "sources.txt.erreur.txt").exists()
    assert sorted(p.name for p in folder.iterdir()) == [".sources", "pris", "sources.txt"]
