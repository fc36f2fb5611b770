"""Import tokens from the SDK's own stores: ``FileStore``'s CSV file and ``DBStore``'s table.

The sources are read by :mod:`zoho_sa_store.sources` (re-exported here), a row at a time.

Guarantees: ids are kept (a row without one gets a new UUID). Every row is validated as the
store validates a token (:func:`zoho_sa_store.tokens.token_fields`) and must hold an access,
refresh or grant token; a bad row is reported as invalid and not written. A row that is
already stored with the same values is unchanged, so running an import twice changes
nothing. A row whose id is stored with other values, or whose (user_name, client_id) another
id holds, is reported as a conflict and never overwritten.

Rows are imported :data:`INSERT_BATCH` at a time, each batch one short transaction: the
stored rows its source rows could clash with are read, every row decided, the new ones
inserted. Memory stays bounded whatever the size of the source and of the table (a dry run
keeps the rows it would import on disk, to judge later rows against them:
:mod:`zoho_sa_store.dry_run`), and an app's saves wait for one batch at most. A failure
stops the import: the batches before it stay written, and running the import again finds
them unchanged.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Table, insert, or_, select
from sqlalchemy.exc import IntegrityError

from zoho_sa_store.cipher import DIGEST_COLUMNS
from zoho_sa_store.dry_run import DryRunRows
from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.import_decisions import Checked, ImportReport, check_row, decide_batch, validate
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.paging import run, run_batch
from zoho_sa_store.sealing import Sealing
from zoho_sa_store.sources import (
    DBSTORE_TABLE,
    FILESTORE_HEADER,
    DBStoreRows,
    FileStoreRows,
    SourceError,
    SourceRow,
    read_dbstore,
    read_filestore,
)
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import TokenFields, stored

__all__ = [
    "DBSTORE_TABLE",
    "FILESTORE_HEADER",
    "INSERT_BATCH",
    "DBStoreRows",
    "FileStoreRows",
    "ImportReport",
    "SourceError",
    "SourceRow",
    "import_rows",
    "read_dbstore",
    "read_filestore",
    "validate",
]

INSERT_BATCH = 500
"""Source rows per transaction (one multi-row ``INSERT``)."""
BATCH_ATTEMPTS = 3
"""Tries of a batch whose insert met a row another writer stored meanwhile."""


def import_rows(
    store: SQLAlchemyTokenStore,
    rows: Iterable[SourceRow],
    *,
    dry_run: bool = False,
    batch: int | None = None,
) -> ImportReport:
    """Import source rows into the store's table, ``batch`` rows (default
    :data:`INSERT_BATCH`) per short transaction.

    ``dry_run``: decide everything, write nothing to the store (the rows it would import
    are kept on disk meanwhile: :class:`~zoho_sa_store.dry_run.DryRunRows`). See the
    module's docstring for what counts as unchanged, a conflict or invalid. A batch whose
    insert meets a row that another writer stored after the batch read the table is
    decided again (up to :data:`BATCH_ATTEMPTS` times).

    Raises:
        TokenStoreError: the database failed, or other writers kept storing clashing rows;
            the batches before it were imported (running the import again finds them
            unchanged).
    """
    batch = INSERT_BATCH if batch is None else batch
    report = ImportReport()
    scratch = DryRunRows() if dry_run else None
    source = iter(rows)
    try:
        while chunk := [check_row(row) for row in islice(source, batch)]:
            report.add(_import_with_retries(store, chunk, scratch, report.read))
    finally:
        if scratch is not None:
            scratch.close()
    return report


def _import_with_retries(
    store: SQLAlchemyTokenStore, chunk: list[Checked], scratch: DryRunRows | None, done: int
) -> ImportReport:
    for attempt in range(1, BATCH_ATTEMPTS + 1):
        work = functools.partial(_import_batch, store, chunk, scratch)
        try:
            if scratch is None:
                return run_batch(store, "import", work)
            return run(store, "import", work)
        except TokenStoreError as error:
            if not isinstance(error.cause, IntegrityError):
                raise
            if attempt == BATCH_ATTEMPTS:
                message = (
                    "import failed: other writers kept storing clashing rows; the first "
                    f"{done} rows were imported (run the import again)"
                )
                raise TokenStoreError(message, cause=error.cause) from error
    raise AssertionError("unreachable")


def _import_batch(
    store: SQLAlchemyTokenStore, chunk: list[Checked], scratch: DryRunRows | None, conn: Connection
) -> ImportReport:
    """Decide one batch against the rows it could clash with, and insert the new ones."""
    stored_rows = _stored_related(conn, store.table, chunk, store.sealing)
    if scratch is None:
        return decide_batch(chunk, stored_rows, lambda rows: _insert(conn, store, rows))
    # a dry run judges digests (equal values, equal digests) against the scratch rows too
    judged = [c._replace(new=scratch.digested(c.new)) if c.new else c for c in chunk]
    with scratch.engine.begin() as kept:
        earlier = _stored_related(kept, scratch.table, judged)
        digested = [scratch.digested(row) for row in stored_rows]
        return decide_batch(judged, digested + earlier, lambda rows: scratch.add(kept, rows))


def _stored_related(
    conn: Connection, table: Table, chunk: list[Checked], sealing: Sealing | None = None
) -> list[TokenFields]:
    """The stored rows the batch's rows could match: by id, by user name, and (for rows
    without an id) by an access, grant or refresh token, which equal values share.

    With the store's ``sealing``, rows are read with their ``key_id`` and opened, and a
    token is also compared by its digests (sealed rows hold no token to compare).
    """
    c = table.c
    valid = [(checked.new, checked.has_id) for checked in chunk if checked.new is not None]
    wanted: dict[str, set[str]] = {"id": set(), "user_name": set()}
    for new, has_id in valid:
        if has_id and new.id is not None:
            wanted["id"].add(new.id)
        if new.user_name is not None:
            wanted["user_name"].add(new.user_name)
        if not has_id:  # an indexed token column first
            name = next(n for n in _VALUE_KEYS if getattr(new, n) is not None)
            wanted.setdefault(name, set()).add(getattr(new, name))
    columns = [c[name] for name in SDK_COLUMNS]
    if sealing is not None:
        columns.append(c.key_id)
    found: list[TokenFields] = []
    for name, values in wanted.items():
        if not values:
            continue
        matches = [c[name].in_(sorted(values))]
        if sealing is not None and sealing.keyed and name in DIGEST_COLUMNS:
            digests = {digest for value in values for digest in sealing.digests(name, value)}
            matches.append(c[DIGEST_COLUMNS[name]].in_(sorted(digests)))
        rows = conn.execute(select(*columns).where(or_(*matches)))
        opened = (
            stored(r._mapping) if sealing is None else sealing.open_row(r._mapping) for r in rows
        )
        found.extend(opened)
    return found


_VALUE_KEYS = ("access_token", "grant_token", "refresh_token")


def _insert(conn: Connection, store: SQLAlchemyTokenStore, rows: list[TokenFields]) -> None:
    """Insert new rows (one multi-row ``INSERT``), as the store stores them (sealed when
    it has keys)."""
    saved_at = time.time_ns() // 1000
    values: list[dict[str, Any]] = [
        {**{name: getattr(row, name) for name in SDK_COLUMNS}, "saved_at": saved_at} for row in rows
    ]
    for value in values:
        value["client_id"] = value["client_id"] or ""
    # with keys: secrets sealed for their row, digests and key_id (the same keys in each)
    conn.execute(insert(store.table), [store.sealing.sealed(v["id"], v) for v in values])
