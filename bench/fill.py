"""Fill every store's rows in bulk, once per row count; reuse them when they are already there.

A target is reused when it holds exactly ``n`` rows and row ``n - 1`` is there (the insert
benchmark deletes its own rows afterwards, so counts stay exact). ``refill`` empties and
fills it again. The database servers' targets are in :mod:`bench.fill_servers`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zoho_sa_store
from bench import db
from bench.blog import TABLE as BLOG_TABLE
from bench.blog import BlogSQLiteStore
from bench.rows import OUR_COLUMNS, Row, batches, our_row, sdk_row, user_name


@dataclass
class Fill:
    target: str
    rows: int
    seconds: float
    method: str
    reused: bool


class Target:
    name = ""
    method = ""

    def prepare(self) -> None:
        """Create the table or file when it is missing."""

    def count(self) -> int:
        raise NotImplementedError

    def has_user(self, name: str) -> bool:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def fill(self, n: int) -> None:
        raise NotImplementedError

    def ensure(self, n: int, refill: bool = False) -> Fill:
        self.prepare()
        if not refill and self.count() == n and (n == 0 or self.has_user(user_name(n - 1))):
            return Fill(self.name, n, 0.0, self.method, True)
        self.clear()
        start = time.perf_counter()
        self.fill(n)
        return Fill(self.name, n, time.perf_counter() - start, self.method, False)


def placeholders(style: str, k: int) -> str:
    return ", ".join([style] * k)


class DBAPITarget(Target):
    """A table reached through a DB-API connection (``self.conn``, ``self.table``)."""

    conn: Any
    table: str
    mark = "%s"
    columns: tuple[str, ...] = OUR_COLUMNS

    def row(self, i: int) -> Row:
        """Row ``i`` as inserted, in :attr:`columns` order."""
        return our_row(i)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else row[0]

    def count(self) -> int:
        return int(self._one(f"SELECT COUNT(*) FROM {self.table}"))

    def has_user(self, name: str) -> bool:
        sql = f"SELECT 1 FROM {self.table} WHERE user_name = {self.mark}"
        return self._one(sql, (name,)) is not None


class OurSQLite(DBAPITarget):
    method = "sqlite3 executemany, one transaction"
    mark = "?"

    def __init__(self, path: Path, table: str) -> None:
        self.path, self.table, self.name = path, table, "ours/sqlite"
        self.conn: Any = None

    def prepare(self) -> None:
        zoho_sa_store.upgrade(db.sqlite_url(str(self.path)), table_name=self.table)
        self.conn = self.conn or db.sqlite_connect(str(self.path))

    def clear(self) -> None:
        self.conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.conn = None
        self.prepare()

    def fill(self, n: int) -> None:
        self.conn.execute("PRAGMA cache_size=-500000")
        sql = (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"VALUES ({placeholders('?', len(self.columns))})"
        )
        self.conn.execute("BEGIN")
        for chunk in batches(n, self.row):
            self.conn.executemany(sql, chunk)
        self.conn.execute("COMMIT")
        self.conn.execute("ANALYZE")
        self.conn.close()
        self.conn = None


class FileStoreCSV(Target):
    method = "csv.writer.writerows, the FileStore's own format"

    def __init__(self, path: Path) -> None:
        self.path, self.name = path, "FileStore/csv"

    def prepare(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.clear()

    def count(self) -> int:
        with open(self.path, newline="") as f:
            return sum(1 for row in csv.reader(f) if row) - 1

    def has_user(self, name: str) -> bool:
        with open(self.path, newline="") as f:
            return any(len(row) > 1 and row[1] == name for row in csv.reader(f))

    def clear(self) -> None:
        from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore

        self.path.unlink(missing_ok=True)
        FileStore(str(self.path))  # writes the header row

    def fill(self, n: int) -> None:
        from bench.rows import int_id

        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL)
            for chunk in batches(n, lambda i: sdk_row(i, int_id)):
                writer.writerows(chunk)


class BlogFile(DBAPITarget):
    method = "sqlite3 executemany, one transaction (no index: the blog's table)"
    mark = "?"

    def __init__(self, path: Path) -> None:
        self.path, self.table, self.name = path, BLOG_TABLE, "blog/sqlite"
        self.conn: Any = None

    def prepare(self) -> None:
        BlogSQLiteStore(str(self.path))
        import sqlite3

        self.conn = self.conn or sqlite3.connect(str(self.path), isolation_level=None)

    def clear(self) -> None:
        self.conn.close()
        self.conn = None
        self.path.unlink(missing_ok=True)
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self.prepare()

    def fill(self, n: int) -> None:
        sql = f"INSERT INTO {self.table} VALUES ({placeholders('?', 10)})"
        self.conn.execute("BEGIN")
        for chunk in batches(n, sdk_row):
            self.conn.executemany(sql, chunk)
        self.conn.execute("COMMIT")


def close(target: Target) -> None:
    conn = getattr(target, "conn", None)
    if conn is not None:
        target.conn = None  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):  # a connection the server already dropped
            conn.close()


def data_dir(results: Path) -> Path:
    path = results / "data"
    os.makedirs(path, exist_ok=True)
    return path
