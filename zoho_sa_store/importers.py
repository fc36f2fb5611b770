"""Import tokens from the SDK's own stores: ``FileStore``'s CSV file and ``DBStore``'s table.

Sources, as the SDK (``zohocrmsdk/src/com/zoho/api/authenticator/store/``) writes them:

* ``FileStore``: a CSV file (``csv`` module, ``QUOTE_MINIMAL``; None is an empty field)
  whose header is ``id,user_name,client_id,client_secret,refresh_token,access_token,
  grant_token,expiry_time,redirect_uri,api_domain``, or the older nine columns without
  ``api_domain``. Blank lines are skipped.
* ``DBStore``: a table (``oauthtoken`` by default) in any database SQLAlchemy reaches, with
  the SDK's columns; ``api_domain`` may be missing.

Guarantees: ids are kept (a row without one gets a new UUID). Every row is validated as the
store validates a token (:func:`zoho_sa_store.tokens.token_fields`) and must hold an access,
refresh or grant token; a bad row is reported as invalid and not written. A row that is
already stored with the same values is unchanged, so running an import twice changes
nothing. A row whose id is stored with other values, or whose (user_name, client_id) another
id holds, is reported as a conflict and never overwritten. The import is one transaction:
it writes all the rows it imports or, on a database failure, none.
"""

from __future__ import annotations

import csv
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, MetaData, Table, create_engine, insert, select
from sqlalchemy.exc import IntegrityError, NoSuchTableError
from sqlalchemy.pool import NullPool

from zoho_sa_store.admin import run
from zoho_sa_store.errors import TokenStoreError, sqlite_text_safely
from zoho_sa_store.hygiene import safe_url
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.sdk import OAuthToken, SDKException, UserSignature
from zoho_sa_store.settings import LOGGING_NAME
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import TokenFields, check_expiry, token_fields

FILESTORE_HEADER = (*SDK_COLUMNS[:8], "redirect_uri", "api_domain")
"""The header ``FileStore`` writes (its ninth column is ``redirect_uri``)."""
DBSTORE_TABLE = "oauthtoken"
INSERT_BATCH = 500
"""Rows per multi-row ``INSERT`` within the import's transaction."""
_SOURCE_TABLE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")  # DBStore's own rule, at most 64 long


class SourceError(Exception):
    """The source cannot be read as a FileStore file or a DBStore table; nothing imported."""


class SourceRow(NamedTuple):
    """One row of a source: where it is (for messages) and its values by column name."""

    where: str
    values: dict[str, object]


