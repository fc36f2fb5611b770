"""Build the fill targets and the measured subjects for one row count."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from bench import db
from bench.blog import TABLE as BLOG_TABLE
from bench.blog import BlogSQLiteStore
from bench.fill import BlogFile, FileStoreCSV, OurSQLite, Target
from bench.fill_servers import DBStoreTable, OurMariaDB, OurPostgres
from bench.sealed import BENCH_KEYS, SealedMariaDB, SealedPostgres, SealedSQLite, sealed_table
from bench.stores import (
    Floor,
    Subject,
    TokenStoreSubject,
    floor_connection,
    sql_data_bytes,
    sql_delete_inserted,
)

STORES = ("ours", "floor", "pre_ping", "prepared", "encrypted", "filestore", "dbstore", "blog")
BACKENDS = ("sqlite", "postgresql", "psycopg", "mariadb")
"""``postgresql``: PostgreSQL through psycopg2; ``psycopg``: the same database through psycopg 3."""
REFERENCE = ("filestore", "dbstore")
SERVER_BACKENDS = ("postgresql", "psycopg", "mariadb")


class Variant(NamedTuple):
    """Our store in one configuration: its own row in the tables."""

    name: str
    """The store's name in the tables."""
    options: dict[str, Any]
    """``SQLAlchemyTokenStore`` options."""
    backends: tuple[str, ...]
    sealed: bool = False
    """On the sealed copy of the rows (:mod:`bench.sealed`) instead of the plain table."""


VARIANTS: dict[str, Variant] = {
    # --stores name: Variant(the store's name in the table, its options, backends, sealed)
    "ours": Variant("ours", {}, BACKENDS),
    # the reconnect strategy's price: what SQLAlchemy's pre-ping would cost every call,
    # against ours (a dead connection invalidates the pool and the call runs once more)
    "pre_ping": Variant("ours+pre_ping", {"pool_pre_ping": True}, SERVER_BACKENDS),
    # psycopg 3's server-side prepared statements, an opt-in (see the README's Configuration)
    "prepared": Variant("ours+prepared", {"connect_args": {"prepare_threshold": 5}}, ("psycopg",)),
    # secrets at rest: the store with keys, on the same rows sealed once under them
    "encrypted": Variant("ours+encrypted", {"keys": BENCH_KEYS}, BACKENDS, sealed=True),
}
"""Our store in each configuration measured; each is its own row, on the same filled rows."""


@dataclass
class Plan:
    """What one run measures, and where."""

    data: Path
    urls: dict[str, str]
    backends: tuple[str, ...]
    stores: tuple[str, ...]
    reference_max_rows: int

    def sqlite_path(self, rows: int, sealed: bool = False) -> Path:
        return self.data / (f"ours-{rows}_enc.db" if sealed else f"ours-{rows}.db")

    def sealed(self) -> bool:
        """Whether a variant on the sealed copy of the rows is measured."""
        return any(v.sealed and name in self.stores for name, v in VARIANTS.items())

    def runs(self, store: str, rows: int) -> bool:
        return store in self.stores and (store not in REFERENCE or rows <= self.reference_max_rows)

    def targets(self, rows: int) -> list[Target]:
        table = db.table_name(rows)
        out: list[Target] = []
        servers = {db.SERVER[backend]: backend for backend in reversed(self.backends)}
        if any(store in self.stores for store in ("floor", *VARIANTS)):
            for server, backend in servers.items():  # psycopg2 and psycopg 3 share one table
                if server == "sqlite":
                    out.append(OurSQLite(self.sqlite_path(rows), table))
                elif server == "postgresql":
                    out.append(OurPostgres(self.urls[backend], table))
                else:
                    out.append(OurMariaDB(self.urls["mariadb"], table))
        if self.sealed():
            sealed = sealed_table(table)
            for server, backend in servers.items():
                if server == "sqlite":
                    out.append(SealedSQLite(self.sqlite_path(rows, sealed=True), sealed))
                elif server == "postgresql":
                    out.append(SealedPostgres(self.urls[backend], sealed))
                else:
                    out.append(SealedMariaDB(self.urls["mariadb"], sealed))
        if self.runs("filestore", rows):
            out.append(FileStoreCSV(self.data / f"filestore-{rows}.csv"))
        if self.runs("dbstore", rows) and "mariadb" in self.backends:
            out.append(DBStoreTable(self.urls["mariadb"], db.dbstore_table(rows)))
        if self.runs("blog", rows):
            out.append(BlogFile(self.data / f"blog-{rows}.db"))
        return out

    def where(self, backend: str, rows: int, sealed: bool = False) -> str:
        if backend == "sqlite":
            return str(self.sqlite_path(rows, sealed))
        return self.urls[backend]

    def subjects(self, rows: int) -> list[Subject]:
        """Floor and ours per backend, then the SDK's stores and the blog class."""
        table = db.table_name(rows)
        out: list[Subject] = []
        for backend in self.backends:
            where = self.where(backend, rows)
            if "floor" in self.stores:
                out.append(Floor(backend, where, table))
            for variant, v in VARIANTS.items():
                if variant in self.stores and backend in v.backends:
                    at = self.where(backend, rows, v.sealed)
                    on = sealed_table(table) if v.sealed else table
                    out.append(ours(backend, at, on, v.name, **v.options))
        if self.runs("filestore", rows):
            out.append(file_store(self.data / f"filestore-{rows}.csv"))
        if self.runs("dbstore", rows) and "mariadb" in self.backends:
            out.append(db_store(self.urls["mariadb"], db.dbstore_table(rows)))
        if self.runs("blog", rows):
            out.append(blog(self.data / f"blog-{rows}.db"))
        return out


