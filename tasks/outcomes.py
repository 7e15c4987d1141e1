"""The vocabulary every step shares: territories, per-row outcomes and reject reasons.

Every row that enters a campaign leaves with exactly one outcome: ``sent``, ``failed`` or
``rejected`` with one of the reasons below. Keeping the reasons in one place lets the report, the
CLI summary and the tests agree on their spelling.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

# French territories we plan slots for (compliance.md section 4). "FR" is metropolitan France.
TERRITORIES: Final = ("FR", "GP", "MQ", "GF", "RE", "YT", "PM", "NC", "PF", "WF")

SENT: Final = "sent"
FAILED: Final = "failed"
REJECTED: Final = "rejected"

# Reject reasons (documented in the README). A row gets the first that applies, in this order.
EMPTY: Final = "empty"  # blank cell
NOT_A_NUMBER: Final = "not_a_number"  # letters, scientific notation, text that is not a number
MULTIPLE_NUMBERS: Final = "multiple_numbers"  # two numbers in one cell
INVALID: Final = "invalid"  # digits, but not a valid number (too short, unassigned range)
NOT_MOBILE: Final = "not_mobile"  # valid, but a landline, VoIP, toll-free or premium number
FOREIGN: Final = "foreign"  # valid mobile outside France and its territories
DUPLICATE: Final = "duplicate"  # same E.164 as an earlier row (first occurrence wins)
OPTED_OUT: Final = "opted_out"  # on the gateway's stop list or the local suppression list
RECENTLY_SURVEYED: Final = "recently_surveyed"  # texted by another campaign within the cap
NO_SLOT: Final = "no_slot"  # no allowed delivery slot within the planning horizon
GATEWAY_REJECTED: Final = "gateway_rejected"  # the gateway refused the number (code 9)

# Failure reasons recorded on chunks (a failed row keeps its chunk's reason).
INSUFFICIENT_CREDITS: Final = "insufficient_credits"
BUDGET_EXCEEDED: Final = "budget_exceeded"
GATEWAY_ERROR: Final = "gateway_error"
GATEWAY_UNAVAILABLE: Final = "gateway_unavailable"  # nothing landed; the gateway never took it
IN_DOUBT: Final = "in_doubt"  # may have landed; the gateway has not shown either way yet

CLEANING_REASONS: Final = (EMPTY, NOT_A_NUMBER, MULTIPLE_NUMBERS, INVALID, NOT_MOBILE, FOREIGN)

# Failure reason of chunks a cancelled campaign will not send (cancelled at the gateway, or
# never sent and cancelled in the ledger so that a rerun skips them).
CAMPAIGN_CANCELLED: Final = "cancelled"

# What the delivery follow-up counts per recipient (smspartner-api.md section 13). ``other`` is
# any status that is none of the three (e.g. "Numéro introuvable") or no status at all.
DELIVERED: Final = "delivered"
NOT_DELIVERED: Final = "not_delivered"
WAITING: Final = "waiting"
OTHER_STATUS: Final = "other"
DELIVERY_STATUSES: Final = (DELIVERED, NOT_DELIVERED, WAITING, OTHER_STATUS)

# What cancelling a campaign did with each chunk (smspartner-api.md section 4.5).
CANCEL_DONE: Final = "cancelled"  # cancelled at the gateway by this run
CANCEL_ALREADY: Final = "already_cancelled"  # gateway code 5, or cancelled by an earlier run
CANCEL_TOO_LATE: Final = "too_late"  # five minutes or less before its slot (or gateway code 6)
CANCEL_ALREADY_SENT: Final = "already_sent"  # sent at once, slot passed, or gateway code 7
CANCEL_NOT_FOUND: Final = "not_found"  # gateway code 4, or no message id to cancel
CANCEL_NOT_SENT: Final = "not_sent_cancelled"  # never reached the gateway: cancelled in the ledger
CANCEL_IN_PROGRESS: Final = "in_progress"  # another run is sending it right now
CANCEL_OUTCOMES: Final = (
    CANCEL_DONE,
    CANCEL_ALREADY,
    CANCEL_TOO_LATE,
    CANCEL_ALREADY_SENT,
    CANCEL_NOT_FOUND,
    CANCEL_NOT_SENT,
    CANCEL_IN_PROGRESS,
)


class Problem(BaseModel):
    """An expected failure, said in one line (no traceback in the UI or on the terminal)."""

    message: str
