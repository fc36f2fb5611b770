"""SQLite lookups on a connection of each thread's own, taken out of the pool once.

A lookup on SQLite costs a few microseconds in the database; SQLAlchemy's pool checkout and
return cost about as much again. So on a SQLite file each thread that looks tokens up keeps
one connection of its own for its lookups: opened by the engine's pool (its ``connect``
events run, so WAL and the busy timeout are set as on every connection) and then detached
from it (``PoolProxiedConnection.detach()``, SQLAlchemy's documented way to take a
connection out of its pool). Writes still go through the pool.

What keeps this safe:

* Lookups run in autocommit and read their rows to the end, so a reader holds no read
  transaction between calls (WAL checkpoints are never held back) and sees every save
  committed before it.
* At most :data:`MAX_READERS` threads get a reader (more would each keep SQLite's page
  cache); other threads look up through the pool as before.
* A forked child never uses its parent's readers (each process gets new ones), and
  :meth:`Readers.close` closes them all, each once its thread's lookup (if one is under
  way) has ended, never under it; a reader that fails is closed and replaced.

Only for SQLite files: ``sqlite:///:memory:`` keeps its one shared connection, and the
servers' lookups keep the pool (a round trip costs far more than the checkout there, and
the pool is what invalidates connections after a disconnect).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

MAX_READERS = 16
"""Threads that get a SQLite reader of their own; the others use the pool."""


class Readers:
    """Per-thread SQLite connections for the lookups of one store.

    Args:
        engine: the store's SQLite engine (a file database).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        self._open: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._generation = 0
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget(ref))

    @staticmethod
    def usable(engine: Engine) -> bool:
        """True for a SQLite file database on a pool that hands out several connections."""
        return engine.dialect.name == "sqlite" and not isinstance(
            engine.pool, (StaticPool, SingletonThreadPool)
        )

    def reader(self) -> _Holder | None:
        """This thread's reader (a DBAPI ``sqlite3.Connection``), opened on first use; None
        when :data:`MAX_READERS` threads have one already (then use the pool). Use its
        ``cursor`` under its ``lock``: a None cursor means :meth:`close` closed it."""
        local = self._local
        if getattr(local, "generation", -1) == self._generation:
            return local.holder  # type: ignore[no-any-return]
        with self._lock:
            if len(self._open) >= MAX_READERS:
                return None
            generation = self._generation
        raw = self.engine.raw_connection()  # the pool's connect events have run on it
        connection = raw.dbapi_connection
        assert connection is not None
        raw.detach()
        holder = _Holder(connection)
        with self._lock:
            self._open.add(holder)
        local.connection, local.holder, local.generation = connection, holder, generation
        return holder

    def discard(self) -> None:
        """Close this thread's reader (it failed); the next lookup opens another."""
        local = self._local
        holder = getattr(local, "holder", None)
        local.__dict__.clear()
        if holder is not None:
            holder.close()

    def close(self) -> None:
        """Close every thread's reader; lookups after this open new ones."""
        with self._lock:
            self._generation += 1
            holders = list(self._open)
            self._open = weakref.WeakSet()
        for holder in holders:
            holder.close()


class _Holder:
    """One reader connection; closed when its thread ends (the thread-local goes away).

    ``lock`` is held for each lookup on ``cursor``, and by :meth:`close`: closing a sqlite3
    connection while another thread runs a statement on it can crash the process.
    """

    __slots__ = ("__weakref__", "connection", "cursor", "lock")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.cursor: Any | None = connection.cursor()
        self.lock = threading.RLock()  # re-entrant: a failed lookup discards its own reader

    def close(self) -> None:
        with self.lock:
            connection, self.connection, self.cursor = self.connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closed already: nothing to do
                connection.close()

    def __del__(self) -> None:
        self.close()


def _forget(ref: weakref.ref[Readers]) -> None:
    """In a forked child: never use (nor close) the parent's readers."""
    readers = ref()
    if readers is not None:
        readers._generation += 1
        for holder in readers._open:  # dropped, not closed: as engine.dispose(close=False)
            holder.connection = holder.cursor = None
            holder.lock = threading.RLock()  # a parent's thread may have held it
        readers._open = weakref.WeakSet()
