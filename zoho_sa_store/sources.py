"""Reading the SDK's own stores, row by row: ``FileStore``'s CSV file and ``DBStore``'s table.

As the SDK (``zohocrmsdk/src/com/zoho/api/authenticator/store/``) writes them:

* ``FileStore``: a CSV file (``csv`` module, ``QUOTE_MINIMAL``; None is an empty field)
  whose header is ``id,user_name,client_id,client_secret,refresh_token,access_token,
  grant_token,expiry_time,redirect_uri,api_domain``, or the older nine columns without
  ``api_domain``. Blank lines are skipped.
* ``DBStore``: a table (``oauthtoken`` by default) in any database SQLAlchemy reaches, with
  the SDK's columns; ``api_domain`` may be missing.

Both are streamed: a source is checked when it is opened (the whole file is parsed once,
keeping nothing; the table's columns are read) and its rows are then read one at a time,
so a source of any size costs little memory, and a source that cannot be read fails
before anything is imported from it.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Engine, MetaData, Table, create_engine, func, select
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.pool import NullPool

from zoho_sa_store.errors import sqlite_text_safely
from zoho_sa_store.hygiene import safe_url
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.settings import LOGGING_NAME

FILESTORE_HEADER = (*SDK_COLUMNS[:8], "redirect_uri", "api_domain")
"""The header ``FileStore`` writes (its ninth column is ``redirect_uri``)."""
DBSTORE_TABLE = "oauthtoken"
STREAM_ROWS = 500
"""Rows a DBStore source's driver fetches at a time."""
_SOURCE_TABLE = re.compile(r"[A-Za-z0-9_]{1,64}\Z")  # DBStore's own rule, at most 64 long


class SourceError(Exception):
    """The source cannot be read as a FileStore file or a DBStore table (a DBStore row that
    cannot be decoded: the batches before it were imported)."""


class SourceRow(NamedTuple):
    """One row of a source: where it is (for messages) and its values by column name."""

    where: str
    values: dict[str, object]


