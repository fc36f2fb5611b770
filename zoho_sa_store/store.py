"""``SQLAlchemyTokenStore``: the SDK's ``TokenStore`` over one pooled SQLAlchemy engine.

The SDK calls it as ``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py`` shows:
``find_token``/``find_token_by_id`` before every CRM API request, ``save_token`` after a
grant exchange or refresh, ``delete_token`` from ``OAuthToken.remove()``. Which row a token
means is decided in :mod:`zoho_sa_store.rules`; turning tokens into values and back in
:mod:`zoho_sa_store.tokens`; the statements are run by :mod:`zoho_sa_store.finding` (reads),
:mod:`zoho_sa_store.saving` (saves) and :mod:`zoho_sa_store.refresh_lock` (the coordinated
refresh); this module composes them, one transaction per call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import URL, Engine, MetaData, Table, delete

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.finding import Finder
from zoho_sa_store.hygiene import log_warnings, safe_url
from zoho_sa_store.keyring import Keyring, resolve_keys
from zoho_sa_store.model import DEFAULT_TABLE_NAME, NAMING_CONVENTION, OAuthTokenRow, token_table
from zoho_sa_store.refresh import Refresher, RefreshPolicy
from zoho_sa_store.refresh_lock import RefreshLock
from zoho_sa_store.rules import lookup
from zoho_sa_store.runner import Runner
from zoho_sa_store.saving import Saver
from zoho_sa_store.sdk import OAuthToken, TokenStore
from zoho_sa_store.sealing import Sealing
from zoho_sa_store.settings import (
    WRITE_TIMEOUT_S,
    HideRows,
    check_table_name,
    make_engine,
    new_pool_after_fork,
)
from zoho_sa_store.statements import Statements
from zoho_sa_store.tokens import (
    TokenFields,
    check_expiry,
    clean_id,
    merge_into,
    new_token,
    token_fields,
)

log = logging.getLogger(__name__)

TOKEN_RULES = frozenset({"access", "grant", "refresh"})
"""The rules that look a row up by a token: with keys, by a digest only the right key makes."""


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
        self._unreadable: tuple[str, ...] = ()
        """Key ids of rows this store's keys cannot open, found at first use."""
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
        self._finder = Finder(self._sql, self._db, self.sealing)
        self._saver = Saver(self._sql, self._db, self.sealing)
        self._refresh_lock = RefreshLock(
            self._sql, self._db, self.sealing, self._saver, self._refresher
        )
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
                store does not hold (never None for it); or a lookup by token (whose
                digest only the right key computes) found nothing while the table holds
                rows this store's keys cannot open (found at first use): the row may be
                among them, and None would make the SDK send a used grant again.
        """
        found = lookup(fields)
        if found is None:
            return None
        self._check_keys()
        row = self._finder.find(operation, found, known=known)
        if row is None:
            if self._unreadable and found.rule in TOKEN_RULES:
                ids = ", ".join(self._unreadable)
                raise TokenStoreError(
                    f"{operation}: no row matched the {found.rule} token, and table"
                    f" {self.table_name} holds rows under key id {ids}, which this store's"
                    " keys cannot open: configure the key (ZOHO_SA_STORE_KEYS)"
                )
            return None
        return self._fresh(*row)

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
        return self._saver.save(fields)

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
        yield from self._finder.rows(batch)

    def delete_tokens(self) -> None:
        """Delete every row, in one statement.

        Raises:
            TokenStoreError: the database failed.
        """
        self._db.run("delete_tokens", lambda conn: conn.execute(delete(self.table)), write=True)

    # -- coordinated refresh ------------------------------------------------------------

    def _fresh(self, row: TokenFields, saved_at: int | None) -> TokenFields:
        return self._refresher.fresh(row, self._refresh_lock.refresh_locked, saved_at)

    # -- keys ---------------------------------------------------------------------------

    def _check_keys(self) -> None:
        """Once per store, at its first use: warn about keys that cannot open the table."""
        if not self._keys_checked:
            self._keys_checked = True
            from zoho_sa_store.keystate import check_keys_at_first_use

            run = functools.partial(self._db.run, "check keys")
            self._unreadable = check_keys_at_first_use(self, run)
