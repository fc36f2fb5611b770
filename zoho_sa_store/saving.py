"""Saving a token: the first insert in one statement, else a lookup and an update in one
transaction, tried again when it loses a race to another writer.

The SDK calls ``save_token`` as ``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``
shows; which row a save updates is the rule of its own stores
(``zohocrmsdk/src/com/zoho/api/authenticator/store/db_store.py``, ``save_token``), kept as
data in :data:`zoho_sa_store.rules.SAVE_RULES`; what a write stores
(sealed or plain) is :mod:`zoho_sa_store.sealing`'s. :class:`Saver` runs the statements for
:meth:`SQLAlchemyTokenStore.save_fields <zoho_sa_store.store.SQLAlchemyTokenStore.save_fields>`
and the coordinated refresh's write (:mod:`zoho_sa_store.refresh_lock`).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.rules import SAVE_RULES, Lookup, lookup
from zoho_sa_store.runner import LostRace, Runner, retryable
from zoho_sa_store.sealing import SECRET_COLUMNS, Criteria, Sealing
from zoho_sa_store.statements import Statements, bind
from zoho_sa_store.tokens import TokenFields

log = logging.getLogger("zoho_sa_store.store")  # the store's logger (README: Logs)

SAVE_ATTEMPTS = 3
"""Tries of a save that lost an insert race or a deadlock to another writer."""


class Saver:
    """The save path of one store's table: its statements, runner and sealing.

    Args:
        sql: the table's :class:`~zoho_sa_store.statements.Statements`.
        db: the store's :class:`~zoho_sa_store.runner.Runner`.
        sealing: the store's :class:`~zoho_sa_store.sealing.Sealing`.
    """

    def __init__(self, sql: Statements, db: Runner, sealing: Sealing) -> None:
        self._sql = sql
        self._db = db
        self.sealing = sealing

    def save(self, fields: TokenFields) -> str:
        """Upsert validated, non-empty values (checked by the caller); return the row's id.

        A token with an id is first one UPDATE of that row outside a transaction (the SDK's
        save after a refresh); a new token is one guarded INSERT (:meth:`_insert_new`); the
        rest is a lookup and an update or insert in one transaction (:meth:`_upsert`).

        Raises:
            TokenStoreError: the database failed, or the update would give a second row to
                one (user_name, client_id).
        """
        if fields.id is not None:  # the SDK's save after a refresh: one UPDATE, no transaction
            values, row_id = _saved_values(fields), fields.id
            update = functools.partial(self.update, row_id=row_id, values=values, reseal=False)
            if self._db.run("save_token", update, writes=True):
                return row_id
        return self._insert_new(fields) or self._save_in_transaction(fields)

    def _first(self, conn: Connection, found: Lookup) -> Row[Any] | None:
        search = self.sealing.search(found)  # the save rules compare no secret in Python
        row = self._first_where(conn, search.criteria)
        if row is None and search.fallback is not None:
            row = self._first_where(conn, search.fallback)
        return row

    def _first_where(self, conn: Connection, criteria: Criteria) -> Row[Any] | None:
        names, params = bind(criteria)
        return self._sql.execute(conn, self._sql.select(names, newest=True), params).first()

    def _upsert(self, conn: Connection, fields: TokenFields) -> str:
        """Update the row the token means, or insert one; return the row's id.

        A token with the id of a stored row costs one UPDATE: the SDK's saves after a
        refresh. Otherwise the rules find the row to update, or a row is inserted. No lock is
        taken: of two workers inserting one token, a unique constraint admits the first,
        ``(user_name, client_id)`` or, without a user name, ``save_key``; the other's insert
        fails, and its next attempt finds and updates the winner's row.
        """
        values = _saved_values(fields)
        if fields.id is not None and self.update(conn, fields.id, values):
            return fields.id
        found = lookup(fields, SAVE_RULES)
        row = None if found is None else self._first(conn, found)
        keys = None if found is None else self.sealing.save_keys(found)
        if row is None and keys is not None:  # the row this token inserted, since updated
            row = self._first_where(conn, (("save_key", keys),))
        if row is not None:
            if not self.update(conn, row.id, values):
                raise LostRace("the row was deleted by another worker meanwhile")
            return str(row.id)
        new_id = fields.id or str(uuid.uuid4())
        values = {"client_id": "", **values, "id": new_id}
        key = None if found is None else self.sealing.save_key(found)
        if key is not None:
            values["save_key"] = key
        values = self.sealing.sealed(new_id, values)
        try:
            self._sql.execute(conn, self._sql.insert(tuple(sorted(values))), values)
        except IntegrityError as error:
            raise LostRace("another worker inserted the same token meanwhile") from error
        return new_id

    def _save_in_transaction(self, fields: TokenFields) -> str:
        """Look the row up and update it, or insert, in one transaction; tried again when
        it lost a race or a deadlock to another writer. Returns the row's id."""
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                return self._db.run(
                    "save_token",
                    lambda conn: self._upsert(conn, fields),
                    write=True,
                )
            except (LostRace, TokenStoreError) as error:
                cause = error.__cause__ if isinstance(error, LostRace) else error.cause
                if isinstance(error, TokenStoreError) and not retryable(cause):
                    raise
                if attempt == SAVE_ATTEMPTS:
                    message = f"save_token failed: {error} ({SAVE_ATTEMPTS} attempts)"
                    raise TokenStoreError(message, cause=cause) from error
                log.debug("save_token: %s; trying again (attempt %d)", error, attempt)
        raise AssertionError("unreachable")

    def _insert_new(self, fields: TokenFields) -> str | None:
        """A new token's first save in one statement; its row id, or None when a row the
        save rules would update exists (or a concurrent save inserted one): then the save
        runs as a lookup and an update (:meth:`_upsert`).

        The insert is guarded by the save rules' own criteria (``NOT EXISTS`` the token's
        id, the row the rules find, its ``save_key``), so it inserts exactly when the rules
        would; a unique conflict does nothing (see
        :meth:`~zoho_sa_store.statements.Statements.insert_new`). No existing row is ever
        written: the values go only into the new row, under the id they were made for.
        """
        found = lookup(fields, SAVE_RULES)
        new_id = fields.id or str(uuid.uuid4())
        values = {"client_id": "", **_saved_values(fields), "id": new_id}
        groups: list[Criteria] = [(("id", new_id),)]
        if found is not None:
            search = self.sealing.search(found)  # digests with keys, as the lookup compares
            if search.check:  # a secret compared in Python: the transaction's lookup does it
                return None
            groups.append(search.criteria)
            if search.fallback is not None:  # keyed: plain rows are compared by their tokens
                groups.append(search.fallback)
            key, keys = self.sealing.save_key(found), self.sealing.save_keys(found)
            if key is not None and keys is not None:
                values["save_key"] = key
                groups.append((("save_key", keys),))
        sealed = self.sealing.sealed(new_id, values)  # bound to the new row's id only
        params, guards = dict(sealed), []
        for k, group in enumerate(groups):
            shape, group_params = bind(group)
            guards.append(shape)
            params |= {f"g{k}_{name}": value for name, value in group_params.items()}
        stmt = self._sql.insert_new(tuple(sorted(sealed)), tuple(guards))

        def insert(conn: Connection) -> int:
            try:
                return int(self._sql.execute(conn, stmt, params).rowcount)
            except IntegrityError:  # a concurrent save inserted the row (no conflict clause)
                return 0

        try:
            inserted = self._db.run("save_token", insert, writes=True)
        except TokenStoreError as error:
            if retryable(error.cause):  # a deadlock: the transaction's retries take over
                return None
            raise
        return new_id if inserted == 1 else None

    def update(
        self, conn: Connection, row_id: str, values: dict[str, Any], reseal: bool = True
    ) -> bool:
        """Write ``values`` into row ``row_id``; False when there is no such row.

        One UPDATE of a row already under this store's key (or plain, without keys). A row
        under another key (a rotation under way) or plain while keys are configured is
        rewritten whole under the current key, within the caller's transaction
        (``reseal``; without it: False, and the caller runs a transaction).

        Raises:
            TokenStoreError: another row holds the (user_name, client_id); the row is
                sealed under a key this store cannot open.
        """
        written = self.sealing.sealed(row_id, values)
        params = {**written, "row_id": row_id}
        if self.sealing.keyed:
            params["row_key_id"] = self.sealing.current_id
        stmt = self._sql.update(tuple(sorted(written)), sealed=self.sealing.keyed)
        try:
            updated = self._sql.execute(conn, stmt, params).rowcount
        except IntegrityError as error:
            message = "save_token failed: another row has this token's (user_name, client_id)"
            raise TokenStoreError(message, cause=error) from error
        if updated == 1 or not reseal:
            return bool(updated == 1)
        return self._reseal(conn, row_id, values)

    def _reseal(self, conn: Connection, row_id: str, values: dict[str, Any]) -> bool:
        """Lock row ``row_id``, open it, and rewrite all of it with ``values`` merged in."""
        if self._sql.execute(conn, self._sql.lock_row(), {"row_id": row_id}).rowcount != 1:
            return False
        row = self._sql.execute(conn, self._sql.select(("id",)), {"id": row_id}).first()
        if row is None:
            return False
        merged = {
            **dict.fromkeys(SECRET_COLUMNS),
            **self.sealing.open_row(row._mapping).present(),
            **values,
        }
        merged.pop("id", None)
        written = self.sealing.sealed(row_id, merged)
        self._sql.execute(
            conn, self._sql.update(tuple(sorted(written))), {**written, "row_id": row_id}
        )
        return True


def _saved_values(fields: TokenFields) -> dict[str, Any]:
    """The columns a save writes: the token's non-blank fields (not its id) and saved_at."""
    values: dict[str, Any] = fields.present()
    values.pop("id", None)
    values["saved_at"] = time.time_ns() // 1000
    return values