class FileStoreRows:
    """The rows of a FileStore CSV file, read lazily; ``len()`` is their number.

    Raises (when made, and, should the file change meanwhile, while iterating):
        SourceError: the file cannot be read, is not text in ``encoding``, is not CSV, or its
            header is not FileStore's (10 or the older 9 columns).
    """

    def __init__(self, path: str | Path, encoding: str = "utf-8") -> None:
        self.path, self.encoding = path, encoding
        self._count = sum(1 for _ in self)  # the whole file parsed once, nothing kept

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[SourceRow]:
        path = self.path
        try:
            with open(path, newline="", encoding=self.encoding) as file:
                reader = csv.reader(file, strict=True)
                try:
                    yield from self._rows(reader)
                except csv.Error as error:
                    raise SourceError(f"{path}, line {reader.line_num}: {error}") from error
        except OSError as error:
            raise SourceError(f"cannot read {path}: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise SourceError(f"{path} is not {self.encoding} text (see --encoding)") from error
        except LookupError as error:
            raise SourceError(f"unknown encoding {self.encoding!r}") from error

    @staticmethod
    def _rows(reader: Iterator[list[str]]) -> Iterator[SourceRow]:
        header: tuple[str, ...] | None = None
        for record in reader:
            if not any(value.strip() for value in record):
                continue
            if header is None:
                header = _header(record)
                continue
            where = f"line {reader.line_num}"  # type: ignore[attr-defined]
            if len(record) != len(header):
                where += f" ({len(record)} fields, expected {len(header)})"
                yield SourceRow(where, {})
            else:
                yield SourceRow(where, dict(zip(header, record, strict=True)))


def read_filestore(path: str | Path, *, encoding: str = "utf-8") -> FileStoreRows:
    """The rows of a FileStore CSV file (checked now, read as they are iterated).

    Raises:
        SourceError: see :class:`FileStoreRows`.
    """
    return FileStoreRows(path, encoding)


def _header(record: list[str]) -> tuple[str, ...]:
    names = [name.strip().lstrip("\ufeff").lower() for name in record]
    names = ["redirect_url" if name == "redirect_uri" else name for name in names]
    if names in (list(SDK_COLUMNS), list(SDK_COLUMNS[:9])):
        return tuple(names)
    expected = ",".join(FILESTORE_HEADER)
    raise SourceError(f"not a FileStore file: the first line is not the header {expected}")


class DBStoreRows:
    """The rows of a DBStore table, ordered by id, streamed (read only); ``len()`` is their
    number when the table was checked.

    Raises (when made):
        ValueError: ``table`` is not a name DBStore accepts.
        SourceError: the table does not exist, lacks one of the SDK's columns, or holds rows
            encrypted by this store (a ``key_id``), whose values are ciphertexts.
        sqlalchemy.exc.SQLAlchemyError: the database failed (also while iterating).
    """

    def __init__(self, url: str, table: str = DBSTORE_TABLE) -> None:
        if not _SOURCE_TABLE.match(table):
            raise ValueError(f"invalid table name {table!r}: letters, digits and underscores only")
        self.url, self.table = url, table
        with _source(self.url, self.table) as (engine, source), engine.connect() as conn:
            self._count = int(conn.scalar(select(func.count()).select_from(source)) or 0)
            key_id = source.c.get("key_id")
            if key_id is not None:  # a table of this store's own, encrypted: not a source
                stmt = select(func.count()).select_from(source).where(key_id.is_not(None))
                if sealed := int(conn.scalar(stmt) or 0):
                    raise SourceError(
                        f"table {table!r} holds {sealed} encrypted row(s) (zoho-sa-store's own"
                        " format): importing them would copy ciphertexts; decrypt it first"
                        " (zoho-sa-store rotate-keys --to-plaintext on that database), or"
                        " point the app at it"
                    )

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[SourceRow]:
        with _source(self.url, self.table) as (engine, source):
            columns = {column.name.lower(): column for column in source.columns}
            wanted = [columns[name].label(name) for name in SDK_COLUMNS if name in columns]
            number = 0
            try:
                with engine.connect() as conn:
                    streamed = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS)
                    result = streamed.execute(select(*wanted).order_by(columns["id"]))
                    for number, row in enumerate(result.mappings(), start=1):
                        yield SourceRow(f"row {number} (id {row['id']!r})", dict(row))
            except DBAPIError as error:
                if not isinstance(error.orig, sqlite3.DataError):
                    raise
                # sqlite_text's message: the byte's position, never the stored text
                raise SourceError(f"after row {number}: {error.orig}") from None


@contextmanager
def _source(url: str, table: str) -> Iterator[tuple[Engine, Table]]:
    """An engine on the source database and its checked table; disposed at the end."""
    # our logging name: the DEBUG row log of this engine is hidden too (rows hold secrets)
    engine = create_engine(url, hide_parameters=True, logging_name=LOGGING_NAME, poolclass=NullPool)
    sqlite_text_safely(engine)  # a value that is not UTF-8 is never quoted
    try:
        shown, database = safe_url(engine.url), engine.url.database
        sqlite_file = engine.dialect.name == "sqlite" and not engine.url.query.get("uri")
        if sqlite_file and database and database != ":memory:" and not Path(database).is_file():
            raise SourceError(f"no SQLite database file {database}")  # connecting would make one
        with engine.connect() as conn:
            try:
                source = Table(table, MetaData(), autoload_with=conn)
            except NoSuchTableError as error:
                raise SourceError(f"no table {table!r} in {shown}") from error
        columns = {column.name.lower() for column in source.columns}
        missing = [name for name in SDK_COLUMNS[:9] if name not in columns]
        if missing:
            raise SourceError(f"table {table!r} has no column {', '.join(missing)}")
        yield engine, source
    finally:
        engine.dispose()


def read_dbstore(url: str, table: str = DBSTORE_TABLE) -> DBStoreRows:
    """The rows of a DBStore table in the database at ``url`` (checked now, read only, ordered
    by id, streamed as they are iterated).

    Raises:
        ValueError, SourceError, sqlalchemy.exc.SQLAlchemyError: see :class:`DBStoreRows`.
    """
    return DBStoreRows(url, table)