def _mark(backend: str) -> str:
    return "?" if backend == "sqlite" else "%s"


def ours(backend: str, where: str, table: str, name: str = "ours", **options: Any) -> Subject:
    from zoho_sa_store import SQLAlchemyTokenStore

    url = db.sqlite_url(where) if backend == "sqlite" else where
    store = SQLAlchemyTokenStore(url, table_name=table, refresh=False, **options)
    return TokenStoreSubject(
        name,
        backend,
        backend,
        store,
        delete_inserted=lambda: _with(backend, where, sql_delete_inserted, table, _mark(backend)),
        data_bytes=lambda: _with(backend, where, sql_data_bytes, table),
        close=store.close,
    )


def _with(backend: str, where: str, fn: Any, *args: Any) -> Any:
    """``fn(conn, *args)`` on a connection of its own (servers may restart between uses)."""
    conn = floor_connection(backend, where)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


def file_store(path: Path) -> Subject:
    from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore

    def rows() -> list[list[str]]:
        with open(path, newline="") as f:
            return [row for row in csv.reader(f) if row]

    def delete_inserted() -> None:
        kept = [row for row in rows() if not row[1].startswith("new")]
        with open(path, "w", newline="") as f:
            csv.writer(f, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL).writerows(kept)

    def data_bytes() -> int:
        return sum(len(value) for row in rows()[1:] for value in row)

    return TokenStoreSubject(
        "FileStore",
        "csv",
        "sqlite",
        FileStore(str(path)),
        id_scheme="int",
        reference=True,
        delete_inserted=delete_inserted,
        data_bytes=data_bytes,
    )


def db_store(url: str, table: str) -> Subject:
    from zohocrmsdk.src.com.zoho.api.authenticator.store.db_store import DBStore

    p = db.mysql_params(url)
    store = DBStore(
        host=p["host"],
        database_name=p["database"],
        user_name=p["user"],
        password=p["password"],
        port_number=p["port"],
        table_name=table,
    )

    def run(fn: Any, *args: Any) -> Any:
        conn = db.my_connect(url)
        try:
            return fn(conn, *args)
        finally:
            conn.close()

    return TokenStoreSubject(
        "DBStore",
        "mariadb",
        "mariadb",
        store,
        id_scheme="padded",
        reference=True,
        delete_inserted=lambda: run(sql_delete_inserted, table, "%s"),
        data_bytes=lambda: run(sql_data_bytes, table),
    )


def blog(path: Path) -> Subject:
    def delete_inserted() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        sql_delete_inserted(conn, BLOG_TABLE, "?")
        conn.close()

    def data_bytes() -> int:
        conn = sqlite3.connect(path)
        try:
            return sql_data_bytes(conn, BLOG_TABLE)
        finally:
            conn.close()

    return TokenStoreSubject(
        "blog",
        "sqlite",
        "sqlite",
        BlogSQLiteStore(str(path)),
        delete_inserted=delete_inserted,
        data_bytes=data_bytes,
    )
