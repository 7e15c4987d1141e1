"""The never-text store from the command line: import an opt-out list, check a number, export
for an audit. The store lives in the ledger's database (``SURVEY_LEDGER_URL``) and holds keyed
hashes only (see ``tasks/nevertext.py``); nothing here ever prints or writes a full number.

    python -m flows.never_text import FILE [--reason TEXT]   # an opposition list, a CRM export
    python -m flows.never_text add --phone NUMBER            # one person, by hand
    python -m flows.never_text check --phone NUMBER          # is this person in it, and why
    python -m flows.never_text export FILE                   # hashes, sources, dates: no number
    python -m flows.never_text count
    python -m flows.never_text forget-import --reason TEXT --yes   # undo a mistaken import

The last line on stdout is a JSON object; on an error, one line on stderr and exit 1 (2 for a
bad option).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from tasks import runtime
from tasks.errors import OperatorError, UsageError
from tasks.files import atomic_path
from tasks.nevertext import NeverText, Origin
from tasks.numbers import mask_number, mask_numbers_in_text, parse_loose
from tasks.recipients import load_suppression_list

EXPORT_COLUMNS = ("digest", "source", "reason", "campaign_id", "added_at")


def _store() -> NeverText:
    return runtime.never_text_store(runtime.shared_ledger(runtime.ledger_url()))


def _number(raw: str) -> str:
    e164 = parse_loose(raw)
    if e164 is None:
        raise UsageError("--phone cannot be read as a phone number")
    return e164


def export(store: NeverText, path: Path) -> int:
    """The audit CSV (hashes, sources, reasons, dates, never a number); how many rows."""
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(EXPORT_COLUMNS)
        for e in store.entries():
            added = e.added_at.isoformat()
            writer.writerow([e.digest, e.source, e.reason or "", e.campaign_id or "", added])
            rows += 1
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One command; raises an ``OperatorError`` (UsageError, RecipientsError, LedgerUnavailable:
    one line each) or an OSError."""
    store = _store()
    if args.command == "import":
        listed = load_suppression_list(args.file)
        reason = args.reason or f"list {mask_numbers_in_text(Path(args.file).name)}"
        added = store.add(listed.numbers, Origin.imported, reason)
        return {"read": len(listed.numbers), "added": added, "reason": reason}
    if args.command == "add":
        e164 = _number(args.phone)
        added = store.add([e164], Origin.manual, args.reason or "added by hand")
        return {"number": mask_number(e164), "added": bool(added)}
    if args.command == "check":
        e164 = _number(args.phone)
        found = store.entries_of(e164)
        return {
            "number": mask_number(e164),
            "never_text": bool(found),
            "sources": [
                {"source": e.source, "reason": e.reason, "added_at": e.added_at.isoformat()}
                for e in found
            ],
        }
    if args.command == "export":
        return {"file": args.file, "rows": export(store, Path(args.file))}
    if args.command == "forget-import":
        if not args.yes:
            raise UsageError("forget-import removes people from the never-text store: add --yes")
        return {"reason": args.reason, "removed": store.forget_import(args.reason)}
    return store.counts()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m flows.never_text",
        description="The never-text store (STOP, opposition lists, erasures): keyed hashes in "
        "the ledger's database.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="add every number of an opt-out list (CSV or .xlsx)")
    imp.add_argument("file")
    imp.add_argument("--reason", help="kept with each entry (default: the file's name)")
    for name in ("add", "check"):
        one = sub.add_parser(name, help=f"{name} one number")
        one.add_argument("--phone", required=True, help="the number, in any format")
        if name == "add":
            one.add_argument("--reason", help="kept with the entry")
    exp = sub.add_parser("export", help="an audit CSV: hashes, sources, reasons, dates")
    exp.add_argument("file")
    sub.add_parser("count", help="entries per source and people")
    forget = sub.add_parser("forget-import", help="undo an import made by mistake")
    forget.add_argument("--reason", required=True, help="the import's reason, as exported")
    forget.add_argument("--yes", action="store_true", help="confirm")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except OperatorError as exc:  # masked already
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except (ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {mask_numbers_in_text(message)}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
