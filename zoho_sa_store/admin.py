"""Looking after the token table: list, show, delete, purge and export rows.

Functions over a store's public ``engine`` and ``table``, for the ``zoho-sa-store`` command
and for scripts. Each call is one transaction; writes take SQLite's write lock up front, as
the store's own writes do. Rows are dicts keyed by the SDK's column names
(:data:`~zoho_sa_store.model.SDK_COLUMNS`), blank values as None. :func:`masked` hides the
secrets; nothing here prints or logs a value.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, delete, inspect, or_, select
from sqlalchemy.exc import SQLAlchemyError

from zoho_sa_store import duplicates, private_files
from zoho_sa_store.errors import store_error
from zoho_sa_store.hygiene import printable, printable_json
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.settings import write_transaction
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import SECRET_FIELDS, clean_id, mask, stored

T = TypeVar("T")
TokenRow = dict[str, str | None]
"""One stored token by the SDK's column names."""

DELETE_BATCH = 500
"""Ids per ``DELETE ... WHERE id IN (...)`` statement."""
_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def run(
    store: SQLAlchemyTokenStore,
    operation: str,
    work: Callable[[Connection], T],
    *,
    write: bool = False,
) -> T:
    """Run ``work`` in one transaction on the store's engine.

    Raises:
        TokenStoreError: the database failed (its message names no value; a missing table
            says to run the migrations).
    """
    try:
        with store.engine.connect() as conn:
            if write:
                with write_transaction(conn):
                    return work(conn)
            with conn.begin():
                return work(conn)
    except SQLAlchemyError as error:
        raise store_error(operation, error, missing_table=_missing(store, error)) from error


def _missing(store: SQLAlchemyTokenStore, error: SQLAlchemyError) -> str | None:
    try:
        with store.engine.connect() as conn:
            return None if inspect(conn).has_table(store.table_name) else store.table_name
    except SQLAlchemyError:
        return None


def _select(store: SQLAlchemyTokenStore) -> Select[Any]:
    c = store.table.c
    return select(*(c[name] for name in SDK_COLUMNS), c.key_id).order_by(c.id)


def as_row(values: Any, store: SQLAlchemyTokenStore | None = None) -> TokenRow:
    """A database row (or mapping) as a :data:`TokenRow`; ``client_id`` ``""`` is None.

    With ``store``, the row (read with its ``key_id``) is opened with the store's keys.

    Raises:
        TokenStoreError: the row is sealed under a key the store cannot open.
    """
    fields = stored(values) if store is None else store.sealing.open_row(values)
    return {name: getattr(fields, name) for name in SDK_COLUMNS}


def read_rows(conn: Connection, store: SQLAlchemyTokenStore) -> list[TokenRow]:
    """Every row, ordered by id and opened, on an open connection."""
    return [as_row(row._mapping, store) for row in conn.execute(_select(store))]


def list_rows(store: SQLAlchemyTokenStore) -> list[TokenRow]:
    """Every stored token, ordered by id."""
    return run(store, "list", lambda conn: read_rows(conn, store))


def find_row(store: SQLAlchemyTokenStore, token_id: str) -> TokenRow | None:
    """Row ``token_id``, or None.

    Raises:
        ValueError: not a valid id (a NUL character, longer than 64 characters).
    """
    wanted = clean_id(token_id)
    if wanted is None:
        return None
    stmt = _select(store).where(store.table.c.id == wanted)
    row = run(store, "show", lambda conn: conn.execute(stmt).first())
    return None if row is None else as_row(row._mapping, store)


def delete_row(store: SQLAlchemyTokenStore, token_id: str) -> bool:
    """Delete row ``token_id``; False when there was none.

    Raises:
        ValueError: not a valid id.
    """
    wanted = clean_id(token_id)
    if wanted is None:
        return False
    stmt = delete(store.table).where(store.table.c.id == wanted)
    return bool(run(store, "delete", lambda conn: conn.execute(stmt).rowcount, write=True))


