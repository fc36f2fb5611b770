"""Where the database is and how to connect to it: URL resolution and per-dialect engines.

Every dialect detail of the connection lives here: SQLite's WAL journal, busy timeout and
``BEGIN IMMEDIATE`` for writers, one shared connection for ``sqlite:///:memory:``, MySQL's
isolation level, pre-ping for servers that restart.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

URL_ENV_VAR = "ZOHO_SA_STORE_URL"
DEFAULT_URL = "sqlite:///zohooauth.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another process's write lock, in milliseconds."""
WRITE = "zoho_sa_store_write"
"""Execution option marking a transaction that writes (SQLite then takes the lock at BEGIN)."""
ONE_STATEMENT = "zoho_sa_store_one_statement"
"""Execution option marking a call of one statement (a lookup, an update by id): no BEGIN,
no COMMIT; the statement commits itself (autocommit)."""
_IN_TRANSACTION = "zoho_sa_store_in_transaction"
AUTOCOMMIT_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Engines set up by :func:`explicit_transactions`: a lone statement commits itself."""
log = logging.getLogger(__name__)

MAX_TABLE_NAME_LENGTH = 29
"""Longest token-table name: its version table and constraint names must fit in 63."""
_TABLE_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_TABLE_NAME_LENGTH - 1}}}\Z")
LOGGING_NAME = "zoho_sa_store"
"""Our engines log as ``sqlalchemy.engine.Engine.zoho_sa_store``."""


class HideRows(logging.Filter):
    """Hide result rows in SQLAlchemy's debug log of our engines: rows hold tokens.

    ``hide_parameters=True`` keeps bound values out of the log; with the engine log at
    DEBUG, SQLAlchemy also logs every row it reads, which this filter replaces.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Row %r":
            record.args = ("(hidden: rows of the token table are never logged)",)
        return True


logging.getLogger(f"sqlalchemy.engine.Engine.{LOGGING_NAME}").addFilter(HideRows())


def resolve_url(url: str | URL | None = None) -> URL:
    """The database URL: ``url`` if given, else ``$ZOHO_SA_STORE_URL``, else the default.

    Args:
        url: a SQLAlchemy URL or its string form, or None.

    Returns:
        A ``sqlalchemy.URL`` (default ``sqlite:///zohooauth.db`` in the working directory).

    Raises:
        TypeError: ``url`` is neither a str, a URL nor None.
        sqlalchemy.exc.ArgumentError: the string is not a database URL.
    """
    if url is None:
        url = os.environ.get(URL_ENV_VAR) or DEFAULT_URL
    if not isinstance(url, (str, URL)):
        raise TypeError(f"url must be a str or sqlalchemy.URL, not {type(url).__name__}")
    return make_url(url)


def check_table_name(name: object) -> str:
    """Validate a table name: letters, digits and underscores, not starting with a digit.

    Raises:
        TypeError: not a str.
        ValueError: any other character, or longer than :data:`MAX_TABLE_NAME_LENGTH`.
    """
    if not isinstance(name, str):
        raise TypeError(f"table_name must be a str, not {type(name).__name__}")
    if not _TABLE_NAME.match(name):
        raise ValueError(
            f"invalid table name {name!r}: use letters, digits and underscores "
            f"(at most {MAX_TABLE_NAME_LENGTH})"
        )
    return name


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url.query)


def engine_options(url: URL) -> dict[str, Any]:
    """Default ``create_engine`` options for the URL's dialect (the caller's win)."""
    options: dict[str, Any] = {"hide_parameters": True, "logging_name": LOGGING_NAME}
    backend = url.get_backend_name()
    if backend == "sqlite":
        if _is_memory(url):
            options["poolclass"] = StaticPool
            options["connect_args"] = {"check_same_thread": False}
        else:
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        # the driver never opens transactions itself; see explicit_transactions()
        options["isolation_level"] = "AUTOCOMMIT"
        options["skip_autocommit_rollback"] = True
    return options


