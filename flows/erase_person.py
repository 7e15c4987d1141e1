"""Erasure on request (RGPD art. 17): one person out of every local file and table.

    python -m flows.erase_person --phone NUMBER      # any format: 06 12 34 56 78, +33612345678…

First the person's keyed value goes into the never-text store (in the ledger's database, never
the number), so that nobody on any worker texts them again, whatever fails next. The ledger
keeps their chunks with a keyed hash in place of the number (exactly-once and the frequency cap
still hold), their rows leave every table of the data folder (``SURVEY_DATA_DIR``: ``state/``
and ``reports/``, whatever the column), and their number is masked in every text file there.
What was found is printed with the number masked; the last line on stdout is a JSON object of
counts. The full number never reaches a log, an artifact or the output.

The number and Prefect: a flow run's parameters are stored in Prefect's database and shown in
its UI. ``phone`` is a secret string, so a run started here (in-process) is stored with
``**********``; a run started from the deployment's form is stored with what was typed until it
starts, when the flow replaces its own stored parameter by the masked number.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated, Any

from prefect import flow
from prefect.states import State
from pydantic import Field, SecretStr

from flows import ending
from flows.cli import failure_exit
from flows.parameters import operator_words
from tasks import runtime
from tasks.errors import OperatorError
from tasks.numbers import mask_number, parse_loose
from tasks.steps.privacy import erase_task
from tasks.steps.runs import replace_own_parameters


def _mask_own_parameter(phone: SecretStr) -> None:
    """Replace this run's stored ``phone`` by the masked number (see the module docstring)."""
    e164 = parse_loose(phone.get_secret_value())
    replace_own_parameters({"phone": mask_number(e164) if e164 else "•••"})


@flow(name="erase-person", log_prints=False, persist_result=False)
def erase_person(
    phone: Annotated[
        SecretStr,
        Field(
            **operator_words(
                "Numéro de téléphone",
                "Le numéro à effacer, écrit comme vous voulez (06 12 34 56 78, +33 6...). Il "
                "ne recevra plus jamais de SMS ; partout ailleurs, il est supprimé ou masqué.",
            ),
        ),
    ],
) -> dict[str, Any] | State[Any]:
    """Erase one person's number from the ledger and every local file; suppress it for good."""
    _mask_own_parameter(phone)
    try:
        return erase_task(phone, runtime.ledger_url())
    except OperatorError as exc:
        return ending.failed(exc)


def report_lines(result: dict[str, Any]) -> list[str]:
    """What the command prints: the places, then the JSON counts (number masked)."""
    lines = [
        f"number: {result['number']}",
        f"ledger: {result['ledger_chunks']} chunk(s) in {result['ledger_campaigns']} "
        f"campaign(s) and {result['texted_rows']} frequency-cap row(s) now under a pseudonym"
        + ("" if result["ledger_compacted"] else " (database not compacted: run again later)"),
    ]
    lines += [f"rewritten: {p}" for p in result["files_rewritten"]]
    lines += [f"removed: {p}" for p in result["files_removed"]]
    lines.append(
        "never-text store: " + ("added" if result["suppression_added"] else "already there")
    )
    counts = {
        "number": result["number"],
        "ledger_chunks": result["ledger_chunks"],
        "ledger_campaigns": result["ledger_campaigns"],
        "texted_rows": result["texted_rows"],
        "rows_removed": result["rows_removed"],
        "files_rewritten": len(result["files_rewritten"]),
        "files_removed": len(result["files_removed"]),
        "suppression_added": result["suppression_added"],
    }
    return [*lines, json.dumps(counts, ensure_ascii=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.erase_person",
        description="Erase one phone number from the ledger and every file of the data "
        "folder, and add it to the never-text store.",
    )
    parser.add_argument("--phone", required=True, help="the number, in any format")
    args = parser.parse_args(argv)
    if parse_loose(args.phone) is None:
        print("error: --phone cannot be read as a phone number", file=sys.stderr)
        return 2
    state = erase_person(phone=SecretStr(args.phone), return_state=True)
    result = state.result() if state.is_completed() else None
    if isinstance(result, dict):
        for line in report_lines(result):
            print(line, flush=True)
        return 0
    return failure_exit(state, "erasure failed")


if __name__ == "__main__":
    sys.exit(main())
