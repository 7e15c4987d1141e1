"""Flow runs named and tagged after their campaign, so the Runs page finds them by campaign."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for

from tasks.errors import known_id
from tasks.i18n import DEFAULT_LANG, LANGS, Lang
from tasks.plan import new_campaign_id

log = logging.getLogger("survey.runs")


def run_lang(given: str | None = None) -> Lang:
    """The language a step speaks: the one it was given, else its flow run's ``lang``
    parameter (a flow that does not hand it down still has its log lines in its campaign's
    language), else the default."""
    for lang in (given, _parameter("lang")):
        if lang in LANGS:
            return lang  # type: ignore[return-value]
    return DEFAULT_LANG


def _parameter(name: str) -> object:
    try:
        return flow_run.parameters.get(name)
    except Exception:  # outside a flow run, or its context gone: no parameter to read
        return None


def run_name(campaign_id: str, role: str | None = None) -> str:
    """``<campaign id>``, or ``<campaign id> · follow-up`` / ``· cancel``."""
    return f"{campaign_id} · {role}" if role else campaign_id


def campaign_tag(campaign_id: str) -> str:
    return f"campaign:{campaign_id}"


def with_tag(tags: list[str], tag: str) -> list[str]:
    return tags if tag in tags else [*tags, tag]


def name_this_run(campaign_id: str, role: str | None = None) -> None:
    """Rename the current flow run and tag it ``campaign:<id>``. The campaign id of a new
    campaign is only known inside the run, hence a rename rather than ``flow_run_name``.
    Cosmetic: a failure is logged, never fatal."""
    run_id = flow_run.id
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(run_id)
            client.update_flow_run(
                run.id,
                name=run_name(campaign_id, role),
                tags=with_tag(list(run.tags or []), campaign_tag(campaign_id)),
            )
    except Exception as exc:  # a name is worth a warning, not a campaign
        log.warning("could not name the flow run after campaign %s: %s", campaign_id, exc)


def campaign_id_of_run(survey_id: str) -> str:
    """A new campaign's id. A scheduled run's comes from its schedule slot, so a duplicate or
    retried scheduled run resumes the same campaign; a manual run's from its flow run, so a retry
    of it resumes too."""
    run_id = str(flow_run.id or "")
    if not run_id:
        return new_campaign_id(survey_id, datetime.now(UTC))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(uuid.UUID(run_id))
    if run.deployment_id and run.auto_scheduled and run.expected_start_time:
        stem = new_campaign_id(survey_id, run.expected_start_time).rsplit("-", 1)[0]
        return known_id(f"{stem}-{str(run.deployment_id)[:6]}")
    stem = new_campaign_id(survey_id, datetime.now(UTC)).rsplit("-", 1)[0]
    return known_id(f"{stem}-{run_id[:8]}")


def replace_own_parameters(shown: dict[str, Any]) -> None:
    """Store ``shown`` as the current flow run's parameters of those names (what the UI shows
    and Prefect's database keeps); nothing outside a flow run."""
    run_id = flow_run.id
    if not run_id:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(uuid.UUID(str(run_id)), parameters=shown)


CANCEL_DEPLOYMENT = "cancel-campaign/cancel-campaign"  # flow name / deployment name


def cancel_link(campaign_id: str, lang: str = "fr") -> str | None:
    """The Prefect UI's Custom run page of the cancel deployment, its form already filled with
    ``campaign_id`` (and the campaign's language); None when the cancel is not deployed on this
    server (a command-line run without deployments) or no UI address is known."""
    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(CANCEL_DEPLOYMENT)
        page = url_for("deployment", obj_id=deployment.id)
    except Exception:  # no deployment, no UI: no link
        return None
    if not page:
        return None
    # The UI's run page reads ``?parameters=`` as URI-encoded JSON, and its own links encode it
    # once more as a query value (prefect-ui-library: routes.deploymentFlowRunCreate).
    filled = json.dumps({"campaign_id": campaign_id, "lang": lang}, separators=(",", ":"))
    return f"{page}/run?parameters={quote(quote(filled, safe=''), safe='')}"
