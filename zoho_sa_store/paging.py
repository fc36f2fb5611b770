"""Whole-table work in pages and batches, on a store's public ``engine`` and ``table``.

Reads go :data:`PAGE` rows at a time, ordered by id, each page its own short transaction
after the last id of the one before (keyset pagination); deletes go :data:`DELETE_BATCH`
ids per transaction. Memory stays bounded whatever the table's size, no transaction stays
open while the caller works on the rows, and an app's saves wait for one batch at most,
never for the whole table. Used by :mod:`zoho_sa_store.admin` and the imports.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Select, Table, delete, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from zoho_sa_store.errors import store_error
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import stored
from zoho_sa_store.transactions import write_transaction

T = TypeVar("T")
TokenRow = dict[str, str | None]
"""One stored token by the SDK's column names."""

PAGE = 1000
"""Rows per page of a whole-table read (one short transaction each)."""
DELETE_BATCH = 250
"""Ids per delete transaction: the longest an app's save waits for ``purge``/``delete-all``."""
POLLING_WRITERS = frozenset({"sqlite"})
"""Dialects whose waiting writers poll for the lock instead of queueing on it: a loop of
batches that took the lock again at once would starve them; :func:`run_batch` pauses
between batches there."""
BUSY_SLEEPS = ((0.128, 0.025), (0.228, 0.05), (float("inf"), 0.1))
"""SQLite's busy handler (``sqliteDefaultBusyCallback``): after waiting up to the first
number of seconds, a writer sleeps at most the second between tries."""


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


def run_batch(store: SQLAlchemyTokenStore, operation: str, work: Callable[[Connection], T]) -> T:
    """Run one batch of a long write in its own write transaction (:func:`run`).

    Where writers poll for the lock (:data:`POLLING_WRITERS`), then pause as long as a
    writer that waited through the whole batch sleeps between its tries
    (:data:`BUSY_SLEEPS`), so that it gets the lock at its next try: an app's save waits
    for about one batch, never for a run of them.
    """
    start = time.monotonic()
    result = run(store, operation, work, write=True)
    if store.engine.dialect.name in POLLING_WRITERS:
        held = time.monotonic() - start
        time.sleep(next(sleep for waited, sleep in BUSY_SLEEPS if held <= waited))
    return result


def _missing(store: SQLAlchemyTokenStore, error: SQLAlchemyError) -> str | None:
    try:
        with store.engine.connect() as conn:
            return None if inspect(conn).has_table(store.table_name) else store.table_name
    except SQLAlchemyError:
        return None


def rows_query(store: SQLAlchemyTokenStore) -> Select[Any]:
    """``SELECT`` the SDK's columns of the store's table and ``key_id``, ordered by id."""
    c = store.table.c
    return select(*(c[name] for name in SDK_COLUMNS), c.key_id).order_by(c.id)


def as_row(values: Any, store: SQLAlchemyTokenStore | None = None) -> TokenRow:
    """A database row (or mapping) as a :data:`TokenRow`; ``client_id`` ``""`` is None.

    With ``store``, the row (read with its ``key_id``, see :func:`rows_query`) is opened
    with the store's keys.

    Raises:
        TokenStoreError: the row is sealed under a key the store cannot open.
    """
    fields = stored(values) if store is None else store.sealing.open_row(values)
    return {name: getattr(fields, name) for name in SDK_COLUMNS}


def iter_rows(
    store: SQLAlchemyTokenStore,
    *where: ColumnElement[bool],
    page: int | None = None,
    operation: str = "list",
) -> Iterator[TokenRow]:
    """Every stored token (matching ``where``), opened with the store's keys, ordered by id,
    ``page`` rows in memory at most (default :data:`PAGE`).

    Each page is read in its own short transaction, after the last id of the one before
    (keyset pagination), so no transaction stays open while the caller works on the rows;
    a row saved or deleted meanwhile may or may not be seen, each row at most once.

    Raises:
        ValueError: ``page`` is not a positive int.
        TokenStoreError: the database failed (``operation`` names the command in its
            message), or a row is sealed under a key the store cannot open.
    """
    page = PAGE if page is None else page
    if isinstance(page, bool) or not isinstance(page, int) or page < 1:
        raise ValueError(f"page must be a positive int, not {page!r}")
    c = store.table.c
    after: str | None = None
    while True:
        stmt = rows_query(store).where(*where).limit(page)
        if after is not None:
            stmt = stmt.where(c.id > after)
        rows = run(store, operation, functools.partial(_read, store, stmt))
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["id"]


def _read(store: SQLAlchemyTokenStore, stmt: Select[Any], conn: Connection) -> list[TokenRow]:
    return [as_row(row._mapping, store) for row in conn.execute(stmt)]


def delete_batches(
    store: SQLAlchemyTokenStore,
    operation: str,
    table: Table,
    *where: ColumnElement[bool],
    batch: int | None = None,
) -> int:
    """Delete the rows of ``table`` (the store's, or a side table with an ``id`` column)
    matching ``where``, ``batch`` ids (default :data:`DELETE_BATCH`) per short write
    transaction; the number deleted.

    Each transaction takes the next ``batch`` ids after the last one done (keyset by id) and
    deletes them (:func:`run_batch`), so the write lock (all of SQLite's, or those rows'
    elsewhere) is held for one batch at a time and the app's saves go on between batches.
    A row inserted meanwhile with an id below those already done is left alone. A failure
    stops the work: the batches before it stay deleted.

    Raises:
        TokenStoreError: the database failed.
    """
    c = table.c
    batch = DELETE_BATCH if batch is None else batch
    after: str | None = None
    total = 0
    while True:
        query = select(c.id).where(*where).order_by(c.id).limit(batch)
        if after is not None:
            query = query.where(c.id > after)
        work = functools.partial(_delete_next, table, query, where)
        ids, deleted = run_batch(store, operation, work)
        total += deleted
        if len(ids) < batch:
            return total
        after = ids[-1]


def _delete_next(
    table: Table, query: Select[Any], where: tuple[ColumnElement[bool], ...], conn: Connection
) -> tuple[list[str], int]:
    """Delete the rows whose ids ``query`` selects (and still match ``where``)."""
    ids = list(conn.scalars(query))
    if not ids:
        return ids, 0
    return ids, int(conn.execute(delete(table).where(table.c.id.in_(ids), *where)).rowcount)
