"""The campaign's summary, typed: the send command's last JSON line and ``summary.json``.

Its keys, their order and their JSON types are a contract (other tools read the line): the
fields below are declared in that order, and a key that only some campaigns have (a dry run's
``would_send``, an approval) is written only when it was given. Reading a summary written by an
older or newer version keeps the keys this one does not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# int stays int and float stays float (a cost of 0 is written 0, as it always was)
Number = int | float


class CampaignSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    campaign_id: str
    survey_id: str | None = None
    loaded: int = 0
    sent: int = 0
    failed: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)  # reason -> rows
    failed_reasons: dict[str, int] = Field(default_factory=dict)
    nb_sms: int = 0
    cost: Number = 0
    cost_estimated: bool = False  # some chunks priced at what the gateway charged elsewhere
    currency: str = "EUR"
    slots: list[str] = Field(default_factory=list)  # ISO 8601, the scheduled chunks'
    sent_at_once: bool = False
    chunks: dict[str, int] = Field(default_factory=dict)  # state -> chunks
    territories: dict[str, dict[str, int]] = Field(default_factory=dict)  # outcome counts
    slot_explanations: dict[str, str] = Field(default_factory=dict)
    slot_plan: dict[str, dict[str, Any]] | None = None  # absent from summaries before 13
    credits_before: Number | None = None
    credits_after: Number | None = None
    dry_run: bool = False
    duration_seconds: Number | None = None
    report_dir: str = ""
    would_send: int | None = None  # a dry run's
    estimated_cost: Number | None = None  # a dry run's
    send_seconds: Number | None = None
    plan: list[dict[str, Any]] | None = None  # a dry run's (or a held campaign's) chunks
    approval: dict[str, Any] | None = None  # decision, reasons, comment

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def complete(self) -> bool:
        """Whether this is a send run's summary (not the bare one of a missing file)."""
        return "loaded" in self.model_fields_set

    def as_json(self) -> dict[str, Any]:
        """The contract's dict: every key given, in the declared order, then unknown ones."""
        return self.model_dump(mode="json", exclude_unset=True)

    def line(self) -> str:
        return json.dumps(self.as_json(), ensure_ascii=False)


def read_summary(report_dir: Path, campaign_id: str) -> CampaignSummary:
    """A campaign's ``summary.json``, or a bare summary (``complete`` False) when it is missing
    or unreadable: the follow-up still reports what the gateway says."""
    try:
        return CampaignSummary.model_validate_json((report_dir / "summary.json").read_bytes())
    except (OSError, ValidationError):
        return CampaignSummary(campaign_id=campaign_id)
