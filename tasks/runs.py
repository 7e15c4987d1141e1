"""Flow runs named and tagged after their campaign, so the Runs page finds them by campaign."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from smspartner.errors import mask_phone_numbers
from tasks.errors import SurveyError, known_id

log = logging.getLogger("survey.runs")


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
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

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
    except Exception as exc:  # noqa: BLE001 - a name is worth a warning, not a campaign
        log.warning("could not name the flow run after campaign %s: %s", campaign_id, exc)


def campaign_id_of_run(survey_id: str) -> str:
    """A new campaign's id. A scheduled run's comes from its schedule slot, so a duplicate or
    retried scheduled run resumes the same campaign; a manual run's from its flow run, so a retry
    of it resumes too."""
    import uuid
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    from tasks.campaign import new_campaign_id

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


CANCEL_DEPLOYMENT = "cancel-campaign/cancel-campaign"  # flow name / deployment name


def cancel_link(campaign_id: str) -> str | None:
    """The Prefect UI page of the cancel deployment (its Run form takes the campaign id), or
    None when it is not deployed on this server (a command-line run without deployments)."""
    from prefect.client.orchestration import get_client
    from prefect.utilities.urls import url_for

    try:
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(CANCEL_DEPLOYMENT)
        return url_for("deployment", obj_id=deployment.id)
    except Exception:  # noqa: BLE001 - no deployment, no UI: no link
        return None


class MaskedError(RuntimeError):
    """An unexpected error whose text quoted a phone number: the same error, number masked."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def masked_errors(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Mask phone numbers in the text of any exception leaving a task: Prefect writes it to the
    run's state message, logs and events, which the UI shows and its database keeps (a database
    error quotes the value it choked on: ``invalid input syntax ... "06 12 34 56 78"``)."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except SurveyError:
            raise  # masked when made, campaign ids kept (tasks/errors.py)
        except Exception as exc:
            said = f"{type(exc).__name__}: {exc}"
            masked = mask_phone_numbers(said)
            if masked == said:
                raise
            raise MaskedError(masked).with_traceback(exc.__traceback__) from None

    return wrapper
