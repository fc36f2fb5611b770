"""The ``<table>_duplicates`` side table: rows moved aside when a table was adopted.

Adopting the SDK DBStore's table (``migrations/versions/0001_create_oauthtoken.py``) keeps
the newest row of each (user_name, client_id) and moves the others, secrets included, to
``<table>_duplicates`` (every column as text). ``zoho-sa-store delete-all`` and ``purge``
and the downgrade of revision 0001 cover it: these functions run inside their transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, MetaData, Table, delete, inspect, or_, select

from zoho_sa_store.model import SDK_COLUMNS

TABLE_KEY = "table"
"""The key naming the side table in the rows :func:`purge` returns."""


def side_table_name(table_name: str) -> str:
    """``<table_name>_duplicates``."""
    return f"{table_name}_duplicates"


def side_table(conn: Connection, table_name: str) -> Table | None:
    """The side table of ``table_name`` as the database has it; None when there is none."""
    name = side_table_name(table_name)
    if not inspect(conn).has_table(name):
        return None
    return Table(name, MetaData(), autoload_with=conn)


def delete_all(conn: Connection, table_name: str) -> int:
    """Delete every row of the side table (if there is one); the number deleted."""
    table = side_table(conn, table_name)
    return 0 if table is None else int(conn.execute(delete(table)).rowcount)


def purge(
    conn: Connection,
    table_name: str,
    doomed: Callable[[dict[str, str | None]], bool],
    *,
    dry_run: bool = False,
) -> list[dict[str, str | None]]:
    """Delete the side table's rows without a refresh token for which ``doomed`` is true.

    Args:
        conn: a connection in the caller's transaction.
        table_name: the token table's name.
        doomed: decides from a row (by the SDK's column names, blank values as None).
        dry_run: find the rows, delete nothing.

    Returns:
        The rows (deleted, or that would be), each with :data:`TABLE_KEY` naming the
        side table.
    """
    table = side_table(conn, table_name)
    if table is None:
        return []
    c = table.c
    no_refresh = or_(c.refresh_token.is_(None), c.refresh_token == "")
    rows = [_row(row._mapping, table.name) for row in conn.execute(select(table).where(no_refresh))]
    found = [row for row in rows if doomed(row)]
    ids = [row["id"] for row in found]
    for start in range(0, 0 if dry_run else len(ids), 500):
        conn.execute(delete(table).where(c.id.in_(ids[start : start + 500]), no_refresh))
    return found


def _row(values: Any, name: str) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        column: (str(values[column]) if values.get(column) not in (None, "") else None)
        for column in SDK_COLUMNS
    }
    row[TABLE_KEY] = name
    return row
