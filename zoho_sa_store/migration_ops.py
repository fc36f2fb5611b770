"""Create-if-missing steps for the revisions in ``migrations/versions``.

MySQL/MariaDB commit every DDL statement on its own, so an ``upgrade`` that fails halfway
(a missing privilege, a lost connection) leaves part of its work behind and no version
row. A table can also come back without its version table (a table-only restore, a
dropped version table). Each revision therefore looks at what exists first and creates
only what is missing: run again once the cause is fixed, it completes, and Alembic then
writes the version row as usual.

These helpers only work inside a running migration (they use ``alembic.op``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic import op

log = logging.getLogger("zoho_sa_store.migrations")


@dataclass(frozen=True)
class Existing:
    """What a table has now: its columns' reflected types, its index and constraint names."""

    columns: dict[str, sa.types.TypeEngine[Any]]
    names: frozenset[str]
    """Names of its indexes and unique constraints (one namespace on every backend)."""


def inspect_table(table: str) -> Existing | None:
    """The table as the database has it now; None when there is no such table."""
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(table):
        return None
    columns = {c["name"]: c["type"] for c in inspector.get_columns(table)}
    names = {i["name"] for i in inspector.get_indexes(table)}
    names |= {u["name"] for u in inspector.get_unique_constraints(table)}
    return Existing(columns, frozenset(n for n in names if n))


def _current(table: str) -> Existing:
    found = inspect_table(table)
    if found is None:
        raise RuntimeError(f"table {table!r} does not exist")
    return found


def add_column_if_missing(table: str, column: sa.Column[Any]) -> bool:
    """Add ``column`` unless the table has a column of that name; True when added."""
    if column.name in _current(table).columns:
        return False
    log.info("adding the missing column %s.%s", table, column.name)
    op.add_column(table, column)
    return True


def create_index_if_missing(table: str, name: str, columns: Sequence[str], **kw: Any) -> bool:
    """``op.create_index(name, table, columns, **kw)`` unless ``name`` exists; True when made."""
    if name in _current(table).names:
        return False
    log.info("creating the missing index %s on %s", name, table)
    op.create_index(name, table, list(columns), **kw)
    return True


def create_unique_if_missing(table: str, name: str, columns: Sequence[str]) -> bool:
    """Add the unique constraint ``name`` unless it exists; True when made.

    Batch mode, so SQLite (no ``ALTER TABLE ... ADD CONSTRAINT``) copies the table.
    """
    if name in _current(table).names:
        return False
    log.info("creating the missing unique constraint %s on %s", name, table)
    with op.batch_alter_table(table) as batch:
        batch.create_unique_constraint(name, list(columns))
    return True


def drop_index_if_exists(table: str, name: str) -> bool:
    """Drop the index ``name`` when the table has it; True when dropped."""
    found = inspect_table(table)
    if found is None or name not in found.names:
        return False
    op.drop_index(name, table_name=table)
    return True


def drop_unique_if_exists(table: str, name: str) -> bool:
    """Drop the unique constraint ``name`` when the table has it; True when dropped."""
    found = inspect_table(table)
    if found is None or name not in found.names:
        return False
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(name, type_="unique")
    return True


def drop_column_if_exists(table: str, column: str) -> bool:
    """Drop ``column`` when the table has it; True when dropped."""
    found = inspect_table(table)
    if found is None or column not in found.columns:
        return False
    with op.batch_alter_table(table) as batch:
        batch.drop_column(column)
    return True


def too_narrow(found: sa.types.TypeEngine[Any], wanted: sa.types.TypeEngine[Any]) -> bool:
    """True when a reflected string type is shorter than the wanted one.

    A length-less type (``TEXT``) is never too narrow; a type with a length is too narrow
    for a shorter length or for a length-less (``TEXT``) target.
    """
    if isinstance(wanted, sa.types.TypeDecorator):
        wanted = wanted.impl_instance
    have: int | None = getattr(found, "length", None)
    want: int | None = getattr(wanted, "length", None)
    if have is None:
        return False
    return want is None or have < want
