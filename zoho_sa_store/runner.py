"""How the store's statements reach the database: connections, transactions, failures.

One call of the store is one :meth:`Runner.run`: a pooled connection, then either a
single autocommitted statement (lookups, an update by id) or one explicit transaction
(``BEGIN IMMEDIATE`` for SQLite writers, with bounded waits). No lock outlives its
transaction. Every database failure leaves as :class:`TokenStoreError`.

Dead connections: a connection found dead (a restart, a failover, an idle kill) invalidates
the whole pool, as SQLAlchemy's own ``Connection`` does, so every connection opened before
that moment is replaced at its next checkout instead of failing a call; the call is then run
once more, on a connection opened after the failure. Only a call whose fresh connection
fails too (the server is really away) fails. Nothing is added to the hot path: no pre-ping.

Bounded writes: every call that writes is bounded by ``write_timeout``. Its statements carry
a server-side statement timeout; on PostgreSQL a timer also cancels the call's query when
the whole call (``COMMIT`` included: a wait for a synchronous standby is not bounded by the
statement timeout) outlives it. Such a call fails, and its connection is discarded so that a
late cancel request cannot reach the pool's next user.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection, StaticPool

from zoho_sa_store.errors import TokenStoreError, connection_failure, driver_code, store_error
from zoho_sa_store.readers import Readers
from zoho_sa_store.settings import WRITE_TIMEOUT_S
from zoho_sa_store.token_endpoint import RefreshError
from zoho_sa_store.transactions import (
    AUTOCOMMIT_ENGINES,
    ONE_STATEMENT,
    sqlite_busy_timeout,
    write_transaction,
)

log = logging.getLogger("zoho_sa_store.store")
T = TypeVar("T")
_RETRYABLE_CODES = frozenset({"1213", "40001", "40P01"})  # deadlock / serialization failure


class LostRace(Exception):
    """This attempt of a save lost a race with another writer; the save is tried again."""


def retryable(error: BaseException | None) -> bool:
    """A deadlock or serialization failure: the transaction can simply run again."""
    return isinstance(error, DBAPIError) and driver_code(error) in _RETRYABLE_CODES


class Runner:
    """Runs the store's work on ``engine`` for the table ``table_name``.

    Args:
        engine: the store's engine.
        table_name: the token table (named in the "run the migrations" error).
        write_timeout: seconds each writing call may take (None: unbounded).
    """

    def __init__(
        self, engine: Engine, table_name: str, write_timeout: float | None = WRITE_TIMEOUT_S
    ) -> None:
        self.engine = engine
        self.table_name = table_name
        self.write_timeout = write_timeout
        self._commits_itself = engine in AUTOCOMMIT_ENGINES
        # sqlite:///:memory: has one connection for all threads: they take turns
        shared = isinstance(engine.pool, StaticPool)
        self._one_at_a_time: AbstractContextManager[Any] = (
            threading.RLock() if shared else nullcontext()
        )
        self._readers = Readers(engine) if Readers.usable(engine) else None

    def close(self) -> None:
        """Close the connections this runner keeps outside the pool (SQLite readers)."""
        if self._readers is not None:
            self._readers.close()

    @contextmanager
    def transaction(
        self, write: bool, lock_timeout: float | None, deadline: float | None
    ) -> Iterator[Connection]:
        with (
            self._one_at_a_time,
            self.engine.connect() as conn,
            cancel_after(conn, deadline),
        ):
            if not write and lock_timeout is None:
                with sqlite_busy_timeout(conn, deadline):
                    yield conn.execution_options(**{ONE_STATEMENT: True})  # no BEGIN/COMMIT
                    if not self._commits_itself:
                        conn.commit()  # an engine of the caller's, in its driver's transaction
                return
            with write_transaction(conn, lock_timeout, self.write_timeout) as writing:
                yield writing

    def run(
        self,
        operation: str,
        work: Callable[[Connection], T],
        *,
        write: bool = False,
        lock_timeout: float | None = None,
        may_retry: Callable[[], bool] = lambda: True,
        writes: bool | None = None,
        extra_time: float = 0.0,
    ) -> T:
        """Run ``work`` in one transaction; wrap any database failure as TokenStoreError.

        A call that writes (``writes``, by default ``write``) is bounded by the runner's
        ``write_timeout`` plus ``extra_time`` seconds (a refresh's HTTP call and lock wait).

        A connection found dead (SQLAlchemy then invalidates the whole pool) is replaced and
        the call run once more, if ``may_retry()`` says so: every method is idempotent and
        the failed transaction did not commit; a refresh is repeated only if it failed
        before its request was sent (it must not call Zoho twice).
        """
        retry = True
        bounded = write if writes is None else writes
        deadline = None
        if bounded and self.write_timeout is not None:
            deadline = self.write_timeout + extra_time
        while True:
            try:
                with self.transaction(write, lock_timeout, deadline) as conn:
                    return work(conn)
            except DBAPIError as error:
                if retry and error.connection_invalidated and may_retry():
                    log.info("%s: lost the database connection, retrying once", operation)
                    retry = False
                    continue
                raise self._wrap(operation, error) from error
            except SQLAlchemyError as error:
                raise self._wrap(operation, error) from error
            except (TokenStoreError, RefreshError, LostRace):
                raise
            except TimeoutError as error:
                raise TokenStoreError(f"{operation} failed: {error}", cause=error) from error
            except Exception as error:  # a driver failing outside SQLAlchemy's wrapping
                raise store_error(operation, error) from error

    def fetch_one(self, operation: str, sql: str, params: Any) -> tuple[Any, ...] | None:
        """The first row of one statement, straight on a pooled DBAPI connection.

        The hot path: no SQLAlchemy ``Connection`` or result object is built, only the
        pool's checkout, the driver's cursor and SQLAlchemy's own error wrapping and
        disconnect handling. With the store's engines the connection is in autocommit
        mode, so this is one round trip and nothing is left to roll back. On a SQLite file
        the thread's own reader (:mod:`zoho_sa_store.readers`) replaces the pool's checkout.
        """
        if self._readers is not None:
            reader = self._readers.reader()
            if reader is not None:
                with reader.lock:
                    if reader.cursor is not None:  # None: closed meanwhile, use the pool
                        return self._read(operation, reader.cursor, sql, params)
        dialect = self.engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        for attempt in (1, 2):
            with self._one_at_a_time:
                try:
                    raw = self.engine.raw_connection()
                except dbapi_error as error:  # the pool hands the driver's error out as is
                    wrapped = DBAPIError.instance(
                        None, None, error, dbapi_error, hide_parameters=True, dialect=dialect
                    )
                    raise self._wrap(operation, wrapped) from wrapped
                except SQLAlchemyError as error:
                    raise self._wrap(operation, error) from error
                except Exception as error:  # a driver failing outside its DBAPI errors
                    raise store_error(operation, error) from error
                cursor = None
                try:
                    cursor = raw.cursor()
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                    return None if row is None else tuple(row)
                except dbapi_error as error:
                    lost = dialect.is_disconnect(error, raw.dbapi_connection, cursor)
                    if lost:
                        invalidate_pool(self.engine, raw, error)
                    wrapped = DBAPIError.instance(
                        sql, params, error, dbapi_error, hide_parameters=True,
                        dialect=dialect, connection_invalidated=lost,
                    )  # fmt: skip
                    if lost and attempt == 1:
                        log.info("%s: lost the database connection, retrying once", operation)
                        continue
                    raise self._wrap(operation, wrapped) from wrapped
                finally:
                    if cursor is not None:
                        cursor.close()
                    raw.close()
        raise AssertionError("unreachable")

    def _read(self, operation: str, cursor: Any, sql: str, params: Any) -> tuple[Any, ...] | None:
        """One lookup on this thread's SQLite reader, its rows read to the end (no read
        transaction is left open); a failed reader is closed and replaced for the next."""
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        except Exception as error:
            assert self._readers is not None
            self._readers.discard()
            dbapi_error = self.engine.dialect.loaded_dbapi.Error
            if not isinstance(error, dbapi_error):
                raise store_error(operation, error) from error
            wrapped = DBAPIError.instance(
                sql, params, error, dbapi_error, hide_parameters=True, dialect=self.engine.dialect
            )
            raise self._wrap(operation, wrapped) from wrapped
        return rows[0] if rows else None  # sqlite3's rows are tuples

    def _wrap(self, operation: str, error: SQLAlchemyError) -> TokenStoreError:
        return store_error(operation, error, missing_table=self._missing_table(error))

    def _missing_table(self, error: SQLAlchemyError) -> str | None:
        """The table's name if the failure is that it does not exist (checked only on error)."""
        if not isinstance(error, DBAPIError) or error.connection_invalidated:
            return None
        if connection_failure(error):  # do not wait for an unreachable server twice
            return None
        try:
            with self.engine.connect() as conn:
                exists = inspect(conn).has_table(self.table_name)
        except SQLAlchemyError:
            return None
        return None if exists else self.table_name


