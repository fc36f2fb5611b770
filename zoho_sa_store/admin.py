"""Looking after the token table: list, show, delete, purge and export rows.

Functions over a store's public ``engine`` and ``table``, for the ``zoho-sa-store`` command
and for scripts. Whole-table work is paged (:mod:`zoho_sa_store.paging`, whose names are
re-exported here): reads go a page of rows at a time and deletes a batch of ids per
transaction, so memory stays bounded and an app's saves wait for one batch at most,
never for the whole table. Writes take SQLite's write lock up
front, as the store's own writes do. Rows are dicts keyed by the SDK's column names
(:data:`~zoho_sa_store.model.SDK_COLUMNS`), blank values as None; how they are shown (secrets
masked, JSON, the text table) is :mod:`zoho_sa_store.display`'s, whose names are re-exported
here too. Nothing here prints or logs a value.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import chain

from sqlalchemy import ColumnElement, Connection, delete, func, select

from zoho_sa_store import duplicates, paging, private_files
from zoho_sa_store.display import (
    HEADER,
    TABLE_COLUMNS,
    describe_expiry,
    expiry_ms,
    json_chunks,
    masked,
    table_cells,
    table_lines,
    table_widths,
    to_json,
)
from zoho_sa_store.paging import (
    DELETE_BATCH,
    PAGE,
    TokenRow,
    as_row,
    delete_batches,
    iter_rows,
    rows_query,
    run,
    run_batch,
)
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import clean_id

__all__ = [  # with the names of zoho_sa_store.paging and .display that scripts use
    "DELETE_BATCH",
    "HEADER",
    "PAGE",
    "TABLE_COLUMNS",
    "TokenRow",
    "as_row",
    "delete_all",
    "delete_batches",
    "delete_row",
    "describe_expiry",
    "expiry_ms",
    "find_row",
    "iter_purge",
    "iter_rows",
    "json_chunks",
    "list_rows",
    "masked",
    "open_private",
    "parse_duration",
    "purge",
    "read_rows",
    "run",
    "run_batch",
    "table_cells",
    "table_lines",
    "table_widths",
    "to_json",
    "write_private",
]

_DURATION = re.compile(r"\s*(\d+)\s*([smhdw])\s*\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def read_rows(conn: Connection, store: SQLAlchemyTokenStore) -> list[TokenRow]:
    """Every row, ordered by id and opened, on an open connection (all in memory: see
    :func:`iter_rows`)."""
    return [as_row(row._mapping, store) for row in conn.execute(rows_query(store))]


def list_rows(store: SQLAlchemyTokenStore) -> list[TokenRow]:
    """Every stored token, ordered by id, as one list (:func:`iter_rows` streams them)."""
    return list(iter_rows(store))


def find_row(store: SQLAlchemyTokenStore, token_id: str) -> TokenRow | None:
    """Row ``token_id``, or None.

    Raises:
        ValueError: not a valid id (a NUL character, longer than 64 characters).
    """
    wanted = clean_id(token_id)
    if wanted is None:
        return None
    stmt = rows_query(store).where(store.table.c.id == wanted)
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


def delete_all(store: SQLAlchemyTokenStore, *, batch: int | None = None) -> int:
    """Delete every row, ``batch`` per transaction (:func:`delete_batches`), then every row
    of the ``<table>_duplicates`` side table (:mod:`~zoho_sa_store.duplicates`); the number
    deleted."""
    deleted = delete_batches(store, "delete-all", store.table, batch=batch)
    work = functools.partial(duplicates.delete_all, table_name=store.table_name)
    return deleted + run(store, "delete-all", work, write=True)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a timedelta.

    Raises:
        ValueError: any other form.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m, 45s or 2w")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def iter_purge(
    store: SQLAlchemyTokenStore,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: float | None = None,
    batch: int | None = None,
) -> Iterator[TokenRow]:
    """Delete the rows that can never give a working token again; yield each one deleted.

    Those without a refresh token whose access token expired more than ``older_than``
    before ``now`` (epoch seconds; default: the current time). A row without a known expiry
    is kept. Candidates are read a page at a time (:func:`iter_rows`) and deleted ``batch``
    per short write transaction; each row is yielded once its batch is committed (with
    ``dry_run``: as found, and nothing is deleted). The delete itself requires the refresh
    token to still be missing and the expiry to still be one found doomed, so a row saved
    meanwhile (a refresh token, a new access token) survives and is not yielded. The
    ``<table>_duplicates`` side table's rows go by the same rule, last, in one transaction
    (:func:`zoho_sa_store.duplicates.purge`), each with a ``"table"`` key naming it.

    Raises:
        TokenStoreError: the database failed; the batches before it stay deleted.
    """
    cutoff = int(((time.time() if now is None else now) - older_than.total_seconds()) * 1000)
    batch = paging.DELETE_BATCH if batch is None else batch
    c = store.table.c
    # not "IS NULL OR = ''": planners would take the refresh token's index for that and
    # sort every candidate per page (or scan them all per delete) instead of going by id
    no_refresh = func.coalesce(c.refresh_token, "") == ""

    def expired(row: TokenRow) -> bool:
        return (ms := expiry_ms(row)) is not None and ms < cutoff

    doomed: list[TokenRow] = []
    candidates = iter_rows(store, no_refresh, page=max(batch, paging.PAGE), operation="purge")
    for row in chain(candidates, [None]):  # None: the end, to delete the last batch
        if row is not None and expired(row):
            doomed.append(row)
        if doomed and (row is None or len(doomed) >= batch):
            yield from doomed if dry_run else _delete_doomed(store, doomed, no_refresh)
            doomed = []
    side = functools.partial(
        duplicates.purge, table_name=store.table_name, doomed=expired, dry_run=dry_run
    )
    yield from run(store, "purge", side, write=not dry_run)  # the side table, small: at once


def _delete_doomed(
    store: SQLAlchemyTokenStore, rows: list[TokenRow], no_refresh: ColumnElement[bool]
) -> list[TokenRow]:
    """Delete ``rows`` in one write transaction, if still doomed; those deleted."""
    c = store.table.c
    ids = [row["id"] for row in rows]
    expiries = {row["expiry_time"] for row in rows}  # every one of them is past the cutoff

    def work(conn: Connection) -> set[str | None]:
        stmt = delete(store.table).where(c.id.in_(ids), no_refresh, c.expiry_time.in_(expiries))
        if conn.execute(stmt).rowcount == len(ids):
            return set(ids)
        kept = set(conn.scalars(select(c.id).where(c.id.in_(ids))))  # saved meanwhile
        return {i for i in ids if i not in kept}

    deleted = run_batch(store, "purge", work)
    return [row for row in rows if row["id"] in deleted]


def purge(
    store: SQLAlchemyTokenStore,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> list[TokenRow]:
    """:func:`iter_purge` as one list: the rows deleted (``dry_run``: that would be), the
    ``<table>_duplicates`` side table's last, each of those with a ``"table"`` key naming
    it."""
    return list(iter_purge(store, older_than, dry_run=dry_run, now=now))


open_private = private_files.private_output
"""``path`` as a new 0600 file, renamed into place when the block ends
(:func:`zoho_sa_store.private_files.private_output`)."""


def write_private(path: str, text: str) -> None:
    """Write ``text`` to a new file of mode 0600 renamed over ``path``
    (:func:`zoho_sa_store.private_files.write_private`: never a device, never through a
    symlink, never a chmod of an existing file).

    Raises:
        OSError: ``path`` is not a regular file (``NotARegularFile``), or cannot be written.
    """
    private_files.write_private(path, text)
