"""The encrypted variant's rows: the same rows as ours, sealed once, in a table of their own.

Row ``i`` is :func:`bench.rows.our_row` with its secrets sealed by the store's own
:class:`~zoho_sa_store.sealing.Sealing` under :data:`BENCH_KEYS`: what ``rotate_keys``
writes into a plain row (sealed secrets, their digests, ``key_id``), written at fill time
in bulk, since rewriting a million filled rows one ``UPDATE`` at a time takes far longer.
The table is ``<table>_enc`` on the servers, and on SQLite in a file of its own.
"""

from __future__ import annotations

import base64
from typing import Any

from bench.fill import DBAPITarget, OurSQLite
from bench.fill_servers import OurMariaDB, OurPostgres
from bench.rows import OUR_COLUMNS, Row, our_row

BENCH_KEYS = "bench:" + base64.urlsafe_b64encode(bytes(range(32))).decode()
"""The encrypted variant's keyring (a fixed key: these rows are the benchmark's own)."""
BENCH_KEY_ID = "bench"
SUFFIX = "_enc"
"""The sealed copy's table: ``<table>_enc`` (and ``ours-<rows>_enc.db`` on SQLite)."""


def sealed_table(table: str) -> str:
    return table + SUFFIX


class _Sealed(DBAPITarget):
    """A fill target whose rows are sealed; reused only when its last row is sealed too."""

    def seal_with(self, keys: str) -> None:
        from zoho_sa_store.cipher import DIGEST_COLUMNS
        from zoho_sa_store.keyring import parse_keys
        from zoho_sa_store.sealing import Sealing

        self.sealing = Sealing(parse_keys(keys, "the benchmark's keys"), self.table)
        self.columns = (*OUR_COLUMNS, *DIGEST_COLUMNS.values(), "key_id")
        self.name = self.name.replace("ours/", "ours+encrypted/")
        self.method += f"; rows sealed under key {BENCH_KEY_ID!r} before the insert"

    def row(self, i: int) -> Row:
        values: dict[str, Any] = dict(zip(OUR_COLUMNS, our_row(i), strict=True))
        sealed = self.sealing.sealed(values["id"], values)
        return tuple(sealed[c] for c in self.columns)

    def has_user(self, name: str) -> bool:
        sql = f"SELECT 1 FROM {self.table} WHERE user_name = {self.mark} AND key_id = {self.mark}"
        return self._one(sql, (name, BENCH_KEY_ID)) is not None


class SealedSQLite(_Sealed, OurSQLite):
    def __init__(self, path: Any, table: str) -> None:
        OurSQLite.__init__(self, path, table)
        self.seal_with(BENCH_KEYS)


class SealedPostgres(_Sealed, OurPostgres):
    def __init__(self, url: str, table: str) -> None:
        OurPostgres.__init__(self, url, table)
        self.seal_with(BENCH_KEYS)


class SealedMariaDB(_Sealed, OurMariaDB):
    def __init__(self, url: str, table: str) -> None:
        OurMariaDB.__init__(self, url, table)
        self.seal_with(BENCH_KEYS)
