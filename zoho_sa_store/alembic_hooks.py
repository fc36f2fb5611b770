"""Hooks for an application's own Alembic environment that shares the store's database.

An application's ``alembic revision --autogenerate`` (or ``alembic check``) compares its
MetaData with the database; the store's tables are not in that MetaData, so autogenerate
proposes dropping them. :func:`include_name` keeps them out of the comparison::

    context.configure(connection=connection, target_metadata=metadata,
                      include_name=zoho_sa_store.include_name)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from zoho_sa_store.migrate import version_table
from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.settings import check_table_name

IncludeName = Callable[[str | None, str, Mapping[str, Any]], bool]
"""Alembic's ``include_name`` hook: ``(name, type_, parent_names) -> bool``."""


def store_tables(*table_names: str) -> frozenset[str]:
    """The tables the store's migrations make for each token table (default ``oauthtoken``).

    The token table, its ``<table>_duplicates`` side table (made only when an adopted table
    held duplicate rows) and its Alembic version table (see :func:`version_table`).

    Raises:
        ValueError: a table name the store would refuse.
    """
    names: set[str] = set()
    for table_name in table_names or (DEFAULT_TABLE_NAME,):
        name = check_table_name(table_name)
        names.update((name, f"{name}_duplicates", version_table(name)))
    return frozenset(names)


def make_include_name(*table_names: str) -> IncludeName:
    """An ``include_name`` hook that leaves out the store's objects for these token tables.

    Args:
        *table_names: the token tables' names (none: ``oauthtoken``).

    Returns:
        A function returning False for the store's tables (:func:`store_tables`) and for
        their columns, indexes and constraints, True for every other name. Combine it with
        a hook of your own with ``and``.

    Raises:
        ValueError: a table name the store would refuse.
    """
    excluded = store_tables(*table_names)

    def include_name(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
        if type_ == "table":
            return name not in excluded
        return parent_names.get("table_name") not in excluded

    include_name.__doc__ = f"Alembic include_name hook: everything but {sorted(excluded)}."
    return include_name


include_name: IncludeName = make_include_name()
"""The ``include_name`` hook for the default token table, ``oauthtoken``."""
