"""Recipients from a database: one read-only SELECT under a statement timeout.

The query is checked by ``sql_guard`` first; the connection is then put in read-only mode
(PostgreSQL, MariaDB/MySQL, SQLite), so a statement that slips past the check is refused by the
server, and the rows are fetched in chunks through a server-side cursor, every value as text.
Messages show the URL with its password masked (``mask_db_url``).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import NullPool

from tasks import dburl
from tasks.recipients.frame import RecipientsError, _dedupe, _first_line
from tasks.recipients.sql_guard import _TABLE_NAME, sql_refusal

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 300.0


def mask_db_url(url: str) -> str:
    """URL with every secret (password, ``?password=``...) shown as '***'; never raises."""
    return dburl.mask(url)


def _load_sql(db_url: str, query: str, chunksize: int, timeout_s: float) -> pd.DataFrame:
    shown = mask_db_url(db_url)
    url = _parse_db_url(db_url, shown)
    statement = _read_statement(query, url.get_backend_name())
    _check_sqlite_file(url, shown)
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(url))
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise RecipientsError(
            f"unsupported database URL {shown}: {_db_error_line(exc, url)}"
        ) from None
    try:
        try:
            connection = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise RecipientsError(
                f"cannot connect to the database {shown}: {_db_error_line(exc, url)}"
            ) from None
        with connection:
            try:
                _make_read_only(connection)
                deadline = _set_statement_timeout(connection, timeout_s)
                names, columns = _fetch(connection, statement, chunksize, deadline)
            except (sa.exc.SQLAlchemyError, _Overtime) as exc:
                if isinstance(exc, _Overtime) or _timed_out(exc):
                    raise RecipientsError(
                        f"the recipients query ran longer than {timeout_s:g} s on {shown}: "
                        "make it faster (an index, fewer rows) or allow it more time "
                        "(statement_timeout_s)"
                    ) from None
                raise RecipientsError(
                    f"the query failed on {shown}: {_db_error_line(exc, url)}"
                ) from None
    finally:
        engine.dispose()
    if not columns or not columns[0]:
        # A recurring query ("last week's customers") may rightly find nobody: an empty
        # campaign, not an error. The columns still let the phone column be checked.
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in _dedupe(names)})
    frame = pd.DataFrame(dict(enumerate(columns)), dtype=str)
    frame.columns = pd.Index(_dedupe(names))
    return frame


# Plain "postgresql://" and "mysql://" would need psycopg2 / mysqlclient, which we do not ship.
# (dburl.with_driver names the drivers we ship.)
def _parse_db_url(db_url: str, shown: str) -> URL:
    try:
        url = make_url(db_url.strip())
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise RecipientsError(f"not a valid database URL: {shown}") from None
    return dburl.with_driver(url)


def _connect_args(url: URL) -> dict[str, Any]:
    # A database behind a firewall that drops packets would otherwise hang the flow for minutes.
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb") and (
        "connect_timeout" not in url.query
    ):
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def _check_sqlite_file(url: URL, shown: str) -> None:
    # SQLite would silently create an empty database at a mistyped path.
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    file = Path(database)
    if not file.is_file():
        raise RecipientsError(f"SQLite database file not found: {shown}")


def _read_statement(query: str, dialect: str) -> str | sa.Select[Any]:
    """A bare table name as a quoted SELECT, or the user's statement once it is known to read."""
    text = query.strip().rstrip(";").strip()
    table = _TABLE_NAME.fullmatch(text)
    if table is not None:
        schema, name = (table[1], table[2]) if table[2] else (None, table[1])
        return sa.select(sa.literal_column("*")).select_from(sa.table(name, schema=schema))
    refusal = sql_refusal(text, dialect)
    if refusal is not None:
        raise RecipientsError(refusal)
    return text


def _make_read_only(connection: Connection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # First statement of the transaction that runs the query.
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif dialect in ("mysql", "mariadb"):
        # Session-wide, then a fresh transaction so the query's own transaction is read-only.
        connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        connection.commit()
    elif dialect == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")


class _Overtime(Exception):
    """The query's rows were still coming at its deadline."""


def _set_statement_timeout(connection: Connection, seconds: float) -> float:
    """Have the server stop the query after ``seconds``; returns the deadline (monotonic
    clock) past which the fetch gives up too, on servers without a timeout of their own."""
    deadline = time.monotonic() + seconds
    ms = max(1, min(math.ceil(seconds * 1000), 2**31 - 1))
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # LOCAL: this transaction only, so a pooled connection never keeps it.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
    elif dialect in ("mysql", "mariadb"):
        if getattr(connection.dialect, "is_mariadb", False):
            connection.exec_driver_sql(f"SET SESSION max_statement_time = {ms / 1000:.3f}")
        else:  # MySQL's own variable, for SELECT statements
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {ms}")
    elif dialect == "sqlite":
        # No server to stop it: SQLite calls this every few thousand steps and aborts the
        # statement ("interrupted") once it returns true.
        driver = connection.connection.driver_connection
        if driver is not None:
            driver.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
    return deadline


def _timed_out(exc: sa.exc.SQLAlchemyError) -> bool:
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # MariaDB's max_statement_time exceeded, MySQL's max_execution_time exceeded.
    if args and args[0] in (1969, 3024):
        return True
    return type(orig).__module__ == "sqlite3" and "interrupted" in str(orig)


def _fetch(
    connection: Connection,
    statement: str | sa.Select[Any],
    chunksize: int,
    deadline: float = math.inf,
) -> tuple[list[str], list[list[str]]]:
    """Column names and string columns, read chunk by chunk through a server-side cursor."""
    streaming = connection.execution_options(stream_results=True, yield_per=chunksize)
    if isinstance(statement, str):
        # Raw: SQLAlchemy's text() would read ":name" in a literal as a bind parameter, and
        # no_parameters keeps the driver from reading "%" in LIKE '06%' as a placeholder.
        result = streaming.execution_options(no_parameters=True).exec_driver_sql(statement)
    else:
        result = streaming.execute(statement)
    if not result.returns_rows:
        raise RecipientsError("the query returned no result set: give a SELECT statement")
    keys = result.keys()
    names = [str(name) for name in keys]
    columns: list[list[str]] = [[] for _ in names]
    for chunk in result.partitions(chunksize):
        for column, values in zip(columns, zip(*chunk, strict=True), strict=True):
            # Most cells are already str: skip the function call for them.
            column.extend([v if type(v) is str else _sql_value_to_str(v) for v in values])
        if time.monotonic() > deadline:  # a server times each FETCH, not the whole read
            raise _Overtime
    return names, columns


def _sql_value_to_str(value: Any) -> str:
    # Converted here, value by value: letting pandas infer types would turn an integer column
    # with a NULL into floats ("612345678.0").
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _db_error_line(exc: BaseException, url: URL) -> str:
    """The first line of the driver's message, with the password removed in case it echoes it."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    # PyMySQL errors are (code, message) tuples.
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        line = f"{_first_line(args[1])} (error {args[0]})"
    else:
        line = _first_line(orig) or type(orig).__name__
    # Too short a password would also blank out ordinary letters of the message.
    if url.password and len(str(url.password)) >= 4:
        line = line.replace(str(url.password), "***")
    return line[:300]
