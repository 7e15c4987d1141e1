"""The alerts' Prefect side: the event of a campaign that ends incomplete, and the command that
creates the automations (``python -m tasks.alerts``, see ``tasks/alerts/__init__.py``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound

from tasks.alerts import (
    AUTOMATIONS_FILE,
    HEARTBEAT_REMINDER,
    INCOMPLETE_EVENT,
    RESOURCE_PREFIX,
    AlertsError,
    incomplete_payload,
    load_automations,
    split_block_slug,
    with_block,
)


def emit_campaign_outcome(summary: Mapping[str, Any]) -> None:
    """Emit ``survey.campaign.incomplete`` when the campaign's summary owes the operator a word."""
    payload = incomplete_payload(summary)
    if payload is None:
        return
    campaign_id = str(summary["campaign_id"])
    emit_event(
        event=INCOMPLETE_EVENT,
        resource={
            "prefect.resource.id": RESOURCE_PREFIX + campaign_id,
            "prefect.resource.name": campaign_id,
        },
        payload=payload,
    )


def create_automations(path: Path, block: str) -> str:
    """Create (or replace) the automations of ``path``, their notifications sent through the
    notification block ``block`` (``TYPE/NAME``). Returns what Prefect's CLI printed."""
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
