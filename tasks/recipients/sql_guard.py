"""The read-only guard of the recipients query: pure text analysis, no database.

A small tokenizer of each server's lexical rules (``sql_code``) blanks literals and comments;
``sql_refusal`` then says why a query is refused (several statements, not a SELECT, a write
keyword or INTO), or None. It refuses what it cannot read for certain (``SQLUnreadable``):
MySQL's executable comments, ``#``, unclosed quotes, stray ``$``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.errors import OperatorError

_IDENT = r"[^\W\d]\w*"
_TABLE_NAME = re.compile(rf"({_IDENT})(?:\.({_IDENT}))?")
_LEADING_WORD = re.compile(r"[\s(]*(\w+)")
# Writes that can hide inside a statement that starts with SELECT or WITH; INTO also writes
# (SELECT ... INTO OUTFILE / DUMPFILE / @variable / new_table).
_WRITE_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|UPSERT|DROP|ALTER|CREATE|TRUNCATE|GRANT|REVOKE"
    r"|RENAME|CALL|EXEC|EXECUTE|COPY|VACUUM|REINDEX|ATTACH|DETACH|PRAGMA|INTO|OUTFILE|DUMPFILE)\b",
    re.IGNORECASE,
)


class SQLUnreadable(OperatorError, ValueError):
    """Text the guard cannot read for certain as the server would: str() says what."""


@dataclass(frozen=True)
class _Lexicon:
    """How a server's SQL lexer treats the characters around literals and comments."""

    refused: str  # characters outside literals whose reading depends on the server
    dollar_quotes: bool  # PostgreSQL: $$...$$ and $tag$...$tag$ are strings
    brackets: bool  # SQLite: [name] is a quoted identifier
    dash_needs_space: bool  # MySQL: "--" opens a comment only before a space


_LEXICONS = {
    "postgresql": _Lexicon("", dollar_quotes=True, brackets=False, dash_needs_space=False),
    # "#" opens a comment on MySQL: it could hide a quote from the guard, or the guard one.
    "mysql": _Lexicon("#", dollar_quotes=False, brackets=False, dash_needs_space=True),
    "mariadb": _Lexicon("#", dollar_quotes=False, brackets=False, dash_needs_space=True),
    # SQLite reads "$name(...)" (and @, #, :) as one parameter token that may swallow a quote.
    "sqlite": _Lexicon("$@#:", dollar_quotes=False, brackets=True, dash_needs_space=False),
}
# Another server: refuse every character some server reads in a way of its own.
_ANY_LEXICON = _Lexicon("#$@:[", dollar_quotes=False, brackets=False, dash_needs_space=True)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_QUOTE_NAMES = {"'": "string", '"': "quoted name", "`": "quoted name", "[": "[name]"}


def sql_code(query: str, dialect: str, *, backslash_escapes: bool) -> str:
    """``query`` with each literal, quoted name and comment replaced by one space, as the
    server of ``dialect`` reads it, backslashes escaping quotes or not (MySQL by default, a
    PostgreSQL E'' string). SQLUnreadable for what the guard cannot read for certain: MySQL's
    executable comments (``/*! */``, ``/*M! */``), optimizer hints, nested or unclosed comments
    and quotes, and characters whose meaning depends on the server (``#`` on MySQL, a stray
    ``$`` on PostgreSQL)."""
    lexicon = _LEXICONS.get(dialect, _ANY_LEXICON)
    code: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch in "'\"`" or (ch == "[" and lexicon.brackets):
            i = _quoted_end(query, i, backslash_escapes and ch in "'\"")
            code.append(" ")
        elif query.startswith("--", i):
            if lexicon.dash_needs_space and i + 2 < n and not query[i + 2].isspace():
                raise SQLUnreadable("'--' without a space after it (MySQL reads two minus signs)")
            newline = query.find("\n", i)
            i = n if newline < 0 else newline
            code.append(" ")
        elif query.startswith("/*", i):
            i = _comment_end(query, i)
            code.append(" ")
        elif ch == "$" and lexicon.dollar_quotes:
            i = _dollar_end(query, i, code)
        elif ch in lexicon.refused:
            raise SQLUnreadable(f"{ch!r} outside a literal")
        elif ch == "\x00":
            raise SQLUnreadable("a NUL character")
        else:
            code.append(ch)
            i += 1
    return "".join(code)


def _quoted_end(query: str, start: int, backslash_escapes: bool) -> int:
    """The index after the literal or quoted name opened at ``start``."""
    opening = query[start]
    closing = "]" if opening == "[" else opening
    i, n = start + 1, len(query)
    while i < n:
        ch = query[i]
        if backslash_escapes and ch == "\\":
            i += 2
        elif ch != closing:
            i += 1
        elif closing != "]" and query.startswith(closing, i + 1):  # a doubled quote
            i += 2
        else:
            return i + 1
    raise SQLUnreadable(f"an unclosed {_QUOTE_NAMES[opening]} ({opening}...)")


def _comment_end(query: str, start: int) -> int:
    """The index after the comment opened at ``start`` ("/*")."""
    if query.startswith(("/*!", "/*M!", "/*+"), start):
        # MySQL/MariaDB run what is inside /*! */ and /*M! */; /*+ */ hints can lift limits.
        raise SQLUnreadable(f"an executable comment or hint ({query[start : start + 4]}...*/)")
    end = query.find("*/", start + 2)
    if end < 0:
        raise SQLUnreadable("an unclosed comment (/*...)")
    if "/*" in query[start + 2 : end]:
        # PostgreSQL nests comments, MySQL does not: they would end in different places.
        raise SQLUnreadable("a comment inside a comment")
    return end + 2


def _dollar_end(query: str, start: int, code: list[str]) -> int:
    """PostgreSQL: the index after the dollar quote (or the $1 parameter) at ``start``."""
    before = query[start - 1] if start else " "
    if before.isalnum() or before in "_$" or ord(before) > 0x7F:
        # Inside a name "$" is a letter, after a number it may open a quote: not for certain.
        raise SQLUnreadable("a '$' inside a word")
    tag = _DOLLAR_TAG.match(query, start)
    if tag is None:
        if query[start + 1 : start + 2].isdigit():
            code.append("$")
            return start + 1
        raise SQLUnreadable("a '$' that opens no dollar quote")
    end = query.find(tag[0], tag.end())
    if end < 0:
        raise SQLUnreadable(f"an unclosed dollar quote ({tag[0]}...)")
    code.append(" ")
    return end + len(tag[0])


def sql_refusal(query: str, dialect: str) -> str | None:
    """Why the recipients query is refused on ``dialect`` (one line starting "refusing"), or
    None when it is one statement that only reads: read under both backslash conventions, it
    starts with SELECT or WITH and has no write keyword nor INTO outside literals."""
    for backslash_escapes in (False, True):
        try:
            code = sql_code(query, dialect, backslash_escapes=backslash_escapes)
        except SQLUnreadable as exc:
            return (
                f"refusing a query the guard cannot read for certain: {exc}; "
                "recipients are only read, so give a plain SELECT"
            )
        if ";" in code:
            return "refusing several statements: give a single SELECT statement"
        first = _LEADING_WORD.match(code)
        word = first[1].upper() if first else ""
        if word not in ("SELECT", "WITH"):
            return (
                f"refusing a query that starts with {word or 'no keyword'}: give a table name "
                "or a SELECT (or WITH ... SELECT) statement, recipients are only read"
            )
        write = _WRITE_WORDS.search(code)
        if write is not None:
            return f"refusing a query that contains {write[1].upper()}: recipients are only read"
    return None
