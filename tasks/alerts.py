"""Alerts for the operator: the event a campaign emits when it ends incomplete, and the command
that creates the Prefect automations of ``deployments/automations.yaml``.

The send flow calls :func:`emit_campaign_outcome` with its summary as it ends. When chunks
failed or are left in doubt, it emits ``survey.campaign.incomplete`` on the resource
``survey.campaign.<campaign_id>``, with counts only (no number, no key); inside a flow run
Prefect relates the event to that run, its flow and deployment by itself.

An automation's notification names its block by id, which a file kept in git cannot know. So
the file holds ``{{ block_document_id }}`` and this command puts in the id of the block the
operator named, then hands the file to Prefect's own ``prefect automation create``::

    python -m tasks.alerts --block custom-webhook/campaign-alerts

Automations of the same names are replaced, so running it again after editing the file (or
to point the alerts at another block) leaves one automation of each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks import ledger as lg
from tasks.errors import SurveyError

INCOMPLETE_EVENT = "survey.campaign.incomplete"
RESOURCE_PREFIX = "survey.campaign."
BLOCK_PLACEHOLDER = "{{ block_document_id }}"
AUTOMATIONS_FILE = Path(__file__).resolve().parents[1] / "deployments" / "automations.yaml"
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
    failed_chunks = int(chunks.get(lg.FAILED, 0))
    in_doubt_chunks = int(chunks.get(lg.IN_DOUBT, 0))
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


def emit_campaign_outcome(summary: Mapping[str, Any]) -> None:
    """Emit ``survey.campaign.incomplete`` when the campaign's summary owes the operator a word."""
    payload = incomplete_payload(summary)
    if payload is None:
        return
    from prefect.events import emit_event

    campaign_id = str(summary["campaign_id"])
    emit_event(
        event=INCOMPLETE_EVENT,
        resource={
            "prefect.resource.id": RESOURCE_PREFIX + campaign_id,
            "prefect.resource.name": campaign_id,
        },
        payload=payload,
    )


# -- creating the automations ----------------------------------------------------------------------


class AlertsError(SurveyError):
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


def create_automations(path: Path, block: str) -> str:
    """Create (or replace) the automations of ``path``, their notifications sent through the
    notification block ``block`` (``TYPE/NAME``). Returns what Prefect's CLI printed."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore
    from prefect.exceptions import ObjectNotFound

    kind, name = split_block_slug(block)
    automations = load_automations(path)
    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name=name, block_type_slug=kind)
        except ObjectNotFound:
            raise AlertsError(f"no block {block!r} on this Prefect server") from None
        schema = document.block_schema
        if schema is None or "notify" not in (schema.capabilities or []):
            raise AlertsError(f"block {block!r} cannot send notifications")
        filled = with_block(automations, str(document.id))
        for automation in filled:  # a file Prefect would refuse replaces nothing
            try:
                AutomationCore.model_validate(automation)
            except ValueError as exc:
                raise AlertsError(f"{automation.get('name')!r} is not valid: {exc}") from None
        for automation in filled:
            for old in client.read_automations_by_name(str(automation["name"])):
                client.delete_automation(old.id)
    with tempfile.TemporaryDirectory(prefix="automations-") as tmp:
        resolved = Path(tmp) / "automations.json"
        resolved.write_text(json.dumps({"automations": filled}), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "automation", "create", "--from-file", str(resolved)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        said = [ln.strip() for ln in f"{done.stderr}\n{done.stdout}".splitlines() if ln.strip()]
        # One line: the last one Prefect printed says why (a traceback ends with its error).
        last = said[-1] if said else f"exit code {done.returncode}"
        raise AlertsError(f"prefect automation create failed: {last}")
    return done.stdout + HEARTBEAT_REMINDER


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tasks.alerts",
        description="Create the campaign alerts (Prefect automations) of "
        "deployments/automations.yaml, sending through a notification block.",
    )
    p.add_argument(
        "--block",
        required=True,
        help="the notification block, TYPE/NAME as `prefect block ls` shows it "
        "(e.g. custom-webhook/campaign-alerts, slack-webhook/ops)",
    )
    p.add_argument("--file", type=Path, default=AUTOMATIONS_FILE, help="the automations file")
    args = p.parse_args(argv)
    try:
        print(create_automations(args.file, args.block), end="")
    except (AlertsError, OSError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
