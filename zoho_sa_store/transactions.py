"""How the store's transactions run: explicit ``BEGIN``/``COMMIT``/``ROLLBACK`` over
autocommit connections, and writing transactions whose waits are bounded, per dialect.

SQLite writers begin with ``BEGIN IMMEDIATE`` under a busy timeout, as SQLAlchemy's SQLite
dialect documentation recommends; PostgreSQL's timeouts are transaction-local
(``set_config(..., true)``), so a transaction-pooling proxy can hand each transaction to
another server connection. The engines are built by :func:`zoho_sa_store.settings.make_engine`.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import SQLAlchemyError

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write lock, in milliseconds."""
WRITE = "zoho_sa_store_write"
"""Execution option marking a transaction that writes (SQLite then takes the lock at BEGIN)."""
ONE_STATEMENT = "zoho_sa_store_one_statement"
"""Execution option marking a call of one statement (a lookup, an update by id): no BEGIN,
no COMMIT; the statement commits itself (autocommit)."""
_IN_TRANSACTION = "zoho_sa_store_in_transaction"
DRIVER_SENDS_COMMIT = frozenset({"pymysql", "mysqldb"})
"""Drivers whose ``commit()`` sends ``COMMIT`` to the server even in autocommit mode."""
AUTOCOMMIT_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Engines set up by :func:`explicit_transactions`: a lone statement commits itself."""
log = logging.getLogger("zoho_sa_store.settings")  # where these lines always logged


def explicit_transactions(engine: Engine) -> None:
    """Run SQLAlchemy transactions as explicit ``BEGIN``/``COMMIT``/``ROLLBACK`` statements.

    The engine's DBAPI connections are in autocommit mode (SQLite: ``isolation_level=None``,
    as SQLAlchemy's SQLite documentation recommends; PostgreSQL and MySQL: SQLAlchemy's
    ``AUTOCOMMIT``), so a call run with the :data:`ONE_STATEMENT` execution option is one
    statement, one round trip, and no transaction is left open on a pooled connection.
    Every other transaction, ``engine.begin()`` included, still is one: this listener
    sends ``BEGIN`` (``BEGIN IMMEDIATE`` for SQLite writers, run with :data:`WRITE`), and
    the matching ``COMMIT`` or ``ROLLBACK``.
    """
    immediate = "BEGIN IMMEDIATE" if engine.dialect.name == "sqlite" else "BEGIN"
    driver_commits = engine.dialect.driver in DRIVER_SENDS_COMMIT
    AUTOCOMMIT_ENGINES.add(engine)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(ONE_STATEMENT, False):
            return
        conn.exec_driver_sql(immediate if options.get(WRITE, False) else "BEGIN")
        conn.info[_IN_TRANSACTION] = True

    @event.listens_for(engine, "commit")
    def _commit(conn: Connection) -> None:
        # SQLAlchemy calls the driver's commit() right after this event: PyMySQL's and
        # mysqlclient's send COMMIT even in autocommit mode, so theirs ends the transaction
        # (ours too would be a second COMMIT, a round trip); psycopg's and sqlite3's send
        # nothing there, so ours does
        if conn.info.pop(_IN_TRANSACTION, False) and not driver_commits:
            conn.exec_driver_sql("COMMIT")

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Connection) -> None:
        # an invalidated connection is gone with its transaction (and its info dict)
        if not conn.invalidated and conn.info.pop(_IN_TRANSACTION, False):
            try:
                conn.exec_driver_sql("ROLLBACK")
            except SQLAlchemyError:
                log.debug("ROLLBACK failed; the connection is discarded", exc_info=True)


@contextmanager
def sqlite_busy_timeout(conn: Connection, seconds: float | None) -> Iterator[None]:
    """On SQLite, wait at most ``seconds`` for another writer's lock inside the block.

    The default busy timeout (:data:`SQLITE_BUSY_TIMEOUT_MS`) is restored afterwards; None,
    or another dialect: nothing changes.
    """
    if seconds is None or conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


@contextmanager
def write_transaction(
    conn: Connection,
    lock_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> Iterator[Connection]:
    """Begin a writing transaction whose waits are bounded.

    ``lock_timeout`` (seconds, or None for the server's own) bounds waits for row locks:
    SQLite: ``BEGIN IMMEDIATE`` under a busy timeout of ``lock_timeout`` (the default one is
    restored afterwards); PostgreSQL: ``lock_timeout``; MySQL/MariaDB:
    ``innodb_lock_wait_timeout`` (whole seconds, at least 1). ``statement_timeout`` (seconds,
    or None: unbounded) bounds each statement: ``statement_timeout`` on PostgreSQL,
    ``max_statement_time`` on MariaDB. PostgreSQL's settings are transaction-local
    (``set_config(..., true)``): they end with the transaction, as a transaction-pooling
    proxy requires; MySQL has no transaction-scoped setting, and every transaction sets
    its own values.
    """
    conn = conn.execution_options(**{WRITE: True})
    name = conn.dialect.name
    if name == "sqlite":  # the write lock is all a writer waits for: the busy timeout
        wait = lock_timeout if lock_timeout is not None else statement_timeout
        with sqlite_busy_timeout(conn, wait), conn.begin():
            yield conn
        return
    with conn.begin():
        if name == "postgresql":  # 0 means no limit there: a zero wait becomes 1 ms
            lock_ms = 0 if lock_timeout is None else max(1, int(lock_timeout * 1000))
            statement_ms = 0 if statement_timeout is None else int(statement_timeout * 1000)
            conn.exec_driver_sql(
                f"SELECT set_config('statement_timeout', '{statement_ms}ms', true), "
                f"set_config('lock_timeout', '{lock_ms}ms', true)"
            )
        elif name in ("mysql", "mariadb"):
            wait = 50 if lock_timeout is None else max(1, math.ceil(lock_timeout))
            settings = [f"innodb_lock_wait_timeout = {wait}"]
            if getattr(conn.dialect, "is_mariadb", False):
                settings.append(f"max_statement_time = {statement_timeout or 0}")
            conn.exec_driver_sql("SET SESSION " + ", SESSION ".join(settings))
        yield conn
