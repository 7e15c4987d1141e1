"""Watch the inboxes: a list dropped in ``<data folder>/inbox/<survey id>/`` becomes a send
campaign that waits for a person's approval.

The deployment ``watch-inboxes/inbox`` (deployments/prefect.yaml) runs it every two minutes,
active as shipped: it texts nobody (every campaign it starts pauses for approval). Each pass:

1. looks at the survey folders; a folder name that is not a survey id, or a file that is not a
   CSV or Excel list, gets a note (``LISEZ-MOI.txt``, ``<file>.erreur.txt``);
2. for each list unchanged between two looks, checks it with the recipients' loaders, moves it
   to ``<survey>/pris/`` and starts a run of ``send-survey-campaign/weekly-survey`` on it, under a
   campaign id made from the survey and the file's content, approval forced
   (``approval_mode="pause"``, ``approve_above_recipients=0``); the same content dropped again
   starts nothing;
3. says what it did: the run's log, the artifact ``boite-de-depot``, and a Failed state named
   "Fichier refusé" whose message is the reason when a file could not be taken.

Once by hand: ``python -m flows.inbox`` (needs the Prefect server of the deployments; the last
line on stdout is a JSON object of counts).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Any, get_type_hints

from prefect import flow
from prefect.states import Completed, Failed, State
from pydantic import Field, TypeAdapter

from tasks import inbox as ib
from tasks.i18n import DEFAULT_LANG, Lang
from tasks.steps.inbox import look_task, report, take_task

InboxLanguage = Annotated[
    Lang,
    Field(
        # A top-level parameter's title is its Python name unless set here (Prefect's form).
        json_schema_extra={
            "title": "Langue",
            "description": "Langue des notes et du compte rendu : fr (français) ou en (anglais).",
        }
    ),
]


@flow(name="watch-inboxes", log_prints=False, persist_result=False)
def watch_inboxes(lang: InboxLanguage = DEFAULT_LANG) -> State[Any]:
    """Start a campaign waiting for approval on each new list dropped in the inboxes."""
    looked = look_task(lang)
    events = [*looked.events, *(take_task(ready, lang, as_stored) for ready in looked.ready)]
    counts = dict(Counter(str(e.outcome) for e in events))
    refused = report(events, lang)
    if refused:
        return Failed(name=ib.say(lang, "state.name.refused"), message=refused, data=counts)
    return Completed(message=ib.done_line(events, lang), data=counts)


def as_stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """The send run's parameters as its own form stores them: each value validated and written
    out by the send flow's annotation (a choice the form shows by its label is sent as that
    label), so the server's check of the deployment's parameters takes them."""
    from flows.survey_campaign import send_survey_campaign

    hints = get_type_hints(send_survey_campaign.fn, include_extras=True)
    stored = {}
    for name, value in values.items():
        adapter: TypeAdapter[Any] = TypeAdapter(hints[name])
        stored[name] = adapter.dump_python(adapter.validate_python(value), mode="json")
    return stored


def main(argv: list[str] | None = None) -> int:
    state = watch_inboxes(return_state=True)
    counts = state.result(raise_on_failure=False)
    print(json.dumps(counts if isinstance(counts, dict) else {}, ensure_ascii=False), flush=True)
    if state.is_completed():
        return 0
    print(f"error: {state.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