def make_engine(url: str | URL | None = None, **overrides: Any) -> Engine:
    """A pooled engine for ``url`` (resolved by :func:`resolve_url`) with our defaults.

    Args:
        url: see :func:`resolve_url`.
        **overrides: ``create_engine`` keyword arguments that replace our defaults.

    Returns:
        The engine, set up by :func:`explicit_transactions` (and :func:`configure_sqlite`).
    """
    resolved = resolve_url(url)
    options = {**engine_options(resolved), **overrides}
    engine = create_engine(resolved, **options)
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine, memory=_is_memory(resolved))
    if engine.dialect.name == "sqlite" or options.get("isolation_level") == "AUTOCOMMIT":
        explicit_transactions(engine)
    if engine.dialect.name in ("mysql", "mariadb"):

        @event.listens_for(engine, "connect")
        def _read_committed(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.close()

    return engine


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
        if conn.info.pop(_IN_TRANSACTION, False):
            conn.exec_driver_sql("COMMIT")

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Connection) -> None:
        # an invalidated connection is gone with its transaction (and its info dict)
        if not conn.invalidated and conn.info.pop(_IN_TRANSACTION, False):
            try:
                conn.exec_driver_sql("ROLLBACK")
            except SQLAlchemyError:
                log.debug("ROLLBACK failed; the connection is discarded", exc_info=True)


def configure_sqlite(engine: Engine, *, memory: bool = False) -> None:
    """Make a SQLite engine safe for many processes sharing one file.

    WAL lets readers run beside one writer; the busy timeout makes a writer wait for the lock
    instead of failing; the driver's own transaction handling is turned off
    (``isolation_level=None``) for :func:`explicit_transactions`, whose ``BEGIN IMMEDIATE``
    makes a writer take its lock up front and never fail mid-transaction with "database is
    locked". This follows SQLAlchemy's SQLite dialect documentation.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()


@contextmanager
def write_transaction(conn: Connection, lock_timeout: float | None = None) -> Iterator[Connection]:
    """Begin a writing transaction whose waits for a lock are bounded by ``lock_timeout`` s.

    SQLite: ``BEGIN IMMEDIATE`` under a busy timeout of ``lock_timeout`` (the default one
    is restored afterwards). PostgreSQL: ``SET LOCAL lock_timeout``. MySQL/MariaDB:
    ``innodb_lock_wait_timeout`` for the connection (whole seconds, at least 1).
    """
    conn = conn.execution_options(**{WRITE: True})
    name = conn.dialect.name
    if lock_timeout is None:
        with conn.begin():
            yield conn
    elif name == "sqlite":
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        try:
            with conn.begin():
                yield conn
        finally:
            raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    else:
        with conn.begin():
            if name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout * 1000)}ms'")
            elif name in ("mysql", "mariadb"):
                seconds = max(1, math.ceil(lock_timeout))
                conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {seconds}")
            yield conn


@contextmanager
def named_lock(conn: Connection, key: str, timeout: float) -> Iterator[None]:
    """Hold a server-wide lock named ``key`` around the transaction begun inside.

    For inserts no unique constraint can guard (a token without a user name): two workers
    saving the same token take turns, and the second one finds the first one's row.
    PostgreSQL: a session advisory lock; MySQL/MariaDB: ``GET_LOCK``; SQLite: nothing (its
    writers already take turns through ``BEGIN IMMEDIATE``). Released after the commit.

    Raises:
        TimeoutError: the lock was not had within ``timeout`` seconds.
    """
    name = conn.dialect.name
    if name == "postgresql":
        take = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
        release = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")
    elif name in ("mysql", "mariadb"):
        key = key[:64]
        take = text("SELECT GET_LOCK(:key, 0)")
        release = text("SELECT RELEASE_LOCK(:key)")
    else:
        yield
        return
    deadline = time.monotonic() + timeout
    while not conn.execute(take, {"key": key}).scalar():
        conn.rollback()
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for another worker's save of the same token")
        time.sleep(0.02)
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(release, {"key": key})
        conn.commit()
