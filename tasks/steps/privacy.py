"""The purge's and the erasure's tasks (RGPD): the ledger's numbers made pseudonyms, the data
folder's files purged or scrubbed. What stays and what goes, and the file I/O, are in
``tasks/privacy.py``.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta
from logging import Logger, LoggerAdapter
from typing import Any

from prefect import get_run_logger
from pydantic import SecretStr

from tasks import folders, runtime
from tasks import ledger as lg
from tasks.errors import UsageError
from tasks.i18n import number, text
from tasks.ledger.draws import Draws
from tasks.nevertext import NeverText, Origin
from tasks.numbers import mask_number, parse_loose
from tasks.numbers.masking import mask_numbers, number_forms, person_pattern, scrubber
from tasks.privacy import (
    FileCounts,
    erase_from_file,
    ledger_files,
    local_files,
    purge_campaign_files,
    purge_orphans,
    rows_numbers,
)
from tasks.steps import step
from tasks.steps.runs import run_lang


@step("purge-personal-data")
def purge_task(ledger_url: str, older_than_days: int) -> dict[str, Any]:
    """Numbers older than the retention period out of the ledger (pseudonyms) and the files. A
    ledger that cannot be reached raises ``LedgerUnavailable`` (the task fails with its line)."""
    logger = get_run_logger()
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=older_than_days)
    counts: dict[str, Any] = {
        "older_than_days": older_than_days,
        "campaigns_purged": 0,
        "campaigns_kept_unfinished": 0,
        "chunks": 0,
        "numbers_pseudonymised": 0,
        "texted_rows": 0,
        "files_rewritten": 0,
        "files_removed": 0,
        "delivery_history_rows": 0,
        "undeliverable_expired": 0,
    }
    files = FileCounts()
    ledger = runtime.open_ledger(ledger_url)
    try:
        scan = ledger.purge_scan(cutoff)
        _purge_due(ledger, scan, cutoff, counts, files, logger)
        gone = NeverText(ledger).purge_history(cutoff)  # delivery statuses past retention
        counts["delivery_history_rows"] = gone["history"]
        counts["undeliverable_expired"] = gone["expired"]
    finally:
        ledger.close()
    # Purged before: their folders again (idempotent), in case a purge stopped between the
    # ledger and the files, or a rerun wrote them anew.
    for cid in scan.purged:
        files.merge(purge_campaign_files(cid, number_forms(rows_numbers(folders.state_dir(cid)))))
    in_ledger = {*scan.due, *scan.unfinished, *scan.purged, *scan.recent}
    files.merge(purge_orphans(in_ledger, cutoff.timestamp()))
    counts["files_rewritten"] = len(files.rewritten)
    counts["files_removed"] = len(files.removed)
    lang = run_lang()
    logger.info(
        text(
            lang,
            "log.purged",
            campaigns=number(counts["campaigns_purged"], lang),
            numbers=number(counts["numbers_pseudonymised"], lang),
            rewritten=number(counts["files_rewritten"], lang),
            removed=number(counts["files_removed"], lang),
        )
    )
    return counts


def _purge_due(
    ledger: lg.Ledger,
    scan: lg.PurgeScan,
    cutoff: datetime,
    counts: dict[str, Any],
    files: FileCounts,
    logger: Logger | LoggerAdapter[Logger],
) -> None:
    """The campaigns past the retention period, one by one: pseudonyms in the ledger, then
    their files (``counts`` and ``files`` added to)."""
    counts["campaigns_kept_unfinished"] = len(scan.unfinished)
    if scan.unfinished:
        lang = run_lang()
        logger.warning(
            text(
                lang,
                "log.purge_kept",
                n=number(len(scan.unfinished), lang),
                campaigns=", ".join(scan.unfinished[:10]),
            )
        )
    for cid in scan.due:
        known = number_forms(ledger.campaign_numbers(cid) | rows_numbers(folders.state_dir(cid)))
        result = ledger.purge_campaign(cid, cutoff, functools.partial(mask_numbers, known=known))
        if result is None:  # a rerun took it up meanwhile
            continue
        Draws(ledger).forget_campaign(cid)  # the draw's figures stay, not who was drawn
        # The report's own lock: never while a run writes this campaign's report.
        with ledger.lock(f"report {cid}"):
            files.merge(purge_campaign_files(cid, known))
        counts["campaigns_purged"] += 1
        counts["chunks"] += result["chunks"]
        counts["numbers_pseudonymised"] += result["numbers"]
        counts["texted_rows"] += result["texted"]


@step("erase-person")
def erase_task(phone: SecretStr, ledger_url: str) -> dict[str, Any]:
    """One person into the never-text store first (whatever fails next, nobody texts them
    again), then out of the ledger (pseudonym) and every file of the data folder."""
    logger = get_run_logger()
    e164 = parse_loose(phone.get_secret_value())
    if e164 is None:
        raise UsageError("the phone number given cannot be read as a phone number")
    masked = mask_number(e164)
    started = time.monotonic()
    ledger = runtime.open_ledger(ledger_url)  # LedgerUnavailable: the task fails with its line
    try:
        store = runtime.never_text_store(ledger)
        added = bool(store.add([e164], Origin.erasure, "erased on request"))
        history_rows = store.forget_history([e164])
        found = ledger.erase_number(e164, scrubber(e164))
        Draws(ledger).forget([e164])  # a sample's draw keeps no trace of them either
        compacted = ledger.compact()
    finally:
        ledger.close()
    pattern, fn = person_pattern(e164), scrubber(e164)
    files = FileCounts()
    exclude = [runtime.state_dir() / "pseudonym.key", *ledger_files(ledger_url)]
    for path in local_files(exclude):
        files.merge(erase_from_file(path, pattern, fn))
    lang = run_lang()
    logger.info(
        text(
            lang,
            "log.erased",
            number=masked,
            chunks=number(found["chunks"], lang),
            campaigns=number(found["campaigns"], lang),
            rewritten=number(len(files.rewritten), lang),
            removed=number(len(files.removed), lang),
        )
    )
    return {
        "number": masked,
        "ledger_chunks": found["chunks"],
        "ledger_campaigns": found["campaigns"],
        "texted_rows": found["texted"],
        "delivery_history_rows": history_rows,
        "ledger_compacted": compacted,
        "rows_removed": files.rows_removed,
        "files_rewritten": files.rewritten,
        "files_removed": files.removed,
        "suppression_added": added,  # the command's JSON key since the CSV days
        "seconds": round(time.monotonic() - started, 3),
    }