@dataclass
class ImportReport:
    """What an import did. ``conflicts`` and ``invalid`` hold one message per row."""

    read: int = 0
    imported: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every row read is now stored (no conflict, no invalid row)."""
        return not self.conflicts and not self.invalid

    def summary(self) -> str:
        return (
            f"read {self.read}, imported {self.imported}, unchanged {self.unchanged}, "
            f"conflicts {len(self.conflicts)}, invalid {len(self.invalid)}"
        )


def read_filestore(path: str | Path, *, encoding: str = "utf-8") -> list[SourceRow]:
    """The rows of a FileStore CSV file.

    Raises:
        SourceError: the file cannot be read, is not text in ``encoding``, is not CSV, or its
            header is not FileStore's (10 or the older 9 columns).
    """
    rows: list[SourceRow] = []
    header: tuple[str, ...] | None = None
    try:
        with open(path, newline="", encoding=encoding) as file:
            reader = csv.reader(file, strict=True)
            try:
                for record in reader:
                    if not any(value.strip() for value in record):
                        continue
                    if header is None:
                        header = _header(record)
                        continue
                    where = f"line {reader.line_num}"
                    if len(record) != len(header):
                        where += f" ({len(record)} fields, expected {len(header)})"
                        rows.append(SourceRow(where, {}))
                    else:
                        rows.append(SourceRow(where, dict(zip(header, record, strict=True))))
            except csv.Error as error:
                raise SourceError(f"{path}, line {reader.line_num}: {error}") from error
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise SourceError(f"{path} is not {encoding} text (see --encoding)") from error
    except LookupError as error:
        raise SourceError(f"unknown encoding {encoding!r}") from error
    return rows


def _header(record: list[str]) -> tuple[str, ...]:
    names = [name.strip().lstrip("\ufeff").lower() for name in record]
    names = ["redirect_url" if name == "redirect_uri" else name for name in names]
    if names in (list(SDK_COLUMNS), list(SDK_COLUMNS[:9])):
        return tuple(names)
    expected = ",".join(FILESTORE_HEADER)
    raise SourceError(f"not a FileStore file: the first line is not the header {expected}")


def read_dbstore(url: str, table: str = DBSTORE_TABLE) -> list[SourceRow]:
    """The rows of a DBStore table in the database at ``url`` (read only, ordered by id).

    Raises:
        ValueError: ``table`` is not a name DBStore accepts.
        SourceError: the table does not exist or lacks one of the SDK's columns.
        sqlalchemy.exc.SQLAlchemyError: the database failed.
    """
    if not _SOURCE_TABLE.match(table):
        raise ValueError(f"invalid table name {table!r}: letters, digits and underscores only")
    # our logging name: the DEBUG row log of this engine is hidden too (rows hold secrets)
    engine = create_engine(url, hide_parameters=True, logging_name=LOGGING_NAME, poolclass=NullPool)
    shown, database = safe_url(engine.url), engine.url.database
    sqlite_text_safely(engine)  # a value that is not UTF-8 is never quoted
    sqlite_file = engine.dialect.name == "sqlite" and not engine.url.query.get("uri")
    if sqlite_file and database and database != ":memory:" and not Path(database).is_file():
        raise SourceError(f"no SQLite database file {database}")  # connecting would make one
    try:
        with engine.connect() as conn:
            try:
                source = Table(table, MetaData(), autoload_with=conn)
            except NoSuchTableError as error:
                raise SourceError(f"no table {table!r} in {shown}") from error
            columns = {column.name.lower(): column for column in source.columns}
            missing = [name for name in SDK_COLUMNS[:9] if name not in columns]
            if missing:
                raise SourceError(f"table {table!r} has no column {', '.join(missing)}")
            wanted = [columns[name].label(name) for name in SDK_COLUMNS if name in columns]
            result = conn.execute(select(*wanted).order_by(columns["id"]))
            return [
                SourceRow(f"row {number} (id {row['id']!r})", dict(row))
                for number, row in enumerate(result.mappings(), start=1)
            ]
    finally:
        engine.dispose()


def validate(values: dict[str, object], new_id: str) -> TokenFields:
    """The row's values as the store would save them (a blank id becomes ``new_id``).

    Raises:
        ValueError, TypeError: as :func:`~zoho_sa_store.tokens.token_fields` does (the
            message names the field, never its value), or no access, refresh or grant token.
    """
    # the SDK reads an empty field or column as None
    raw = {
        name: None if v == "" else str(v) if isinstance(v, int) else v for name, v in values.items()
    }
    token_id = raw.get("id")
    if token_id is None or (isinstance(token_id, str) and not token_id.strip()):
        token_id = new_id
    name = raw.get("user_name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"user_name must be a str or None, not {type(name).__name__}")
    try:
        token = OAuthToken(
            id=token_id,
            user_signature=UserSignature(name) if name else None,
            client_id=raw.get("client_id"),
            client_secret=raw.get("client_secret"),
            refresh_token=raw.get("refresh_token"),
            access_token=raw.get("access_token"),
            grant_token=raw.get("grant_token"),
            redirect_url=raw.get("redirect_url"),
            api_domain=raw.get("api_domain"),
        )
    except SDKException:
        raise TypeError("a value is not a str") from None
    token.set_expires_in(raw.get("expiry_time"))
    fields_ = token_fields(token)
    check_expiry(fields_.expiry_time)  # as save_token: epoch milliseconds, 13 digits
    if not ({"access_token", "refresh_token", "grant_token"} & fields_.present().keys()):
        raise ValueError("no access, refresh or grant token")
    return fields_


def _differences(a: TokenFields, b: TokenFields) -> str:
    return ", ".join(f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name))


class _Index:
    """The target table's rows, kept current as the import goes (in memory)."""

    def __init__(self, rows: Iterable[TokenFields]) -> None:
        self.by_id: dict[str, TokenFields] = {}
        self.by_user: dict[tuple[str, str], str] = {}
        self.by_values: dict[TokenFields, str] = {}
        for row in rows:
            self.add(row)

    def add(self, row: TokenFields) -> None:
        assert row.id is not None
        self.by_id[row.id] = row
        if row.user_name is not None:
            self.by_user[(row.user_name, row.client_id or "")] = row.id
        self.by_values.setdefault(replace(row, id=None), row.id)


