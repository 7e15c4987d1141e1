"""The vocabulary every step shares: territories, per-row outcomes, reasons, chunk states,
delivery and cancel outcomes. Enums and their names, nothing else.

Every row that enters a campaign leaves with exactly one outcome: ``sent``, ``failed`` or
``rejected`` with one of the reasons below. Keeping the reasons in one place lets the report, the
CLI summary and the tests agree on their spelling. One spelling each: ``ChunkState.sent`` is the
ledger's chunk state (the send executor's view of the chunk it holds is
``tasks.sendcore.HeldChunk``); the module-level names (``SENT``, ``NO_SLOT``...) are the same
members, for the modules that read better with them. It imports nothing of the project: anything
may import it. A gateway error's line for the operator is ``tasks.errors.gateway_problem``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# French territories we plan slots for (compliance.md section 4). "FR" is metropolitan France.
TERRITORIES: Final = ("FR", "GP", "MQ", "GF", "RE", "YT", "PM", "NC", "PF", "WF")


class Outcome(StrEnum):
    """What became of a row: exactly one of these."""

    sent = "sent"
    failed = "failed"
    rejected = "rejected"


class Reason(StrEnum):
    """Why a row was rejected or failed (documented in the README); values are contracts."""

    # Reject reasons. A row gets the first that applies, in this order.
    empty = "empty"  # blank cell
    not_a_number = "not_a_number"  # letters, scientific notation, text that is not a number
    multiple_numbers = "multiple_numbers"  # two numbers in one cell
    invalid = "invalid"  # digits, but not a valid number (too short, unassigned range)
    not_mobile = "not_mobile"  # valid, but a landline, VoIP, toll-free or premium number
    foreign = "foreign"  # valid mobile outside France and its territories
    duplicate = "duplicate"  # same E.164 as an earlier row (first occurrence wins)
    opted_out = "opted_out"  # on the gateway's stop list or the local suppression list
    recently_surveyed = "recently_surveyed"  # texted by another campaign within the cap
    no_slot = "no_slot"  # no allowed delivery slot within the planning horizon
    not_sampled = "not_sampled"  # eligible, but not drawn in the campaign's random sample
    undeliverable = "undeliverable"  # "Not delivered" in successive campaigns: retired for a time
    gateway_rejected = "gateway_rejected"  # the gateway refused the number (code 9)
    dry_run = "dry_run"  # a dry run (or a campaign not approved) would have sent it: not sent
    # Failure reasons recorded on chunks (a failed row keeps its chunk's reason).
    insufficient_credits = "insufficient_credits"
    budget_exceeded = "budget_exceeded"
    gateway_error = "gateway_error"
    gateway_unavailable = "gateway_unavailable"  # nothing landed; the gateway never took it
    in_doubt = "in_doubt"  # may have landed; the gateway has not shown either way yet
    # A cancelled campaign's chunks: cancelled at the gateway, or never sent and cancelled in
    # the ledger so that a rerun skips them.
    cancelled = "cancelled"
    already_planned = "already_planned"  # a rerun's chunk whose numbers were planned before
    not_planned = "not_planned"  # accepted but in no chunk: only if the ledger lost it


class ChunkState(StrEnum):
    """Where a chunk stands in the ledger."""

    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    in_doubt = "in_doubt"
    cancelled = "cancelled"


class Delivery(StrEnum):
    """What the follow-up counts per recipient (smspartner-api.md section 13). ``other`` is any
    status that is none of the three (e.g. "Numéro introuvable") or no status at all."""

    delivered = "delivered"
    not_delivered = "not_delivered"
    waiting = "waiting"
    other = "other"


class CancelOutcome(StrEnum):
    """What cancelling a campaign did with each chunk (smspartner-api.md section 4.5)."""

    cancelled = "cancelled"  # cancelled at the gateway by this run
    already_cancelled = "already_cancelled"  # gateway code 5, or cancelled by an earlier run
    too_late = "too_late"  # five minutes or less before its slot (or gateway code 6)
    already_sent = "already_sent"  # sent at once, slot passed, or gateway code 7
    not_found = "not_found"  # gateway code 4, or no message id to cancel
    not_sent_cancelled = "not_sent_cancelled"  # never reached the gateway: cancelled here
    in_progress = "in_progress"  # another run is sending it right now


# The names the modules use (members of the enums above, equal to their values as strings).
SENT: Final = Outcome.sent
FAILED: Final = Outcome.failed
REJECTED: Final = Outcome.rejected

EMPTY: Final = Reason.empty
NOT_A_NUMBER: Final = Reason.not_a_number
MULTIPLE_NUMBERS: Final = Reason.multiple_numbers
INVALID: Final = Reason.invalid
NOT_MOBILE: Final = Reason.not_mobile
FOREIGN: Final = Reason.foreign
DUPLICATE: Final = Reason.duplicate
OPTED_OUT: Final = Reason.opted_out
RECENTLY_SURVEYED: Final = Reason.recently_surveyed
NO_SLOT: Final = Reason.no_slot
NOT_SAMPLED: Final = Reason.not_sampled
UNDELIVERABLE: Final = Reason.undeliverable
GATEWAY_REJECTED: Final = Reason.gateway_rejected
DRY_RUN: Final = Reason.dry_run
INSUFFICIENT_CREDITS: Final = Reason.insufficient_credits
BUDGET_EXCEEDED: Final = Reason.budget_exceeded
GATEWAY_ERROR: Final = Reason.gateway_error
GATEWAY_UNAVAILABLE: Final = Reason.gateway_unavailable
IN_DOUBT: Final = Reason.in_doubt
CAMPAIGN_CANCELLED: Final = Reason.cancelled
ALREADY_PLANNED: Final = Reason.already_planned
NOT_PLANNED: Final = Reason.not_planned

CLEANING_REASONS: Final = (EMPTY, NOT_A_NUMBER, MULTIPLE_NUMBERS, INVALID, NOT_MOBILE, FOREIGN)

DELIVERED: Final = Delivery.delivered
NOT_DELIVERED: Final = Delivery.not_delivered
WAITING: Final = Delivery.waiting
OTHER_STATUS: Final = Delivery.other
DELIVERY_STATUSES: Final = tuple(Delivery)

CANCEL_DONE: Final = CancelOutcome.cancelled
CANCEL_ALREADY: Final = CancelOutcome.already_cancelled
CANCEL_TOO_LATE: Final = CancelOutcome.too_late
CANCEL_ALREADY_SENT: Final = CancelOutcome.already_sent
CANCEL_NOT_FOUND: Final = CancelOutcome.not_found
CANCEL_NOT_SENT: Final = CancelOutcome.not_sent_cancelled
CANCEL_IN_PROGRESS: Final = CancelOutcome.in_progress
CANCEL_OUTCOMES: Final = tuple(CancelOutcome)
