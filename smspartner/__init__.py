"""SMS Partner gateway: a typed HTTP client, its error tree, and a local simulator of the API.

Purpose: everything that speaks to SMS Partner's HTTP API, and nothing about campaigns. It does
NOT know chunks, ledgers or Prefect (``tasks/`` does); it never retries a send (the caller owns
that policy) and never logs a URL, a body or the key. Anyone may import it; it imports nothing
of the project.

Entry points: ``from smspartner import SMSPartnerClient, Rejected, TransportError`` is all most
callers need; ``smspartner.simulator`` (a real HTTP server, ``python -m smspartner.simulator``)
is imported on its own by tests, the demo and ``make server``.

Layout (public modules, then private ones the client is built from):

- ``errors.py``    the error tree, drawn in its docstring (``SMSPartnerError`` and family)
- ``outcome.py``   what an answer to a send proves (``classify``, ``may_have_landed``); pure
- ``models.py``    the nouns: request limits, ``schedule_at``, ``Credits``, ``StatusEntry``...
- ``client.py``    ``SMSPartnerClient``: one method per endpoint, the one retry loop of reads
- ``_parse.py``    tolerant reading of answers, and which error a read's answer is; pure
- ``_transport.py`` the session, urllib3 subclassing, TLS and proxies, the deadline, log redaction
- ``simulator/``   the local stand-in of the API (state, faults, endpoints, server, CLI)

Pitfall: ``outcome``, ``models`` and ``_parse`` stay free of the HTTP stack, so the decisions
they hold are tested as tables without a network; this face loads the client (and requests) only
when ``SMSPartnerClient`` is first asked for, so importing them does not pull it in.
"""

from typing import TYPE_CHECKING, Any

from smspartner._parse import normalise_status, parse_gateway_date
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
from smspartner.models import (
    MAX_NUMBERS_PER_SEND,
    TAG_PATTERN,
    Credits,
    Exchange,
    StatusEntry,
    StopEntry,
    schedule_at,
)
from smspartner.outcome import Kind, Refusal, SendOutcome, classify

if TYPE_CHECKING:
    from smspartner.client import SMSPartnerClient
else:

    def __getattr__(name: str) -> Any:
        # The client (and with it requests and urllib3) loads when first asked for: the pure
        # modules (errors, outcome, models, _parse) and the rules that use them stay free of the
        # HTTP stack.
        if name != "SMSPartnerClient":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        from smspartner.client import SMSPartnerClient

        globals()[name] = SMSPartnerClient
        return SMSPartnerClient


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