def import_rows(
    store: SQLAlchemyTokenStore, rows: Iterable[SourceRow], *, dry_run: bool = False
) -> ImportReport:
    """Import source rows into the store's table, in one transaction.

    ``dry_run``: decide everything, write nothing. See the module's docstring for what
    counts as unchanged, a conflict or invalid.

    Raises:
        TokenStoreError: the database failed, or another writer stored a clashing row during
            the import; nothing was imported.
    """
    report = ImportReport()

    def work(conn: Connection) -> None:
        c = store.table.c
        current = conn.execute(select(*(c[n] for n in SDK_COLUMNS), c.key_id))
        index = _Index(store.sealing.open_row(row._mapping) for row in current)
        pending: list[dict[str, Any]] = []
        for row in chain(rows, [None]):  # None: the end, to write the last batch
            new = None if row is None else _decide(row, index, report)
            if new is not None:
                index.add(new)
                values = {name: getattr(new, name) for name in SDK_COLUMNS}
                values["client_id"] = new.client_id or ""
                pending.append(store.sealing.sealed(str(new.id), values))  # keys: sealed
            if pending and (row is None or len(pending) >= INSERT_BATCH):
                saved_at = time.time_ns() // 1000
                if not dry_run:
                    conn.execute(
                        insert(store.table), [{**v, "saved_at": saved_at} for v in pending]
                    )
                pending.clear()

    try:
        run(store, "import", work, write=not dry_run)
    except TokenStoreError as error:
        if isinstance(error.cause, IntegrityError):
            message = "import failed: another writer stored a clashing row meanwhile; "
            raise TokenStoreError(message + "nothing was imported", cause=error.cause) from error
        raise
    return report


def _decide(row: SourceRow, index: _Index, report: ImportReport) -> TokenFields | None:
    """The row to insert, or None (unchanged, a conflict or invalid); counted in ``report``."""
    report.read += 1
    if not row.values:
        report.invalid.append(row.where)
        return None
    try:
        new = validate(row.values, str(uuid.uuid4()))
    except (TypeError, ValueError) as error:
        report.invalid.append(f"{row.where}: {error}")
        return None
    given_id = row.values.get("id")
    has_id = given_id is not None and bool(str(given_id).strip())
    assert new.id is not None
    existing = index.by_id.get(new.id) if has_id else None
    if existing is not None:
        if existing == new:
            report.unchanged += 1
        else:
            other = _differences(existing, new)
            report.conflicts.append(f"{row.where}: stored row {new.id!r} differs in {other}")
        return None
    holder = index.by_user.get((new.user_name, new.client_id or "")) if new.user_name else None
    if holder is not None:
        if not has_id and replace(index.by_id[holder], id=None) == replace(new, id=None):
            report.unchanged += 1
        else:
            report.conflicts.append(
                f"{row.where}: user_name {new.user_name!r} with client_id "
                f"{new.client_id or ''!r} is stored as row {holder!r}"
            )
        return None
    if not has_id and replace(new, id=None) in index.by_values:
        report.unchanged += 1
        return None
    report.imported += 1
    return new
