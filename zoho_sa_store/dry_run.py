"""Where an import's dry run keeps the rows it would have written: on disk, not in memory.

A dry run writes nothing to the store, yet each batch must be judged against the rows the
batches before it would have imported (a source may hold one id twice). Those rows go to
a scratch SQLite file in a new private temporary directory (mode 0700), deleted when the
dry run ends, with every secret (:data:`~zoho_sa_store.tokens.SECRET_FIELDS`) replaced by
its HMAC-SHA256 under a key made for this run alone: no token or client secret reaches the
disk, and equal values still compare equal, which is all the judging needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import tempfile
from collections.abc import Iterable

from sqlalchemy import Connection, MetaData, create_engine, insert
from sqlalchemy.pool import NullPool

from zoho_sa_store.model import NAMING_CONVENTION, SDK_COLUMNS, token_table
from zoho_sa_store.tokens import SECRET_FIELDS, TokenFields


class DryRunRows:
    """The scratch table of one dry run; :meth:`close` deletes it.

    ``table`` has the store's columns, constraints and indexes, so the import reads it with
    the same statements as the store's table.
    """

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="zoho-sa-store-dry-run-")
        self._key = secrets.token_bytes(32)
        self.engine = create_engine(f"sqlite:///{self._dir.name}/rows.db", poolclass=NullPool)
        self.table = token_table(MetaData(naming_convention=NAMING_CONVENTION), "would_import")
        self.table.create(self.engine)

    def digested(self, row: TokenFields) -> TokenFields:
        """``row`` with each secret replaced by its keyed digest (None stays None)."""
        return dataclasses.replace(
            row,
            **{
                name: hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
                for name in SECRET_FIELDS
                if (value := getattr(row, name)) is not None
            },
        )

    def add(self, conn: Connection, rows: Iterable[TokenFields]) -> None:
        """Keep ``rows`` (already digested) on ``conn``, a connection of :attr:`engine`."""
        values = []
        for row in rows:
            value = {name: getattr(row, name) for name in SDK_COLUMNS}
            value["client_id"] = row.client_id or ""  # as the store keeps it
            values.append(value)
        if values:
            conn.execute(insert(self.table), values)

    def close(self) -> None:
        self.engine.dispose()
        self._dir.cleanup()
