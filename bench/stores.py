"""What is measured: token stores behind one interface, and the raw-driver floor.

Every subject answers the same operations on row ``i`` (lookups) or new user ``k``
(inserts); ``seq`` numbers the calls, so every update saves a new access token, as a
refresh does. Arguments are built by :meth:`Subject.arg` outside the timed call; the timed
part is :meth:`Subject.call` only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from bench import db
from bench.rows import (
    API_DOMAIN,
    CLIENT_ID,
    CLIENT_SECRET,
    ID_SCHEMES,
    NEW_USER_LIKE,
    SAVED_AT_BASE_US,
    SDK_COLUMNS,
    expiry,
    new_user_name,
    refresh_token,
    token,
    user_name,
    uuid_id,
)

OPERATIONS = (
    "find_token(user)",
    "find_token(refresh)",
    "find_token_by_id",
    "save_token(update)",
    "save_token(insert)",
)


class Subject:
    """One store (or the floor) on one backend, at one row count."""

    store = ""
    reference = False

    def __init__(self, backend: str, floor_backend: str, id_scheme: str = "uuid") -> None:
        self.backend, self.floor_backend = backend, floor_backend
        self.row_id = ID_SCHEMES[id_scheme]

    @property
    def label(self) -> str:
        return f"{self.store}/{self.backend}"

    def arg(self, op: str, i: int, tag: str, seq: int = 0) -> Any:
        raise NotImplementedError

    def call(self, op: str, arg: Any) -> Any:
        raise NotImplementedError

    def check(self, i: int) -> None:
        """Fail unless find_token(user) of row ``i`` finds that row (no timing of misses)."""
        raise NotImplementedError

    def get_all(self) -> list[Any]:
        raise NotImplementedError

    def can_iter(self) -> bool:
        return False

    def revive(self) -> None:
        """Called before each operation: make a dropped connection usable again."""

    def iter_all(self) -> Iterable[Any] | None:
        return None

    def delete_inserted(self) -> None:
        raise NotImplementedError

    def data_bytes(self) -> int | None:
        return None

    def close(self) -> None:
        pass


class TokenStoreSubject(Subject):
    """Any ``TokenStore``: ours, the SDK's FileStore and DBStore, the blog class."""

    def __init__(
        self,
        store_name: str,
        backend: str,
        floor_backend: str,
        store: Any,
        *,
        id_scheme: str = "uuid",
        reference: bool = False,
        delete_inserted: Callable[[], None],
        data_bytes: Callable[[], int] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(backend, floor_backend, id_scheme)
        self.store, self.token_store, self.reference = store_name, store, reference
        self._delete_inserted, self._data_bytes, self._close = delete_inserted, data_bytes, close

    def arg(self, op: str, i: int, tag: str, seq: int = 0) -> Any:
        if op == "find_token(user)":
            return OAuthToken(client_id=CLIENT_ID, user_signature=UserSignature(user_name(i)))
        if op == "find_token(refresh)":
            return OAuthToken(
                client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=refresh_token(i)
            )
        if op == "find_token_by_id":
            return self.row_id(i)
        if op == "save_token(update)":
            # What the SDK saves after a refresh: the found token with a new access token.
            t = OAuthToken(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                refresh_token=refresh_token(i),
                id=self.row_id(i),
                access_token=token(f"u{tag}.{seq}", i),
                user_signature=UserSignature(user_name(i)),
                api_domain=API_DOMAIN,
            )
            t.set_expires_in(expiry(i))
            return t
        if op == "save_token(insert)":
            t = OAuthToken(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                refresh_token=token(f"nr{tag}", i),
                access_token=token(f"na{tag}", i),
                user_signature=UserSignature(new_user_name(i, tag)),
                api_domain=API_DOMAIN,
            )
            t.set_expires_in(expiry(i))
            return t
        raise ValueError(op)

    def call(self, op: str, arg: Any) -> Any:
        s = self.token_store
        if op.startswith("find_token("):
            return s.find_token(arg)
        if op == "find_token_by_id":
            return s.find_token_by_id(arg)
        return s.save_token(arg)

    def check(self, i: int) -> None:
        found = self.call("find_token(refresh)", self.arg("find_token(refresh)", i, ""))
        assert found is not None and found.get_user_signature().get_name() == user_name(i)
        found = self.call("find_token(user)", self.arg("find_token(user)", i, ""))
        assert found is not None and found.get_refresh_token() == refresh_token(i), self.label
        by_id = self.call("find_token_by_id", self.row_id(i))
        assert by_id is not None and by_id.get_refresh_token() == refresh_token(i), self.label

    def get_all(self) -> list[Any]:
        return list(self.token_store.get_tokens())

    def can_iter(self) -> bool:
        return hasattr(self.token_store, "iter_tokens")

    def iter_all(self) -> Iterable[Any] | None:
        if self.can_iter():
            return self.token_store.iter_tokens()  # type: ignore[no-any-return]
        return None

    def delete_inserted(self) -> None:
        self._delete_inserted()

    def data_bytes(self) -> int | None:
        return None if self._data_bytes is None else self._data_bytes()

    def close(self) -> None:
        if self._close is not None:
            self._close()


_COLS = ", ".join(SDK_COLUMNS)
_LENGTH = " + ".join(f"COALESCE(LENGTH({c}), 0)" for c in SDK_COLUMNS)


def sql_data_bytes(conn: Any, table: str) -> int:
    """The rows' own size: the sum of the lengths of every SDK column value (ASCII data)."""
    cur = conn.cursor()
    cur.execute(f"SELECT SUM({_LENGTH}) FROM {table}")
    return int(cur.fetchone()[0] or 0)


def sql_delete_inserted(conn: Any, table: str, mark: str) -> None:
    conn.cursor().execute(f"DELETE FROM {table} WHERE user_name LIKE {mark}", (NEW_USER_LIKE,))


_UPSERT_SET = ("access_token", "refresh_token", "expiry_time", "api_domain", "saved_at")
"""What the floor's upsert writes into an existing row of the same (user_name, client_id)."""


def raw_upsert(backend: str, table: str) -> str:
    """The single-statement upsert people write by hand: INSERT, or update on conflict."""
    insert = f"INSERT INTO {table} ({_COLS}, saved_at) VALUES ({', '.join(['?'] * 11)})"
    if db.SERVER[backend] == "mariadb":
        sets = ", ".join(f"{c} = VALUES({c})" for c in _UPSERT_SET)
        return f"{insert} ON DUPLICATE KEY UPDATE {sets}"
    sets = ", ".join(f"{c} = excluded.{c}" for c in _UPSERT_SET)
    return f"{insert} ON CONFLICT (user_name, client_id) DO UPDATE SET {sets}"


class Floor(Subject):
    """One indexed statement per operation with the raw driver, on a persistent connection.

    Reads: the same ten columns and the same WHERE / ORDER BY / LIMIT as our store's SELECT.
    Writes: one UPDATE, or for a new token one raw upsert (``INSERT ... ON CONFLICT (user_name,
    client_id) DO UPDATE``, MariaDB's ``ON DUPLICATE KEY UPDATE``), in autocommit. On
    PostgreSQL every statement is a server-side prepared statement (psycopg2: ``PREPARE``
    once, ``EXECUTE`` per call; psycopg 3: ``prepare=True``, the protocol's own); sqlite3
    reuses its prepared statements from its statement cache; PyMySQL has no prepared
    statements, so on MariaDB it is one text-protocol query per call.
    """

    store = "floor"

    def __init__(self, backend: str, where: str, table: str) -> None:
        super().__init__(backend, backend)
        self.where, self.table = where, table
        order = "ORDER BY saved_at DESC LIMIT 1"
        t = table
        self.plain = {
            "find_token(user)": (
                f"SELECT {_COLS} FROM {t} WHERE user_name = ? AND client_id = ? {order}"
            ),
            "find_token(refresh)": f"SELECT {_COLS} FROM {t} WHERE refresh_token = ? {order}",
            "find_token_by_id": f"SELECT {_COLS} FROM {t} WHERE id = ?",
            "save_token(update)": (
                f"UPDATE {t} SET access_token = ?, expiry_time = ?, saved_at = ? "
                "WHERE user_name = ? AND client_id = ?"
            ),
            "save_token(insert)": raw_upsert(backend, t),
            "get_tokens": f"SELECT {_COLS} FROM {t} ORDER BY id",
        }
        self.fetch = {op: op.startswith("find") or op == "get_tokens" for op in self.plain}
        self.connect()

    def connect(self) -> None:
        """Open the connection and prepare the statements."""
        self.conn = floor_connection(self.backend, self.where)
        self.cur = self.conn.cursor()
        self.prepare = False
        if self.backend == "sqlite":
            self.sql = dict(self.plain)
        elif self.backend in ("mariadb", "psycopg"):
            self.sql = {op: s.replace("?", "%s") for op, s in self.plain.items()}
            self.prepare = self.backend == "psycopg"  # prepared on the server at first use
        else:
            self.sql = {}
            for k, (op, s) in enumerate(self.plain.items()):
                n = s.count("?")
                for j in range(1, n + 1):
                    s = s.replace("?", f"${j}", 1)
                self.cur.execute(f"PREPARE bench_{k} AS {s}")
                self.sql[op] = f"EXECUTE bench_{k}" + (f"({', '.join(['%s'] * n)})" if n else "")

    def revive(self) -> None:
        """Reconnect if the server dropped the connection (a restart between operations)."""
        try:
            self.cur.execute("SELECT 1")
            self.cur.fetchall()
        except Exception:
            self.close()
            self.connect()

    def arg(self, op: str, i: int, tag: str, seq: int = 0) -> Any:
        if op == "find_token(user)":
            return (user_name(i), CLIENT_ID)
        if op == "find_token(refresh)":
            return (refresh_token(i),)
        if op == "find_token_by_id":
            return (uuid_id(i),)
        if op == "save_token(update)":
            return (
                token(f"u{tag}.{seq}", i),
                expiry(i),
                SAVED_AT_BASE_US + i,
                user_name(i),
                CLIENT_ID,
            )
        if op == "save_token(insert)":
            return (
                f"{tag}-{uuid_id(i)}"[:64],
                new_user_name(i, tag),
                CLIENT_ID,
                CLIENT_SECRET,
                token(f"nr{tag}", i),
                token(f"na{tag}", i),
                None,
                expiry(i),
                None,
                API_DOMAIN,
                SAVED_AT_BASE_US + i,
            )
        raise ValueError(op)

    def call(self, op: str, arg: Any) -> Any:
        cur = self.cur
        if self.prepare:
            cur.execute(self.sql[op], arg, prepare=True)
        else:
            cur.execute(self.sql[op], arg)
        return cur.fetchone() if self.fetch[op] else None

    def check(self, i: int) -> None:
        for op in ("find_token(user)", "find_token(refresh)", "find_token_by_id"):
            row = self.call(op, self.arg(op, i, ""))
            assert row is not None and row[4] == refresh_token(i), (self.label, op)

    def get_all(self) -> list[Any]:
        self.cur.execute(self.sql["get_tokens"])
        return list(self.cur.fetchall())

    def delete_inserted(self) -> None:
        sql_delete_inserted(self.conn, self.table, "?" if self.backend == "sqlite" else "%s")

    def data_bytes(self) -> int | None:
        return sql_data_bytes(self.conn, self.table)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # also when the server dropped the connection
            self.conn.close()


def floor_connection(backend: str, where: str) -> Any:
    """A persistent autocommit connection: ``where`` is a SQLite path or a server URL."""
    if backend == "sqlite":
        return db.sqlite_connect(where)
    if backend == "postgresql":
        return db.pg_connect(where)
    if backend == "psycopg":
        return db.pg3_connect(where)
    return db.my_connect(where)
