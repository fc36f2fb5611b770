"""Build the fill targets and the measured subjects for one row count."""

from __future__ import annotations

import base64
import csv
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import db
from bench.blog import TABLE as BLOG_TABLE
from bench.blog import BlogSQLiteStore
from bench.fill import BlogFile, FileStoreCSV, OurSQLite, Target
from bench.fill_servers import DBStoreTable, OurMariaDB, OurPostgres
from bench.stores import (
    Floor,
    Subject,
    TokenStoreSubject,
    floor_connection,
    sql_data_bytes,
    sql_delete_inserted,
)

STORES = ("ours", "ours-encrypted", "floor", "filestore", "dbstore", "blog")
BACKENDS = ("sqlite", "postgresql", "mariadb")
REFERENCE = ("filestore", "dbstore")
BENCH_KEYS = "bench:" + base64.urlsafe_b64encode(bytes(range(32))).decode()
"""The encrypted subject's key (a fixed one: these rows are the benchmark's own)."""
ENCRYPTED_SUFFIX = "_enc"
"""The encrypted subject's table: the same rows as ours, in a table of their own, sealed."""


@dataclass
class Plan:
    """What one run measures, and where."""

    data: Path
    urls: dict[str, str]
    backends: tuple[str, ...]
    stores: tuple[str, ...]
    reference_max_rows: int

    def sqlite_path(self, rows: int, table: str = "") -> Path:
        suffix = ENCRYPTED_SUFFIX if table.endswith(ENCRYPTED_SUFFIX) else ""
        return self.data / f"ours-{rows}{suffix}.db"  # a file per table: refills delete it

    def runs(self, store: str, rows: int) -> bool:
        return store in self.stores and (store not in REFERENCE or rows <= self.reference_max_rows)

    def targets(self, rows: int) -> list[Target]:
        table = db.table_name(rows)
        out: list[Target] = []
        tables = [table] if "ours" in self.stores or "floor" in self.stores else []
        if "ours-encrypted" in self.stores:
            tables.append(table + ENCRYPTED_SUFFIX)
        for name in tables:
            for backend in self.backends:
                if backend == "sqlite":
                    out.append(OurSQLite(self.sqlite_path(rows, name), name))
                elif backend == "postgresql":
                    out.append(OurPostgres(self.urls["postgresql"], name))
                else:
                    out.append(OurMariaDB(self.urls["mariadb"], name))
        if self.runs("filestore", rows):
            out.append(FileStoreCSV(self.data / f"filestore-{rows}.csv"))
        if self.runs("dbstore", rows) and "mariadb" in self.backends:
            out.append(DBStoreTable(self.urls["mariadb"], table))
        if self.runs("blog", rows):
            out.append(BlogFile(self.data / f"blog-{rows}.db"))
        return out

    def where(self, backend: str, rows: int, table: str = "") -> str:
        return str(self.sqlite_path(rows, table)) if backend == "sqlite" else self.urls[backend]

    def subjects(self, rows: int) -> list[Subject]:
        """Floor and ours per backend, then the SDK's stores and the blog class."""
        table = db.table_name(rows)
        out: list[Subject] = []
        for backend in self.backends:
            where = self.where(backend, rows)
            if "floor" in self.stores:
                out.append(Floor(backend, where, table))
            if "ours" in self.stores:
                out.append(ours(backend, where, table))
            if "ours-encrypted" in self.stores:
                sealed = table + ENCRYPTED_SUFFIX
                out.append(
                    ours(backend, self.where(backend, rows, sealed), sealed, keys=BENCH_KEYS)
                )
        if self.runs("filestore", rows):
            out.append(file_store(self.data / f"filestore-{rows}.csv"))
        if self.runs("dbstore", rows) and "mariadb" in self.backends:
            out.append(db_store(self.urls["mariadb"], table))
        if self.runs("blog", rows):
            out.append(blog(self.data / f"blog-{rows}.db"))
        return out


def _mark(backend: str) -> str:
    return "?" if backend == "sqlite" else "%s"


def ours(backend: str, where: str, table: str, keys: str | None = None) -> Subject:
    """Our store; with ``keys``, on its rows sealed under them (sealed here when plain)."""
    from zoho_sa_store import SQLAlchemyTokenStore
    from zoho_sa_store.keystate import encryption_state
    from zoho_sa_store.rotation import rotate_keys

    url = db.sqlite_url(where) if backend == "sqlite" else where
    store = SQLAlchemyTokenStore(url, table_name=table, refresh=False, keys=keys)
    if keys is not None and encryption_state(store).to_rotate:
        rotate_keys(store, batch=1000)  # the filler writes plain rows: seal them once
    return TokenStoreSubject(
        "ours" if keys is None else "ours-encrypted",
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

    p = db.mysql_params(url, db.DBSTORE_DATABASE)
    store = DBStore(
        host=p["host"],
        database_name=p["database"],
        user_name=p["user"],
        password=p["password"],
        port_number=p["port"],
        table_name=table,
    )

    def run(fn: Any, *args: Any) -> Any:
        conn = db.my_connect(url, db.DBSTORE_DATABASE)
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
