"""Key rotation: rewrite every row not under the current key, online and resumable.

``zoho-sa-store rotate-keys`` (and :func:`rotate_keys`) reads the rows that are not sealed
under the store's current key (plain rows included; with ``to_plaintext``, every sealed
row) by id, ``batch`` rows at a time, and rewrites each one in that batch's short
transaction: secrets opened with the key that sealed them and sealed under the current
key (or left plain), digests, ``key_id`` and ``save_key`` rewritten in the same UPDATE.

Online: workers keep running. Each UPDATE is optimistic: it applies only if the row's
``saved_at`` and ``key_id`` are still those read, so a save that happened meanwhile is never
overwritten with stale values (a worker's save already rewrites a row under the current
key; a row skipped that way is read again in a next pass). Resumable: every batch commits,
and rows already under the target key are not selected again, so a run killed at any point
(``kill -9``) is completed by running it again; a second run finds nothing to do.

``save_key`` (rows inserted without a user name) is rewritten under the current key: a
plain one is keyed directly (the keyed form is an HMAC of the plain one); a keyed one is
recomputed from the row's values when they still give the value stored, otherwise it stays
as it is (an HMAC under the old key: unique, and no hash of a token).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.rules import SAVE_RULES, lookup, save_key
from zoho_sa_store.runner import retryable
from zoho_sa_store.sealing import SECRET_COLUMNS, Sealing
from zoho_sa_store.tokens import COLUMNS, TokenFields

if TYPE_CHECKING:
    from zoho_sa_store.store import SQLAlchemyTokenStore

log = logging.getLogger("zoho_sa_store.keys")
T = TypeVar("T")

BATCH = 100
"""Rows per transaction: short enough that a worker's save waits milliseconds at most."""
BATCH_ATTEMPTS = 5
"""Runs of one batch's transaction when it loses a deadlock to a worker's save."""
PASSES = 3
"""Passes over the table, for rows a concurrent save changed during the previous one."""
_ANALYZE = {
    "sqlite": "ANALYZE {table}",
    "postgresql": "ANALYZE {table}",
    "mysql": "ANALYZE TABLE {table}",
    "mariadb": "ANALYZE TABLE {table}",
}
"""Refresh the planner's statistics: the digest columns were all NULL before a rotation,
and stale statistics can make a planner scan the table instead of using their index."""


@dataclass
class RotationReport:
    """What a rotation did (or, for a dry run, would do).

    Attributes:
        found: rows not under the target key when the run began.
        rewritten: rows rewritten (dry run: rows that would be).
        changed_meanwhile: rows a concurrent save changed before their rewrite, still not
            under the target key at the end (run again).
        unreadable: one message per row no configured key opens (key id and row id).
    """

    target: str
    found: int = 0
    rewritten: int = 0
    changed_meanwhile: int = 0
    unreadable: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        """True when every row is now under the target key (plain text for to-plaintext)."""
        return not self.unreadable and not self.changed_meanwhile

    def summary(self) -> str:
        verb = "would rewrite" if self.dry_run else "rewrote"
        return (
            f"{self.found} rows to move to {self.target}: {verb} {self.rewritten}, "
            f"changed meanwhile {self.changed_meanwhile}, unreadable {len(self.unreadable)}"
        )