def delete_all(store: SQLAlchemyTokenStore) -> int:
    """Delete every row, in one statement, and every row of the ``<table>_duplicates`` side
    table (:mod:`~zoho_sa_store.duplicates`), in the same transaction; the number deleted."""
    stmt = delete(store.table)

    def work(conn: Connection) -> int:
        return int(conn.execute(stmt).rowcount) + duplicates.delete_all(conn, store.table_name)

    return run(store, "delete-all", work, write=True)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a timedelta.

    Raises:
        ValueError: any other form.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m, 45s or 2w")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def expiry_ms(row: TokenRow) -> int | None:
    """The row's access-token expiry (epoch milliseconds), None when unknown."""
    value = row["expiry_time"]
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def purge(
    store: SQLAlchemyTokenStore,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> list[TokenRow]:
    """Delete the rows that can never give a working token again.

    Those without a refresh token whose access token expired more than ``older_than``
    before ``now`` (epoch seconds; default: the current time). A row without a known expiry
    is kept. Rows are found and deleted in one transaction, and the delete itself requires
    the refresh token to still be missing, so a row saved meanwhile with one survives.

    The ``<table>_duplicates`` side table's rows go by the same rule
    (:func:`zoho_sa_store.duplicates.purge`), in the same transaction.

    Returns:
        The rows deleted (with ``dry_run``: the rows that would be; nothing is deleted),
        the side table's last, each with a ``"table"`` key naming it.
    """
    cutoff = int(((time.time() if now is None else now) - older_than.total_seconds()) * 1000)
    c = store.table.c
    no_refresh = or_(c.refresh_token.is_(None), c.refresh_token == "")

    def expired(row: TokenRow) -> bool:
        return (ms := expiry_ms(row)) is not None and ms < cutoff

    def work(conn: Connection) -> list[TokenRow]:
        selected = conn.execute(_select(store).where(no_refresh))
        rows = [as_row(row._mapping, store) for row in selected]
        doomed = [row for row in rows if expired(row)]
        ids = [row["id"] for row in doomed]
        for start in range(0, 0 if dry_run else len(ids), DELETE_BATCH):
            batch = ids[start : start + DELETE_BATCH]
            conn.execute(delete(store.table).where(c.id.in_(batch), no_refresh))
        return doomed + duplicates.purge(conn, store.table_name, expired, dry_run=dry_run)

    return run(store, "purge", work, write=not dry_run)


def masked(row: TokenRow) -> TokenRow:
    """The row with every secret (:data:`~zoho_sa_store.tokens.SECRET_FIELDS`) masked."""
    return {name: mask(value) if name in SECRET_FIELDS else value for name, value in row.items()}


def to_json(rows: Sequence[TokenRow], *, include_secrets: bool = False) -> str:
    """A JSON array of the rows, secrets masked unless ``include_secrets``."""
    shown = list(rows) if include_secrets else [masked(row) for row in rows]
    return printable_json(json.dumps(shown, indent=2, ensure_ascii=False))


def write_private(path: str, text: str) -> None:
    """Write ``text`` to a new file of mode 0600 renamed over ``path``
    (:func:`zoho_sa_store.private_files.write_private`: never a device, never through a
    symlink, never a chmod of an existing file).

    Raises:
        OSError: ``path`` is not a regular file (``NotARegularFile``), or cannot be written.
    """
    private_files.write_private(path, text)


def describe_expiry(row: TokenRow, now: float | None = None) -> str:
    """``2025-01-31 12:00Z`` with `` (expired)`` when past; ``-`` when unknown."""
    ms = expiry_ms(row)
    if ms is None:
        return "-"
    try:
        when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return row["expiry_time"] or "-"
    past = ms < (time.time() if now is None else now) * 1000
    return when.strftime("%Y-%m-%d %H:%MZ") + (" (expired)" if past else "")


TABLE_COLUMNS = ("id", "user_name", "client_id", "access_token", "refresh_token", "expiry_time")


def table_lines(rows: Sequence[TokenRow], now: float | None = None) -> list[str]:
    """The rows as an aligned text table, secrets masked, control characters escaped
    (:func:`~zoho_sa_store.hygiene.printable`)."""
    cells = [[name.upper() for name in TABLE_COLUMNS]]
    for row in rows:
        shown = masked(row)
        shown["expiry_time"] = describe_expiry(row, now)
        cells.append([printable(shown[name] or "-") for name in TABLE_COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    return [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
