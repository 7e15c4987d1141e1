"""Alerts for the operator: what the event of a campaign that ends incomplete says, and the
automations of ``deployments/automations.yaml`` made ready for Prefect.

This package is the rules and the file (no Prefect); emitting the event and creating the
automations are in ``tasks/steps/alerts.py``, and ``__main__.py`` is the command below. May
import it: any module; it imports no step.

The send flow calls ``tasks.steps.alerts.emit_campaign_outcome`` with its summary as it
ends. When chunks failed or are left in doubt, it emits ``survey.campaign.incomplete`` on the
resource ``survey.campaign.<campaign_id>``, with counts only (no number, no key); inside a flow
run Prefect relates the event to that run, its flow and deployment by itself.

An automation's notification names its block by id, which a file kept in git cannot know. So
the file holds ``{{ block_document_id }}`` and this command puts in the id of the block the
operator named, then hands the file to Prefect's own ``prefect automation create``::

    python -m tasks.alerts --block custom-webhook/campaign-alerts

Automations of the same names are replaced, so running it again after editing the file (or
to point the alerts at another block) leaves one automation of each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import OperatorError
from tasks.outcomes import ChunkState

INCOMPLETE_EVENT = "survey.campaign.incomplete"
RESOURCE_PREFIX = "survey.campaign."
BLOCK_PLACEHOLDER = "{{ block_document_id }}"
AUTOMATIONS_FILE = Path(__file__).resolve().parents[2] / "deployments" / "automations.yaml"
# Prefect 3.9 beats every 180 s by default: the zombie killer's 90 s would crash healthy runs.
HEARTBEAT_REMINDER = (
    "Every worker (or the deployments' job variables) needs PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30:"
    " survey-crash-zombie-runs marks Crashed a deployment run silent for 90 s.\n"
)


# -- the campaign's outcome ------------------------------------------------------------------------


def incomplete_payload(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """What an incomplete campaign's event says (counts only), or None when nothing is owed.

    Incomplete means chunks this campaign failed to send or cannot tell were sent. Rejected rows
    (bad numbers, STOP, frequency cap) and cancelled chunks are the campaign working as asked,
    and a dry run sends nothing: none of them calls for an operator.
    """
    if summary.get("dry_run"):
        return None
    chunks: Mapping[str, int] = summary.get("chunks") or {}
    failed_chunks = int(chunks.get(ChunkState.failed, 0))
    in_doubt_chunks = int(chunks.get(ChunkState.in_doubt, 0))
    if not failed_chunks and not in_doubt_chunks:
        return None
    rejected: Mapping[str, int] = summary.get("rejected") or {}
    reasons: Mapping[str, int] = summary.get("failed_reasons") or {}
    return {
        "loaded": int(summary.get("loaded", 0)),
        "sent": int(summary.get("sent", 0)),
        "failed": int(summary.get("failed", 0)),
        "rejected": int(sum(rejected.values())),
        "failed_chunks": failed_chunks,
        "in_doubt_chunks": in_doubt_chunks,
        "failed_reasons": {str(k): int(v) for k, v in reasons.items()},
    }


# -- creating the automations ----------------------------------------------------------------------


class AlertsError(OperatorError):
    """The automations could not be created: str() says why, in one line."""


def load_automations(path: Path) -> list[dict[str, Any]]:
    """The automations of a file in the form ``prefect automation create`` reads."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "automations" in data:
        data = data["automations"]
    if not isinstance(data, list) or not all(isinstance(a, dict) for a in data):
        raise AlertsError(f"{path}: expected a list of automations under 'automations:'")
    return data


def with_block(automations: Sequence[Mapping[str, Any]], block_id: str) -> list[dict[str, Any]]:
    """The automations with every placeholder block id replaced by ``block_id``."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return block_id if value == BLOCK_PLACEHOLDER else value

    return [fill(dict(a)) for a in automations]


def split_block_slug(slug: str) -> tuple[str, str]:
    """``custom-webhook/campaign-alerts`` -> (block type slug, block name), as Prefect's CLI
    names blocks (``prefect block ls`` shows them so)."""
    kind, sep, name = slug.partition("/")
    if not sep or not kind or not name or "/" in name:
        raise AlertsError(f"--block: expected BLOCK_TYPE/NAME (e.g. custom-webhook/alerts): {slug}")
    return kind, name
