"""SMS Partner gateway: a typed HTTP client, its error tree, and a local simulator of the API.

``from smspartner import SMSPartnerClient, Rejected, TransportError`` is all most callers need;
``smspartner.simulator`` (a real HTTP server) is imported on its own by tests and the demo.
"""

from smspartner.client import (
    MAX_NUMBERS_PER_SEND,
    TAG_PATTERN,
    Credits,
    SMSPartnerClient,
    StatusEntry,
    StopEntry,
    normalise_status,
    parse_gateway_date,
    schedule_at,
)
from smspartner.errors import (
    AuthError,
    CancelError,
    InsufficientCredits,
    NotFound,
    RateLimited,
    Rejected,
    ServerError,
    SMSPartnerError,
    TransportError,
    mask_phone_numbers,
)
from smspartner.outcome import Exchange, Kind, Refusal, SendOutcome, classify

__all__ = [
    "MAX_NUMBERS_PER_SEND",
    "TAG_PATTERN",
    "AuthError",
    "CancelError",
    "Credits",
    "InsufficientCredits",
    "NotFound",
    "RateLimited",
    "Rejected",
    "SMSPartnerClient",
    "SMSPartnerError",
    "SendOutcome",
    "ServerError",
    "StatusEntry",
    "StopEntry",
    "TransportError",
    "Exchange",
    "Kind",
    "Refusal",
    "classify",
    "mask_phone_numbers",
    "normalise_status",
    "parse_gateway_date",
    "schedule_at",
]
