"""Where the database is and how to connect to it: URL resolution and per-dialect engines.

Every dialect detail of the connection lives here: SQLite's WAL journal and busy timeout,
one shared connection for ``sqlite:///:memory:``, MySQL's isolation level, connect timeouts
and TCP keepalives for servers that vanish, no server-side prepared statements (poolers),
and a new pool in a forked child; how transactions are begun and their waits bounded
(``BEGIN IMMEDIATE`` for SQLite writers, lock and statement timeouts) is in
:mod:`zoho_sa_store.transactions`. No setting the store relies on outlives the transaction
it is made in: no session lock, no ``SET SESSION`` on PostgreSQL, so a transaction-pooling
proxy (PgBouncer, RDS Proxy) can hand each transaction to another server connection.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from typing import Any
from urllib.parse import unquote

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from zoho_sa_store.errors import sqlite_text
from zoho_sa_store.hygiene import password_in_userinfo
from zoho_sa_store.private_files import guard_sqlite_file
from zoho_sa_store.transactions import SQLITE_BUSY_TIMEOUT_MS, explicit_transactions

URL_ENV_VAR = "ZOHO_SA_STORE_URL"
DEFAULT_URL = "sqlite:///zohooauth.db"
CONNECT_TIMEOUT_S = 10
"""Seconds to wait for a server to accept a connection (a host that drops packets)."""
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 30, 10, 3
"""TCP keepalives on PostgreSQL connections: a dead peer is noticed within about a minute."""
MYSQL_READ_TIMEOUT_S = 60
"""Seconds a MySQL/MariaDB client waits for any answer (PyMySQL's read/write timeouts)."""
WRITE_TIMEOUT_S = 30.0
"""The store's default bound, in seconds, on each of its writes (see
:class:`zoho_sa_store.runner.Runner`): each statement on the server (``statement_timeout``,
``max_statement_time``), and on PostgreSQL the whole call, ``COMMIT`` included."""

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
    try:
        return make_url(url)
    except ValueError:  # e.g. a port that is not a number; the text may hold a password
        raise ArgumentError("Could not parse SQLAlchemy URL from given URL string") from None


def sqlite_file(url: str | URL | None) -> str | None:
    """The file a SQLite ``url`` names; None for another database or an in-memory one."""
    resolved = resolve_url(url)
    database = resolved.database
    if resolved.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if resolved.query.get("uri") in ("true", "1") and database.startswith("file:"):
        path, _, query = database[len("file:") :].partition("?")
        if "mode=memory" in query or not path:
            return None
        return unquote(path)
    return database


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


def connect_args(url: URL) -> dict[str, Any]:
    """Default DBAPI ``connect()`` arguments for the URL's driver (the caller's win, key by key).

    * PostgreSQL (psycopg2, psycopg 3): ``connect_timeout`` and TCP keepalives, so a host that
      vanishes fails a call in about a minute instead of the kernel's two hours. psycopg 3
      also gets ``prepare_threshold=None``: no server-side prepared statements, which a
      transaction-pooling PgBouncer (before 1.21) cannot route. Directly on PostgreSQL, opt
      in with ``connect_args={"prepare_threshold": 5}``.
    * MySQL/MariaDB (PyMySQL, mysqlclient): ``connect_timeout``; PyMySQL also read and write
      timeouts, which bound every wait for the server.
    * SQLite: the busy timeout, or one connection shared by threads for ``:memory:``.
    """
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        if _is_memory(url):
            return {"check_same_thread": False}
        return {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    args: dict[str, Any] = {}
    if backend == "postgresql" and driver in ("psycopg2", "psycopg"):
        args = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE_S,
            "keepalives_interval": KEEPALIVE_INTERVAL_S,
            "keepalives_count": KEEPALIVE_COUNT,
        }
        if driver == "psycopg":
            args["prepare_threshold"] = None
    elif backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        args = {"connect_timeout": CONNECT_TIMEOUT_S}
        if driver == "pymysql":
            args["read_timeout"] = args["write_timeout"] = MYSQL_READ_TIMEOUT_S
    # a URL's own query (e.g. ?connect_timeout=3) wins over our defaults
    return {key: value for key, value in args.items() if key not in url.query}


def engine_options(url: URL) -> dict[str, Any]:
    """Default ``create_engine`` options for the URL's dialect (the caller's win).

    No ``pool_pre_ping``: a connection found dead invalidates the whole pool (see
    :mod:`zoho_sa_store.runner`), which costs nothing on the hot path.
    """
    options: dict[str, Any] = {
        "hide_parameters": True,
        "logging_name": LOGGING_NAME,
        "connect_args": connect_args(url),
    }
    if url.get_backend_name() == "sqlite":
        if _is_memory(url):
            options["poolclass"] = StaticPool
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
        The engine, set up by :func:`explicit_transactions` (and :func:`configure_sqlite`)
        and :func:`new_pool_after_fork`. ``connect_args`` given here are merged into
        :func:`connect_args`' defaults key by key.
    """
    resolved = password_in_userinfo(resolve_url(url))  # masked wherever SQLAlchemy prints it
    defaults = engine_options(resolved)
    options = {**defaults, **overrides}
    options["connect_args"] = {**defaults["connect_args"], **overrides.get("connect_args", {})}
    engine = create_engine(resolved, **options)
    new_pool_after_fork(engine)
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


_FORK_SAFE: weakref.WeakSet[Engine] = weakref.WeakSet()


def new_pool_after_fork(engine: Engine) -> None:
    """Give ``engine`` a new, empty pool in every child process forked from this one.

    SQLAlchemy's documented pattern for ``os.fork()`` (celery prefork, gunicorn
    ``--preload``, multiprocessing's fork start method): the child calls
    ``engine.dispose(close=False)``, so it opens connections of its own and never touches
    the parent's, which stay open and usable in the parent. Idempotent; the engine is held
    weakly. ``sqlite:///:memory:`` keeps its one connection (the child's copy of the data).
    """
    if engine in _FORK_SAFE or isinstance(engine.pool, StaticPool):
        return
    _FORK_SAFE.add(engine)
    ref = weakref.ref(engine)

    def in_child() -> None:
        child_engine = ref()
        if child_engine is not None:
            child_engine.dispose(close=False)

    os.register_at_fork(after_in_child=in_child)


def configure_sqlite(engine: Engine, *, memory: bool = False) -> None:
    """Make a SQLite engine safe for many processes sharing one file.

    WAL lets readers run beside one writer; the busy timeout makes a writer wait for the lock
    instead of failing; the driver's own transaction handling is turned off
    (``isolation_level=None``) for :func:`explicit_transactions`, whose ``BEGIN IMMEDIATE``
    makes a writer take its lock up front and never fail mid-transaction with "database is
    locked". This follows SQLAlchemy's SQLite dialect documentation.

    Secrets: a missing database file is created 0600, and a shared one warned about
    (:func:`~zoho_sa_store.private_files.guard_sqlite_file`); ``secure_delete`` overwrites
    deleted rows (old tokens) with zeros; a stored value that is not UTF-8 fails with a
    message that does not quote it (:func:`~zoho_sa_store.errors.sqlite_text`).
    """
    path = None if memory else sqlite_file(engine.url)
    if path is not None:
        read_only = re.search(r"mode=r[ow]\b", str(engine.url)) is not None
        guard_sqlite_file(engine, path, create=not read_only)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.text_factory = sqlite_text
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA secure_delete=ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