def invalidate_pool(engine: Engine, raw: PoolProxiedConnection, error: BaseException) -> None:
    """Discard ``raw`` and mark every connection opened before now for replacement.

    What SQLAlchemy's ``Connection`` does on a disconnect (``Pool._invalidate``): the pool's
    other connections are reconnected at their next checkout, since a restart or failover
    that killed one has killed them all.
    """
    engine.pool._invalidate(raw, error)


@contextmanager
def cancel_after(conn: Connection, seconds: float | None) -> Iterator[None]:
    """On PostgreSQL, cancel the connection's query if the block outlives ``seconds``.

    A cancelled ``COMMIT`` that waits for a synchronous standby is reported by PostgreSQL as
    a success (committed locally, not yet replicated): the block is failed all the same,
    with :class:`TimeoutError`, and the connection discarded (a cancel request that arrives
    late must not cancel the next user's statement). Elsewhere a no-op: MySQL/MariaDB
    waits are bounded by the driver's read timeout, SQLite's by its busy timeout.

    Raises:
        TimeoutError: the block outlived ``seconds``.
    """
    if seconds is None or conn.dialect.name != "postgresql":
        yield
        return
    dbapi: Any = conn.connection.dbapi_connection
    fired = threading.Event()

    def cancel() -> None:
        fired.set()
        with suppress(Exception):  # the connection may be gone already
            (getattr(dbapi, "cancel_safe", None) or dbapi.cancel)()  # psycopg 3, psycopg2

    timer = threading.Timer(seconds, cancel)
    timer.daemon = True
    timer.start()
    message = f"no answer from the database within {seconds:g} s (write timeout)"
    try:
        yield
    except BaseException as error:
        timer.cancel()
        if fired.is_set():
            conn.invalidate()
            raise TimeoutError(message) from error
        raise
    timer.cancel()
    if fired.is_set():
        conn.invalidate()
        raise TimeoutError(f"{message}; it may have been committed on the primary only")
