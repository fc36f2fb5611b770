"""The coordinated refresh's database side: the row lock, the re-read, the save of
Zoho's answer in the same transaction, and the clock-skew check.

The SDK refreshes an expired token itself
(``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``, ``get_token``);
:mod:`zoho_sa_store.refresh` decides when the store refreshes first and runs the steps, and
:class:`RefreshLock` gives it the row, locked, for the whole exchange with Zoho Accounts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Connection

from zoho_sa_store.refresh import Refresher, RefreshStep
from zoho_sa_store.runner import Runner
from zoho_sa_store.saving import Saver
from zoho_sa_store.sealing import Sealing
from zoho_sa_store.statements import Statements
from zoho_sa_store.tokens import TokenFields

log = logging.getLogger("zoho_sa_store.store")  # the store's logger (README: Logs)

wall_clock: Callable[[], float] = time.time
"""This machine's clock (epoch seconds) that a refresh compares with the database's."""

_SERVER_CLOCK_SQL = {
    # clock_timestamp(), not now(): now() is the transaction's start, before the lock wait
    "postgresql": "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
    "mysql": "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
    "mariadb": "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
}
"""The database server's clock in epoch µs, by dialect (SQLite: this machine's own)."""
_skew_warned_in: int | None = None
"""The process id that has logged the clock-skew warning (once per process)."""


class RefreshLock:
    """One store's locked refresh step, for :meth:`Refresher.fresh
    <zoho_sa_store.refresh.Refresher.fresh>`.

    Args:
        sql: the table's :class:`~zoho_sa_store.statements.Statements`.
        db: the store's :class:`~zoho_sa_store.runner.Runner`.
        sealing: the store's :class:`~zoho_sa_store.sealing.Sealing`.
        saver: the store's :class:`~zoho_sa_store.saving.Saver` (writes the answer).
        refresher: the store's :class:`~zoho_sa_store.refresh.Refresher` (its policy's
            lock and HTTP timeouts and window).
    """

    def __init__(
        self, sql: Statements, db: Runner, sealing: Sealing, saver: Saver, refresher: Refresher
    ) -> None:
        self._sql = sql
        self._db = db
        self.sealing = sealing
        self._saver = saver
        self._refresher = refresher

    def refresh_locked(self, row_id: str, refresh: RefreshStep) -> TokenFields | None:
        """Lock the row, re-read it, let ``refresh`` decide; save its answer; return the row."""

        asked_zoho = False

        def locked(conn: Connection) -> TokenFields | None:
            nonlocal asked_zoho
            # lock by a no-op UPDATE, not SELECT ... FOR UPDATE: it fails for a user who may
            # not write the table, before Zoho is asked for a token that could not be saved
            self._sql.execute(conn, self._sql.lock_row(), {"row_id": row_id})
            self._check_clock(conn)
            row = self._sql.execute(conn, self._sql.select(("id",)), {"id": row_id}).first()
            if row is None:
                return None
            current = self.sealing.open_row(row._mapping)
            asked_zoho = True
            answer = refresh(current, row.saved_at)
            if answer is None:
                return current  # another worker refreshed it while we waited
            values = answer.values()
            self._saver.update(conn, row_id, {**values, "saved_at": time.time_ns() // 1000})
            return replace(current, **values)

        policy = self._refresher.policy
        return self._db.run(
            "refresh",
            locked,
            lock_timeout=policy.lock_timeout,
            may_retry=lambda: not asked_zoho,  # never a second request to Zoho
            writes=True,
            extra_time=policy.lock_timeout + policy.http_timeout,
        )

    def _check_clock(self, conn: Connection) -> None:
        """Warn (once per process) when this machine's clock and the database server's
        differ by more than a quarter of the refresh window.

        Expiry times are written by each worker's clock and compared with another's: a
        worker whose clock is ahead refreshes too early, one behind serves expired tokens.
        """
        global _skew_warned_in
        sql = _SERVER_CLOCK_SQL.get(conn.dialect.name)
        if sql is None or _skew_warned_in == os.getpid():
            return
        before = wall_clock()
        server_us = conn.exec_driver_sql(sql).scalar()
        after = wall_clock()
        if server_us is None:
            return
        skew = (before + after) / 2 - int(server_us) / 1e6
        window = self._refresher.policy.window
        if abs(skew) > window / 4:
            _skew_warned_in = os.getpid()
            log.warning(
                "this machine's clock is %+.1f s off the database server's (more than a quarter"
                " of the %g s refresh window): tokens are refreshed too early or served after"
                " they expire; keep both clocks synchronised with NTP (chrony,"
                " systemd-timesyncd)",
                skew,
                window,
            )
