"""Which keys a token table's rows are sealed under, and whether the store's keys fit.

:func:`encryption_state` counts the rows per key id (``zoho-sa-store check`` prints it);
:func:`check_keys_at_first_use` runs once per store, at its first lookup or save, and logs a
warning when the table holds rows this store cannot open (or when it has no keys at all),
so a wrong key shows up at start rather than at the first user whose row it cannot open.
Both read only ``key_id``, ``id`` and (for the sample) one row per configured key.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.keyring import KEYS_ENV_VAR
from zoho_sa_store.tokens import COLUMNS

if TYPE_CHECKING:
    from zoho_sa_store.store import SQLAlchemyTokenStore

log = logging.getLogger("zoho_sa_store.keys")
Run = Callable[[Callable[[Connection], Any]], Any]
"""Runs one piece of work on a connection of the store's."""
_plain_warned_in: int | None = None
"""The process id that has logged the no-keys warning (once per process)."""


@dataclass(frozen=True)
class EncryptionState:
    """Rows per key id of one table.

    Attributes:
        plain: rows stored in plain text.
        by_key: {key id: rows sealed under it}.
        current: the store's current key id (None: no keys).
        configured: every key id the store holds.
    """

    plain: int
    by_key: dict[str, int] = field(default_factory=dict)
    current: str | None = None
    configured: tuple[str, ...] = ()

    @property
    def unknown(self) -> dict[str, int]:
        """Rows under key ids the store does not hold: they cannot be read."""
        return {k: n for k, n in self.by_key.items() if k not in self.configured}

    @property
    def to_rotate(self) -> int:
        """Rows ``rotate-keys`` would rewrite (every row not under the current key)."""
        return self.plain + sum(n for k, n in self.by_key.items() if k != self.current)

    @property
    def kind(self) -> str:
        """``empty``, ``plain``, ``encrypted`` (one key id) or ``mixed``."""
        if not self.plain and not self.by_key:
            return "empty"
        if not self.by_key:
            return "plain"
        return "encrypted" if not self.plain and len(self.by_key) == 1 else "mixed"

    def lines(self) -> list[str]:
        """The state in words, one line per fact (never a key)."""
        total = self.plain + sum(self.by_key.values())
        out = [f"encryption: {self.kind} ({total} rows)"]
        if self.plain:
            out.append(f"  plain text: {self.plain} rows")
        for key_id, count in sorted(self.by_key.items()):
            role = (
                "current key"
                if key_id == self.current
                else "configured, decrypt only"
                if key_id in self.configured
                else "NOT CONFIGURED: these rows cannot be read"
            )
            out.append(f"  key {key_id}: {count} rows ({role})")
        if self.current is None:
            out.append(f"  no keys configured ({KEYS_ENV_VAR} or --keys): tokens stay plain")
        elif self.to_rotate:
            out.append(f"  {self.to_rotate} rows not under the current key: run rotate-keys")
        return out


def encryption_state(store: SQLAlchemyTokenStore) -> EncryptionState:
    """Count the store's rows per key id (one grouped ``SELECT``).

    Raises:
        TokenStoreError: the database failed.
    """
    from zoho_sa_store.admin import run

    key_id = store.table.c.key_id
    stmt = select(key_id, func.count()).group_by(key_id)
    rows = run(store, "check", lambda conn: conn.execute(stmt).all())
    counts: dict[str | None, int] = {row[0]: int(row[1]) for row in rows}
    plain = counts.pop(None, 0)
    return EncryptionState(
        plain,
        {str(k): n for k, n in counts.items()},
        store.sealing.current_id,
        store.sealing.key_ids,
    )


def check_keys_at_first_use(store: SQLAlchemyTokenStore, run: Run) -> tuple[str, ...]:
    """Log a warning when the store's keys cannot open the table's sealed rows; return
    the key ids of the rows they cannot open (empty when every sampled row opens).

    No keys: one warning per process that tokens are stored in plain text, and one if the
    table holds sealed rows. With keys: one naming a key id of the table that is not
    configured, and one for a configured key id whose sample row does not open (a wrong
    key under that id). A database failure here is left to the call that follows. ``run``
    runs one piece of work on a connection as the store's own calls do (on
    ``sqlite:///:memory:``, in turns with the other threads).
    """
    global _plain_warned_in
    sealing, c = store.sealing, store.table.c
    unreadable: list[str] = []
    try:
        if not sealing.keyed and _plain_warned_in != os.getpid():
            _plain_warned_in = os.getpid()
            log.warning(
                "no encryption keys configured (%s): tokens are stored in plain text",
                KEYS_ENV_VAR,
            )
        # a row under a key id the store lacks: any key id without keys
        lacking = c.key_id.not_in(sealing.key_ids) if sealing.keyed else c.key_id.is_not(None)
        stmt: Any = select(c.id, c.key_id).where(lacking).limit(1)
        row = run(lambda conn: conn.execute(stmt).first())
        if row is not None:
            unreadable.append(str(row.key_id))
            log.warning(
                "table %s holds tokens encrypted under key id %s (e.g. token id %s), %s:"
                " reading them fails; configure %s",
                store.table_name,
                row.key_id,
                row.id,
                "which is not configured" if sealing.keyed else "and this store has no keys",
                KEYS_ENV_VAR,
            )
        columns = (*(c[name] for name in COLUMNS), c.key_id)
        for key_id in sealing.key_ids:
            one: Any = select(*columns).where(c.key_id == key_id).limit(1)
            picked = run(functools.partial(_first, one))
            if picked is None:
                continue
            try:
                sealing.open_row(picked._mapping)
            except TokenStoreError as error:
                log.warning("the configured key %s does not open the table: %s", key_id, error)
                unreadable.append(key_id)
    except TokenStoreError as error:
        log.debug("the keys were not checked: %s", error)
    return tuple(unreadable)


def _first(stmt: Any, conn: Connection) -> Any:
    return conn.execute(stmt).first()


def unreadable_key_ids(store: SQLAlchemyTokenStore) -> tuple[str, ...]:
    """The key ids of the table's rows that the store's keys cannot open: key ids not
    configured, and configured ones whose sample row does not open (a different key under
    the same id). What :func:`check_keys_at_first_use` finds, for ``zoho-sa-store check``;
    a database failure is logged (at debug) and gives none.
    """
    from zoho_sa_store.paging import run as run_on

    return check_keys_at_first_use(store, functools.partial(run_on, store, "check"))
