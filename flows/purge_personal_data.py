"""Retention: full phone numbers older than the retention period leave the ledger and the files.

    python -m flows.purge_personal_data [--older-than-days N]    # default 90

For every campaign whose chunks are all final and that saw no activity for N days, the ledger
keeps its chunks (state, tag, counts, costs) with the numbers replaced by keyed hashes, so
nobody is texted twice and the frequency cap still holds; its state folder is removed and its
report folder keeps only the aggregates (see ``tasks/privacy.py``). The never-text store (hashes
only) is not touched: an opposition list outlives the person's data. Idempotent: a second run
changes nothing. The last line on stdout is a JSON object of counts; on an error, one line on
stderr and exit 1 (2 for a bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Annotated, Any

from prefect import flow
from prefect.states import State
from pydantic import Field

from flows import ending
from flows.cli import failure_exit
from flows.parameters import operator_words
from tasks import runtime
from tasks.errors import OperatorError
from tasks.steps.privacy import purge_task

DEFAULT_RETENTION_DAYS = 90


@flow(name="purge-personal-data", log_prints=False, persist_result=False)
def purge_personal_data(
    older_than_days: Annotated[
        int,
        Field(
            ge=0,
            le=3650,
            **operator_words(
                "Durée de conservation (jours)",
                "Les numéros complets des campagnes sans activité depuis ce nombre de jours "
                "sont remplacés par des pseudonymes et retirés des fichiers ; les totaux restent.",
            ),
        ),
    ] = DEFAULT_RETENTION_DAYS,
) -> dict[str, Any] | State[Any]:
    """Remove full phone numbers older than the retention period (RGPD), keeping aggregates."""
    try:
        return purge_task(runtime.ledger_url(), older_than_days)
    except OperatorError as exc:
        return ending.failed(exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.purge_personal_data",
        description="Replace full phone numbers older than the retention period by pseudonyms "
        "in the ledger and remove them from the campaign files.",
    )
    parser.add_argument(
        "--older-than-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help=f"retention period in days (default {DEFAULT_RETENTION_DAYS}; 0: every finished "
        "campaign)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.older_than_days <= 3650:
        print("error: --older-than-days must be between 0 and 3650", file=sys.stderr)
        return 2
    state = purge_personal_data(older_than_days=args.older_than_days, return_state=True)
    if state.is_completed():
        print(json.dumps(state.result(), ensure_ascii=False), flush=True)
        return 0
    return failure_exit(state, "purge failed")


if __name__ == "__main__":
    sys.exit(main())
