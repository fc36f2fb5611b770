"""Looking after the token table: list, show, delete, purge and export rows.

Functions over a store's public ``engine`` and ``table``, for the ``zoho-sa-store`` command
and for scripts. Whole-table work is paged (:mod:`zoho_sa_store.paging`, whose names are
re-exported here): reads go a page of rows at a time and deletes a batch of ids per
transaction, so memory stays bounded and an app's saves wait for one batch at most,
never for the whole table. Writes take SQLite's write lock up
front, as the store's own writes do. Rows are dicts keyed by the SDK's column names
(:data:`~zoho_sa_store.model.SDK_COLUMNS`), blank values as None. :func:`masked` hides the
secrets; nothing here prints or logs a value.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from itertools import chain

from sqlalchemy import ColumnElement, Connection, delete, func, select

from zoho_sa_store import duplicates, paging, private_files
from zoho_sa_store.hygiene import printable, printable_json
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
from zoho_sa_store.tokens import SECRET_FIELDS, clean_id, mask

__all__ = [  # with the names of zoho_sa_store.paging that scripts use
    "DELETE_BATCH",
    "PAGE",
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


def expiry_ms(row: TokenRow) -> int | None:
    """The row's access-token expiry (epoch milliseconds), None when unknown."""
    value = row["expiry_time"]
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


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


def masked(row: TokenRow) -> TokenRow:
    """The row with every secret (:data:`~zoho_sa_store.tokens.SECRET_FIELDS`) masked."""
    return {name: mask(value) if name in SECRET_FIELDS else value for name, value in row.items()}


def json_chunks(rows: Iterable[TokenRow], *, include_secrets: bool = False) -> Iterator[str]:
    """A JSON array of the rows, one row at a time: the pieces of :func:`to_json`'s text.

    Only the row being written is in memory, so ``rows`` may be a stream (:func:`iter_rows`).
    The text is ``json.dumps(list(rows), indent=2, ensure_ascii=False)``'s, character for
    character, but for non-printable characters inside strings, written as ``\\uXXXX``
    escapes (:func:`~zoho_sa_store.hygiene.printable_json`): the same JSON value.
    """
    empty = True
    for row in rows:
        shown = _json_object(row if include_secrets else masked(row))
        yield ("[\n  " if empty else ",\n  ") + printable_json(shown)
        empty = False
    yield "[]" if empty else "\n]"


def _json_object(row: TokenRow) -> str:
    """One row as ``json.dumps`` writes it inside a list at ``indent=2`` (flat str/None)."""
    if not row:
        return "{}"
    fields = (f"    {_json_str(name)}: {_json_value(value)}" for name, value in row.items())
    return "{\n" + ",\n".join(fields) + "\n  }"


def _json_value(value: object) -> str:
    if value is None:
        return "null"
    return _json_str(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_json_str: Callable[[str], str] = json.encoder.encode_basestring
"""The json module's own string encoder (its C one where built) for ``ensure_ascii=False``."""


def to_json(rows: Iterable[TokenRow], *, include_secrets: bool = False) -> str:
    """A JSON array of the rows, secrets masked unless ``include_secrets``."""
    return "".join(json_chunks(rows, include_secrets=include_secrets))


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


HEADER = [name.upper() for name in TABLE_COLUMNS]


def table_cells(row: TokenRow, now: float | None = None) -> list[str]:
    """One row's cells of :func:`table_lines`, secrets masked, control characters escaped
    (:func:`~zoho_sa_store.hygiene.printable`)."""
    shown = masked(row)
    return [
        describe_expiry(row, now) if name == "expiry_time" else printable(shown[name] or "-")
        for name in TABLE_COLUMNS
    ]


def table_widths(rows: Iterable[TokenRow], now: float | None = None) -> list[int]:
    """The column widths of :func:`table_lines` for ``rows`` (one pass, nothing kept)."""
    widths = [len(name) for name in HEADER]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, table_cells(row, now), strict=True)]
    return widths


def table_lines(
    rows: Iterable[TokenRow], now: float | None = None, widths: Sequence[int] | None = None
) -> Iterator[str]:
    """The rows as an aligned text table, secrets masked, a line at a time.

    ``widths`` (from :func:`table_widths` over the same rows) lets ``rows`` be a stream,
    read once; without it the rows are read into memory to measure them first.
    """
    if widths is None:
        rows = list(rows)
        widths = table_widths(rows, now)
    for line in chain([HEADER], (table_cells(row, now) for row in rows)):
        yield "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
