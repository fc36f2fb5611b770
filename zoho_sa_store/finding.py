"""The store's reads: the newest row a lookup finds, opened, and every row in pages.

The SDK calls ``find_token``/``find_token_by_id`` before every CRM API request and
``get_tokens`` for its token list, as ``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``
shows; which row a token means is :mod:`zoho_sa_store.rules`'s, what a stored row reads as
(opened or plain) :mod:`zoho_sa_store.sealing`'s. :class:`Finder` runs the statements for
:class:`~zoho_sa_store.store.SQLAlchemyTokenStore`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Row

from zoho_sa_store.rules import Lookup
from zoho_sa_store.runner import Runner
from zoho_sa_store.sealing import Criteria, Sealing
from zoho_sa_store.statements import Statements, bind
from zoho_sa_store.tokens import SharedValues, TokenFields


class Finder:
    """The read path of one store's table: its statements, runner and sealing.

    Args:
        sql: the table's :class:`~zoho_sa_store.statements.Statements`.
        db: the store's :class:`~zoho_sa_store.runner.Runner`.
        sealing: the store's :class:`~zoho_sa_store.sealing.Sealing`.
    """

    def __init__(self, sql: Statements, db: Runner, sealing: Sealing) -> None:
        self._sql = sql
        self._db = db
        self.sealing = sealing

    def find(
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
        # bind() fills params in parameters(names)' order, which newest() checked against
        # the compiled SQL's: the tuple needs no per-call reordering
        return self._db.fetch_one(operation, sql, tuple(params.values()) if positional else params)

    def rows(self, batch: int) -> Iterator[TokenFields]:
        """Every stored row's values, opened, ordered by id, ``batch`` (a positive int, checked
        by the caller) rows per read, each read its own short transaction; values many rows
        repeat are shared (:class:`~zoho_sa_store.tokens.SharedValues`).

        Raises:
            TokenStoreError: the database failed, or a row is sealed under a key this store
                does not hold.
        """
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
