"""The witness phones' steps: read their list (before anything is sent), text them once.

The rules are ``tasks/witnesses.py``'s, the ledger and gateway calls ``tasks/witness_io.py``'s;
these tasks hand them the run's live resources (``tasks.runtime``) and say in the run's log
what happened, numbers masked.
"""

from __future__ import annotations

from prefect import get_run_logger

from smspartner import SMSPartnerClient
from tasks import runtime
from tasks import sendcore as sc
from tasks import witnesses as wt
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.steps import step
from tasks.witness_io import load_witnesses, text_witnesses


@step("read-witnesses")
def read_witnesses_task(named: str | None, lang: Lang = DEFAULT_LANG) -> list[str]:
    """The witnesses' E.164 numbers: from the file the run names, else the worker's
    ``SURVEY_WITNESSES_FILE``, else none. A list that cannot be read stops the campaign here,
    before any send (``WitnessListError``, one line naming the line at fault)."""
    path = runtime.witnesses_file(named)
    if path is None:
        return []
    return list(load_witnesses(path, lang))


@step("text-witnesses")
def witness_task(request: wt.WitnessRequest) -> wt.WitnessResult:
    """Text every witness once per survey of the campaign (or of the witnesses-only run),
    outside the chunks, the frequency cap and the counts."""
    if not request.numbers:
        return wt.WitnessResult(request.campaign_id, request.only)
    ledger = runtime.shared_ledger(request.ledger_url, outage=request.ledger_outage)
    store = runtime.never_text_store(ledger)

    def client() -> SMSPartnerClient:
        return runtime.thread_client(request.base_url, sc.READ_TIMEOUT, request.key_block)

    result = text_witnesses(
        request,
        client=client,
        ledger=ledger,
        opted_out=store.among,
        timeout=sc.READ_TIMEOUT,
    )
    get_run_logger().info("%s", result.summary_line(request.lang))
    return result


__all__ = ["read_witnesses_task", "witness_task"]
