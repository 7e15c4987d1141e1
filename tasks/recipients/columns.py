"""Which column holds the phone numbers: the operator's choice, or a usual header.

Headers are compared without case, accents, spaces or punctuation (``_header_key``); a message
never quotes a column's name (a file without a header has its first row there).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from tasks.recipients.frame import RecipientsError

# Usual headers of a phone column, most specific first: when a file has both "Téléphone" (often a
# landline) and "Portable", the mobile wins. Matching ignores case, accents, spaces and
# punctuation, so "TEL", "Tél." and "tel" are one entry.
PHONE_COLUMN_CANDIDATES: tuple[str, ...] = (
    "mobile",
    "portable",
    "téléphone portable",
    "téléphone mobile",
    "tél portable",
    "tél mobile",
    "numéro de portable",
    "numéro de mobile",
    "numéro portable",
    "numéro mobile",
    "mobile phone",
    "mobile number",
    "phone mobile",
    "cell",
    "cellphone",
    "cell phone",
    "cell number",
    "cellulaire",
    "gsm",
    "msisdn",
    "phone",
    "phone number",
    "phone no",
    "telephone",
    "telephone number",
    "téléphone",
    "tél",
    "tel",
    "numéro de téléphone",
    "n° de téléphone",
    "n° tél",
    "num tel",
    "numéro tel",
    "contact number",
    "numéro",
    "number",
)


_NAME_IT = (
    "name the column that holds the numbers with --phone-column (or the form's Phone column "
    "field), as its header is written"
)


def find_phone_column(columns: Sequence[str], preferred: str | None = None) -> str:
    """preferred (exact, then case/accent-insensitive) or the first usual header found.

    RecipientsError when none: it says how many columns there are and how to name the phone
    column, and never quotes a column's name (a file without a header line has its first row
    there, and a file given by mistake its first line). ``preferred``, typed by the operator,
    is echoed back shortened (and masked, like every message)."""
    names = [str(c) for c in columns]
    if preferred is not None and preferred.strip():
        if preferred in names:
            return preferred
        wanted = _header_key(preferred)
        for name in names:
            if _header_key(name) == wanted:
                return name
        # An operator who named a column expects that one: falling back to another could text
        # the wrong numbers.
        raise RecipientsError(
            f"phone column {_typed(preferred)!r} not found among {_the_columns(len(names))}: "
            f"{_NAME_IT} (case, accents and spaces do not matter){_data_hint(names)}"
        )
    keys = [_header_key(name) for name in names]
    for candidate in PHONE_COLUMN_CANDIDATES:
        wanted = _header_key(candidate)
        for name, key in zip(names, keys, strict=True):
            if key == wanted:
                return name
    raise RecipientsError(
        f"no phone column found among {_the_columns(len(names))}: {_NAME_IT}, or head it "
        f"with a usual name such as Téléphone, Mobile, Portable or phone{_data_hint(names)}"
    )


_TYPED_SHOWN = 40  # characters of an operator's own input echoed in a message


def _typed(text: str) -> str:
    """What the operator typed (a column or sheet name), shortened for a message."""
    text = " ".join(text.split())
    return text if len(text) <= _TYPED_SHOWN else text[: _TYPED_SHOWN - 1] + "…"


def _columns(count: int) -> str:
    return "1 column" if count == 1 else f"{count:,} columns"


def _the_columns(count: int) -> str:
    return "the only column" if count == 1 else f"the {count:,} columns"


def _data_hint(names: Sequence[str]) -> str:
    """A hint (never the text) when a column name looks like a phone number."""
    if any(_looks_like_number(name) for name in names):
        return " (the first line looks like data: is the header line missing?)"
    return ""


def _looks_like_number(cell: str) -> bool:
    return sum(ch.isdigit() for ch in cell) >= 6


def _header_key(name: str) -> str:
    """'Téléphone', 'TELEPHONE ' and 'télé-phone' all give 'telephone'."""
    decomposed = unicodedata.normalize("NFKD", str(name))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in plain.casefold() if ch.isalnum())
