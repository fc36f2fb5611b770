"""``SQLAlchemyTokenStore``: the SDK's ``TokenStore`` over one pooled SQLAlchemy engine.

The SDK calls it as ``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py`` shows:
``find_token``/``find_token_by_id`` before every CRM API request, ``save_token`` after a
grant exchange or refresh, ``delete_token`` from ``OAuthToken.remove()``. Which row a token
means is decided in :mod:`zoho_sa_store.rules`; turning tokens into values and back in
:mod:`zoho_sa_store.tokens`; this module only runs statements, one transaction per call.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    MetaData,
    Row,
    Table,
    delete,
)
from sqlalchemy.exc import IntegrityError

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.hygiene import log_warnings, safe_url
from zoho_sa_store.keyring import Keyring, resolve_keys
from zoho_sa_store.model import DEFAULT_TABLE_NAME, NAMING_CONVENTION, OAuthTokenRow, token_table
from zoho_sa_store.refresh import Refresher, RefreshPolicy, RefreshStep
from zoho_sa_store.rules import SAVE_RULES, Lookup, lookup
from zoho_sa_store.runner import LostRace, Runner, retryable
from zoho_sa_store.sdk import OAuthToken, TokenStore
from zoho_sa_store.sealing import SECRET_COLUMNS, Criteria, Sealing
from zoho_sa_store.settings import (
    WRITE_TIMEOUT_S,
    HideRows,
    check_table_name,
    make_engine,
    new_pool_after_fork,
)
from zoho_sa_store.statements import Statements, bind, parameters
from zoho_sa_store.tokens import (
    SharedValues,
    TokenFields,
    check_expiry,
    clean_id,
    merge_into,
    new_token,
    token_fields,
)

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3
"""Tries of a save that lost an insert race or a deadlock to another writer."""

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


class SQLAlchemyTokenStore(TokenStore):  # type: ignore[misc]
    """The Zoho CRM SDK's token store, in any database SQLAlchemy reaches.

    Args:
        url: a SQLAlchemy URL (str or ``sqlalchemy.URL``). None: ``$ZOHO_SA_STORE_URL``,
            else ``sqlite:///zohooauth.db``.
        engine: an existing engine to use instead of ``url`` (not disposed by
            :meth:`close`). For SQLite, build it with :func:`zoho_sa_store.make_engine`.
        table_name: the table's name (letters, digits, underscores).
        refresh: coordinated refresh (see :meth:`find_token`): True (the default policy:
            60 s window), False (off), or a :class:`~zoho_sa_store.refresh.RefreshPolicy`.
        write_timeout: seconds each save or delete may take, ``COMMIT`` included (a
            refresh: this plus its HTTP and lock timeouts); None: unbounded. Past it the
            call raises :class:`TokenStoreError`. Default 30.
        keys: the encryption keys: ``"KEY_ID:KEY,..."`` (the first seals, the others only
            open; see :mod:`zoho_sa_store.keyring`) or a
            :class:`~zoho_sa_store.keyring.Keyring`. None: ``$ZOHO_SA_STORE_KEYS``, and
            without it secrets are stored in plain text (one warning per process).
        **engine_options: ``create_engine`` options that replace the defaults of
            :func:`zoho_sa_store.settings.engine_options`.

    Raises:
        TypeError: both ``engine`` and ``url``/options given, or arguments of a wrong type.
        ValueError: an invalid ``table_name`` or ``write_timeout``;
            :class:`~zoho_sa_store.keyring.KeyringError` (a ValueError) for malformed keys.

    The table is made by the migrations (``zoho-sa-store upgrade`` or
    :func:`zoho_sa_store.upgrade`); the store never checks the schema on the hot path, and a
    missing table surfaces as :class:`TokenStoreError` saying so.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        table_name: str = DEFAULT_TABLE_NAME,
        refresh: RefreshPolicy | bool = True,
        write_timeout: float | None = WRITE_TIMEOUT_S,
        keys: str | Keyring | None = None,
        **engine_options: Any,
    ) -> None:
        self.table_name = check_table_name(table_name)
        self.sealing = Sealing(resolve_keys(keys), self.table_name)
        """Where secrets are sealed and opened (see :mod:`zoho_sa_store.sealing`)."""
        self._keys_checked = False
        if write_timeout is not None and (
            isinstance(write_timeout, bool)
            or not isinstance(write_timeout, (int, float))
            or not 0 < write_timeout < 86_400
        ):
            raise ValueError(
                f"write_timeout must be a number of seconds or None, not {write_timeout!r}"
            )
        self._refresher = Refresher(refresh)
        if engine is not None:
            if url is not None or engine_options:
                raise TypeError("pass either engine or url/engine options, not both")
            if not isinstance(engine, Engine):
                raise TypeError(f"engine must be a sqlalchemy Engine, not {type(engine).__name__}")
        self._owns_engine = engine is None
        self.engine: Engine = engine if engine is not None else make_engine(url, **engine_options)
        self.table: Table = (
            OAuthTokenRow.__table__
            if table_name == DEFAULT_TABLE_NAME
            else token_table(MetaData(naming_convention=NAMING_CONVENTION), table_name)
        )
        self._sql = Statements(self.table, self.engine.dialect)
        self._db = Runner(self.engine, self.table_name, write_timeout)
        new_pool_after_fork(self.engine)  # also for an engine of the caller's
        for warning in log_warnings(self.engine, HideRows):  # echo=, hide_parameters=False...
            log.warning("%s", warning)

    def __repr__(self) -> str:
        url = safe_url(self.engine.url)
        keys = f", key_ids={self.sealing.key_ids!r}" if self.sealing.keyed else ""
        return f"SQLAlchemyTokenStore({url!r}, table_name={self.table_name!r}{keys})"

    def close(self) -> None:
        """Dispose of the engine's pooled connections (only when the store created it)."""
        self._db.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> SQLAlchemyTokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the SDK's TokenStore methods ---------------------------------------------------

    def find_token(self, token: OAuthToken) -> OAuthToken | None:
        """Find the stored row the token means and merge it into the token.

        Args:
            token: an ``OAuthToken``; the first rule of :mod:`zoho_sa_store.rules` that
                applies to it picks the row.

        Returns:
            The same ``token`` with its blank fields filled from the row (its own values win,
            ``user_signature`` set from ``user_name``), or None when no rule applies or no row
            matches (the token is then untouched).

        Coordinated refresh: when the row's access token expires within the policy's window
        (capped at half the lifetime the token had when saved) and the SDK is initialized,
        giving the accounts URL, the store locks the row (a no-op UPDATE, which a user who
        may not write the table is refused before Zoho is asked), re-reads it and, only if
        it is still stale, refreshes it at Zoho Accounts and saves
        the answer before the lock is released. Other workers wait on the lock and then read
        the fresh token, so one refresh serves every process. The lock is held across the
        HTTP call on purpose: released earlier, a waiting worker would see the stale row
        and refresh again. A failed refresh is logged and the stored token returned as it
        is (the SDK then refreshes on its own); it never raises.

        Raises:
            TypeError, ValueError: ``token`` is not a valid ``OAuthToken``; no SQL runs.
            TokenStoreError: the database failed (never None for a missing table).
        """
        fields = token_fields(token)
        row = self.find_fields(fields, known=fields)
        return None if row is None else merge_into(token, row)

    def find_token_by_id(self, id: str) -> OAuthToken | None:
        """A new, complete ``OAuthToken`` built from row ``id``; None when there is none.

        Raises:
            TypeError, ValueError: ``id`` is not a str / not a valid id; no SQL runs.
            TokenStoreError: the database failed, or the row is sealed under a key this
                store does not hold.
        """
        token_id = clean_id(id)
        if token_id is None:
            return None
        row = self.find_fields(TokenFields(id=token_id), "find_token_by_id")
        return None if row is None else new_token(row)

    def save_token(self, token: OAuthToken) -> None:
        """Upsert the token; on return the row is committed.

        The row: the token's id if that row exists, else the first row found by the
        user/access/grant/refresh rules, else a new row with the token's id or a new UUID
        (then set on the token). An update writes only the token's non-blank fields, so a
        refresh answer without a refresh token never blanks the stored one.

        Raises:
            TypeError, ValueError: not a valid ``OAuthToken``, its ``expires_in`` is not epoch
                milliseconds of years 2001..2286 (13 digits, see
                :func:`~zoho_sa_store.tokens.check_expiry`), or it has no access, refresh
                or grant token (nothing to store); nothing is written.
            TokenStoreError: the database failed, or the update would give a second row to
                one (user_name, client_id).
        """
        row_id = self.save_fields(token_fields(token))
        if token.get_id() != row_id:
            token.set_id(row_id)  # a new row, or the row the rules found

    # -- the SDK-free core, which adapters of other SDK interfaces share -----------------

    def find_fields(
        self,
        fields: TokenFields,
        operation: str = "find_token",
        known: TokenFields | None = None,
    ) -> TokenFields | None:
        """The row the first rule of :mod:`zoho_sa_store.rules` that applies to ``fields``
        finds (the newest), after the coordinated refresh (see :meth:`find_token`); None when
        no rule applies or no row matches.

        Args:
            fields: validated values (:func:`~zoho_sa_store.tokens.token_fields`, or an
                adapter's own conversion, e.g. :mod:`zoho_sa_store.legacy`).
            operation: the name failures and log lines give.
            known: values the caller keeps whatever the row holds (a merge keeps the
                caller's own): their secrets are not decrypted.

        Raises:
            TokenStoreError: the database failed, or the row is sealed under a key this
                store does not hold (never None for it).
        """
        found = lookup(fields)
        if found is None:
            return None
        self._check_keys()
        row = self._find(operation, found, known=known)
        return None if row is None else self._fresh(*row)

    def save_fields(self, fields: TokenFields) -> str:
        """Upsert validated values as :meth:`save_token` does; return the row's id.

        Raises:
            ValueError: as :meth:`save_token`; nothing is written.
            TokenStoreError: as :meth:`save_token`.
        """
        check_expiry(fields.expiry_time)
        if (
            fields.access_token is None
            and fields.refresh_token is None
            and fields.grant_token is None
        ):
            raise ValueError("nothing to store: the token has no access, refresh or grant token")
        self._check_keys()
        if fields.id is not None:  # the SDK's save after a refresh: one UPDATE, no transaction
            values, row_id = _saved_values(fields), fields.id
            update = functools.partial(self._update, row_id=row_id, values=values, reseal=False)
            if self._db.run("save_token", update, writes=True):
                return row_id
        return self._insert_new(fields) or self._save_in_transaction(fields)

    def delete_token(self, id: str) -> None:
        """Delete row ``id``; an unknown or blank id deletes nothing and is not an error.

        Raises:
            TypeError, ValueError: ``id`` is not a str / not a valid id.
            TokenStoreError: the database failed.
        """
        token_id = clean_id(id)
        if token_id is not None:
            stmt = delete(self.table).where(self.table.c.id == token_id)
            self._db.run("delete_token", lambda conn: conn.execute(stmt), write=True)

    def get_tokens(self) -> list[OAuthToken]:
        """Every stored token, as complete ``OAuthToken`` objects ordered by id.

        Read a page at a time (:meth:`iter_tokens`), so the list itself is all that grows
        with the table; the tokens share equal client ids and secrets, redirect URLs and API
        domains (:class:`~zoho_sa_store.tokens.SharedValues`).

        Raises:
            TokenStoreError: the database failed.
        """
        return list(self.iter_tokens())

    def all_fields(self) -> list[TokenFields]:
        """Every stored row's values, opened, ordered by id (the SDK-free part of
        :meth:`get_tokens`; read a page at a time as :meth:`iter_fields` does).

        Raises:
            TokenStoreError: the database failed, or a row is sealed under a key this store
                does not hold.
        """
        return list(self.iter_fields())

    def iter_tokens(self, batch: int = 1000) -> Iterator[OAuthToken]:
        """Every stored token, as complete ``OAuthToken`` objects ordered by id, streamed.

        Rows are read ``batch`` at a time (by id, after the last one seen), so memory stays
        bounded whatever the table's size and no transaction stays open between batches.

        Raises:
            ValueError: ``batch`` is not a positive int.
            TokenStoreError: the database failed, or a row is sealed under a key this store
                does not hold.
        """
        return (new_token(fields) for fields in self.iter_fields(batch))

    def iter_fields(self, batch: int = 1000) -> Iterator[TokenFields]:
        """Every stored row's values, opened, ordered by id, ``batch`` rows per read (the
        SDK-free part of :meth:`iter_tokens`, which raises as it does).

        Values many rows repeat (client id and secret, redirect URL, API domain) are shared
        (:class:`~zoho_sa_store.tokens.SharedValues`).
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive int, not {batch!r}")
        after = ""
        shared = SharedValues()
        while True:
            rows = self._db.run("iter_tokens", functools.partial(self._page, after, batch))
            for row in rows:
                yield shared(self.sealing.open_row(row._mapping))
            if len(rows) < batch:
                return
            after = rows[-1].id

    def _page(self, after: str, size: int, conn: Connection) -> Sequence[Row[Any]]:
        return self._sql.execute(conn, self._sql.page(), {"after": after, "size": size}).all()

    def delete_tokens(self) -> None:
        """Delete every row, in one statement.

        Raises:
            TokenStoreError: the database failed.
        """
        self._db.run("delete_tokens", lambda conn: conn.execute(delete(self.table)), write=True)

    # -- coordinated refresh ------------------------------------------------------------

    def _fresh(self, row: TokenFields, saved_at: int | None) -> TokenFields:
        return self._refresher.fresh(row, self._refresh_locked, saved_at)

    def _refresh_locked(self, row_id: str, refresh: RefreshStep) -> TokenFields | None:
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
            self._update(conn, row_id, {**values, "saved_at": time.time_ns() // 1000})
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

    # -- statements ---------------------------------------------------------------------

    def _check_keys(self) -> None:
        """Once per store, at its first use: warn about keys that cannot open the table."""
        if not self._keys_checked:
            self._keys_checked = True
            from zoho_sa_store.keystate import check_keys_at_first_use

            check_keys_at_first_use(self, functools.partial(self._db.run, "check keys"))

    def _find(
        self, operation: str, found: Lookup, known: TokenFields | None = None
    ) -> tuple[TokenFields, int | None] | None:
        """The row a lookup finds (the newest), opened, and its saved_at.

        One round trip; with keys, a second one (by the raw token) only when the digests
        find nothing, for plain rows not yet sealed (see :meth:`Sealing.search`).
        ``known``: the caller's token, whose own secrets are not decrypted (see
        :meth:`Sealing.opened`); those the lookup compares after decryption always are.
        """
        search = self.sealing.search(found)
        row = self._fetch_newest(operation, search.criteria)
        if row is None and search.fallback is not None:
            row = self._fetch_newest(operation, search.fallback)
        if row is None:
            return None
        # the SELECT lists the SDK's columns in TokenFields' order, saved_at, key_id; "": None
        *values, saved_at, key_id = row
        row_fields = TokenFields(*(value or None for value in values))
        opened = self.sealing.opened(row_fields, key_id, None if search.check else known)
        return (opened, saved_at) if search.matches(opened) else None

    def _fetch_newest(self, operation: str, criteria: Criteria) -> tuple[Any, ...] | None:
        names, params = bind(criteria)
        sql, positional = self._sql.newest(names)
        if positional:
            return self._db.fetch_one(operation, sql, tuple(params[n] for n in parameters(names)))
        return self._db.fetch_one(operation, sql, params)

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
        if fields.id is not None and self._update(conn, fields.id, values):
            return fields.id
        found = lookup(fields, SAVE_RULES)
        row = None if found is None else self._first(conn, found)
        keys = None if found is None else self.sealing.save_keys(found)
        if row is None and keys is not None:  # the row this token inserted, since updated
            row = self._first_where(conn, (("save_key", keys),))
        if row is not None:
            if not self._update(conn, row.id, values):
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

    def _update(
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
