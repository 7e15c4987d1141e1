"""The inbox for files, its I/O: the survey folders, a file's looks and digest, the check of a
list before a campaign is started on it, the notes beside files, and the registry of the files
taken (no Prefect; the rules are in ``tasks/inbox.py``).

Where "taken" is recorded, and why in two places:
- the file itself moves to ``<survey>/pris/`` once checked, before its campaign is started:
  the operator sees at a glance what was taken, the folder keeps only what waits, and the
  campaign reads a file nobody edits any more;
- ``state/inbox.json`` (written atomically) maps each survey's content digests to their
  campaigns: the same list dropped again under another name is recognised without reading
  every file of ``pris/`` again. A file found in ``pris/`` that the registry does not know
  (the watcher stopped between the move and the start) is started at the next pass.
Were the registry lost, nothing is sent twice all the same: the campaign id comes from the
content (``tasks.inbox.campaign_id``), the send deployment's run is created under that id as its
idempotency key, and the ledger never texts anyone twice in one campaign.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks import inbox as ib
from tasks.errors import mask
from tasks.files import write_text_atomic
from tasks.recipients import RecipientsError, find_phone_column

REGISTRY = "inbox.json"  # under the data folder's state/


def inbox_dir(data_dir: Path) -> Path:
    return data_dir / ib.INBOX


def survey_folders(inbox: Path) -> list[Path]:
    """The survey folders of the inbox (not hidden), by name."""
    if not inbox.is_dir():
        return []
    return sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith("."))


def files_in(folder: Path) -> list[str]:
    """The names of the plain files of a folder (its subfolders, ``pris/`` included, are not
    looked into)."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError:
        return []


def look(path: Path) -> ib.Look | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return ib.Look(size=st.st_size, mtime=st.st_mtime)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Checked:
    """A list read as the campaign will read it: its rows, or why it cannot be taken."""

    rows: int = 0
    problem: ib.Refusal | None = None
    detail: str = ""  # the loader's own line, masked (for IT, in the note)


def check_list(path: Path) -> Checked:
    """Read the file with the recipients' loaders (tasks/recipients/): a table with rows and a
    column of phone numbers, or the reason it is not."""
    from tasks.recipients import load_recipients  # pandas and openpyxl, on first use

    try:
        frame = load_recipients(path=path)
    except RecipientsError as exc:
        return Checked(problem=ib.Refusal.unreadable, detail=exc.message)
    if len(frame) == 0:
        return Checked(problem=ib.Refusal.empty)
    try:
        find_phone_column(list(frame.columns))
    except RecipientsError as exc:
        return Checked(rows=len(frame), problem=ib.Refusal.no_phone_column, detail=exc.message)
    return Checked(rows=len(frame))


def write_note(path: Path, text: str) -> bool:
    """Write a note unless it already says that; True when written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    write_text_atomic(path, text)
    return True


def remove_stale_notes(folder: Path) -> None:
    """Our notes whose file is gone (deleted, or replaced by a good one) go too."""
    for name in files_in(folder):
        for suffix in ib.NOTE_SUFFIXES:
            if name.endswith(suffix) and not (folder / name.removesuffix(suffix)).exists():
                (folder / name).unlink(missing_ok=True)


def take(folder: Path, name: str, stored: str) -> Path:
    """Move a checked file into ``pris/`` under ``stored`` (a free name); its new path."""
    taken = folder / ib.TAKEN
    taken.mkdir(exist_ok=True)
    target = taken / stored
    if target.exists():  # a name stored_name did not see: never overwrite a taken file
        raise FileExistsError(f"{target} exists")
    os.replace(folder / name, target)
    return target


def taken_files(folder: Path) -> list[str]:
    return files_in(folder / ib.TAKEN)


def shown(name: str) -> str:
    """A file's name as the UI shows it: numbers in it masked."""
    return mask(name)


class Registry:
    """``state/inbox.json``: per survey, the content digests taken and their campaigns."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / REGISTRY
        self.data: dict[str, Any] = {"version": 1, "surveys": {}}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or unreadable: the ids still guard (above)
            return
        if isinstance(loaded, dict) and isinstance(loaded.get("surveys"), dict):
            self.data = loaded

    def _survey(self, survey: str) -> dict[str, Any]:
        found: dict[str, Any] = self.data["surveys"].setdefault(survey, {})
        return found

    def find(self, survey: str, sha: str) -> dict[str, Any] | None:
        record = self.data["surveys"].get(survey, {}).get(sha)
        return record if isinstance(record, dict) else None

    def stored_names(self, survey: str) -> set[str]:
        return {str(r.get("file")) for r in self.data["surveys"].get(survey, {}).values()}

    def record(self, survey: str, sha: str, **fields: Any) -> None:
        self._survey(survey)[sha] = fields
        self._save()

    def sources_seen(self, survey: str) -> float | None:
        """The modification time of the survey's ``sources.txt`` when last fetched."""
        seen = self.data.get("sources", {}).get(survey)
        return float(seen) if isinstance(seen, int | float) else None

    def saw_sources(self, survey: str, mtime: float) -> None:
        self.data.setdefault("sources", {})[survey] = mtime
        self._save()

    def _save(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, ensure_ascii=False, indent=1))


def place_fetched(fetched: Path, folder: Path, age: float) -> str:
    """Put a fetched list in the survey's folder as if dropped ``age`` seconds ago (whole: it
    was written to the side first), under a name no file there has; that name."""
    name, n = fetched.name, 1
    while (folder / name).exists() or (folder / ib.TAKEN / name).exists():
        n += 1
        name = f"{fetched.stem}-{n}{fetched.suffix}"
    os.replace(fetched, folder / name)
    st = (folder / name).stat()
    os.utime(folder / name, (st.st_atime, st.st_mtime - age))
    return name


__all__ = [
    "Checked",
    "Registry",
    "check_list",
    "files_in",
    "inbox_dir",
    "look",
    "place_fetched",
    "remove_stale_notes",
    "sha256_of",
    "shown",
    "survey_folders",
    "take",
    "taken_files",
    "write_note",
]