def rotate_keys(
    store: SQLAlchemyTokenStore,
    *,
    to_plaintext: bool = False,
    dry_run: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Rewrite every row of the store not under its current key (or, ``to_plaintext``,
    every sealed row as plain text).

    Args:
        store: a store with keys: the current key seals, every configured key opens.
        to_plaintext: decrypt every row instead (the way back out of encryption).
        dry_run: open every row that would be rewritten, write nothing.
        batch: rows per transaction.
        progress: called with the number of rows handled after each batch.

    Returns:
        A :class:`RotationReport`.

    Raises:
        ValueError: the store has no keys, or ``batch`` is not a positive int.
        TokenStoreError: the database failed (the batches before it are committed); a batch
            that loses a deadlock is run again first, up to :data:`BATCH_ATTEMPTS` times.
    """
    sealing = store.sealing
    if not sealing.keyed:
        raise ValueError("rotate-keys needs the keys: the current key first (ZOHO_SA_STORE_KEYS)")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, not {batch!r}")
    from zoho_sa_store.admin import run

    c = store.table.c
    pending = c.key_id.is_not(None) if to_plaintext else (
        c.key_id.is_(None) | (c.key_id != sealing.current_id)
    )  # fmt: skip
    report = RotationReport("plain text" if to_plaintext else f"key {sealing.current_id}")
    report.dry_run = dry_run
    count = select(func.count()).select_from(store.table).where(pending)
    report.found = int(run(store, "rotate-keys", lambda conn: conn.execute(count).scalar_one()))
    columns = (*(c[n] for n in COLUMNS), c.saved_at, c.key_id, c.save_key)
    for _ in range(PASSES):
        after, skipped, unreadable = "", 0, []
        while True:
            page = select(*columns).where(pending, c.id > after).order_by(c.id).limit(batch)

            def work(conn: Connection, page: Any = page) -> tuple[int, int, list[str], str | None]:
                rows = conn.execute(page).all()
                done = changed = 0
                bad: list[str] = []
                for row in rows:
                    outcome = _rewrite(conn, store, row, to_plaintext, dry_run)
                    if outcome is None:
                        changed += 1
                    elif isinstance(outcome, str):
                        bad.append(outcome)
                    else:
                        done += 1
                return done, changed, bad, rows[-1].id if len(rows) == batch else None

            done, changed, bad, last = _run_batch(store, work, write=not dry_run)
            report.rewritten += done
            skipped += changed
            unreadable += bad
            if progress is not None:
                progress(done + changed + len(bad))
            if last is None:
                break
            after = last
        report.unreadable = unreadable
        report.changed_meanwhile = skipped
        if not skipped or dry_run:
            break
    if report.rewritten and not dry_run:
        _analyze(store)
    return report


def _run_batch(store: SQLAlchemyTokenStore, work: Callable[[Connection], T], write: bool) -> T:
    """One batch's transaction, run again (up to :data:`BATCH_ATTEMPTS` times) when it lost a
    deadlock or serialization failure to a worker's save: a batch only rewrites rows still as
    it read them, so running it again is safe."""
    from zoho_sa_store.admin import run

    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            return run(store, "rotate-keys", work, write=write)
        except TokenStoreError as error:
            if attempt == BATCH_ATTEMPTS or not retryable(error.cause):
                raise
            log.debug("rotate-keys: a batch lost a deadlock; running it again (%d)", attempt)
    raise AssertionError("unreachable")


def _analyze(store: SQLAlchemyTokenStore) -> None:
    """Update the table's statistics; a user without the privilege only gets a debug line."""
    sql = _ANALYZE.get(store.engine.dialect.name)
    if sql is None:
        return
    table = store.engine.dialect.identifier_preparer.quote(store.table_name)
    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql(sql.format(table=table))
            conn.commit()
    except SQLAlchemyError as error:
        log.debug("ANALYZE after the rotation failed: %s", type(error).__name__)


def _rewrite(
    conn: Connection, store: SQLAlchemyTokenStore, row: Any, to_plaintext: bool, dry_run: bool
) -> bool | str | None:
    """Rewrite one row read by :func:`rotate_keys`: True when done, None when a save changed
    it meanwhile, a message when no configured key opens it."""
    sealing = store.sealing
    try:
        opened = sealing.open_row(row._mapping)
    except TokenStoreError as error:
        return str(error.error_message)
    if dry_run:
        return True
    assert opened.id is not None
    secrets = {column: getattr(opened, column) for column in SECRET_COLUMNS}
    written = sealing.sealed(opened.id, secrets, plain=to_plaintext)
    if row.save_key is not None:
        written["save_key"] = _save_key(sealing, opened, row.save_key, row.key_id, to_plaintext)
    c = store.table.c
    same_key = c.key_id.is_(None) if row.key_id is None else c.key_id == row.key_id
    stmt = (
        update(store.table)
        .where(c.id == opened.id, c.saved_at == row.saved_at, same_key)
        .values(written)
    )
    return True if conn.execute(stmt).rowcount == 1 else None


def _save_key(
    sealing: Sealing, row: TokenFields, stored: str, key_id: str | None, to_plaintext: bool
) -> str:
    """The row's ``save_key`` for its new key (see the module's docstring)."""
    if key_id is None:  # plain: keyed directly, as Sealing.save_key computes it
        return stored if to_plaintext else sealing.keyed_save_key(stored, str(sealing.current_id))
    found = lookup(row, SAVE_RULES)
    plain = None if found is None else save_key(found)
    if plain is None or sealing.keyed_save_key(plain, key_id) != stored:
        return stored  # not reproducible from the row's values: an opaque keyed value
    return plain if to_plaintext else sealing.keyed_save_key(plain, str(sealing.current_id))
