"""The store's SQL: Core statements built once per shape, compiled once per dialect.

``find_token`` runs before every CRM API call, so its statement must not be rebuilt,
re-compiled or even cache-keyed per call. Each shape (which columns a lookup matches on,
which columns an update writes) is built once as a Core statement with bound parameters,
compiled once for the engine's dialect, and run as driver SQL with
``Connection.exec_driver_sql``: SQLAlchemy's pool, events, error wrapping and
disconnect handling stay; its per-call statement compilation is skipped.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from zoho_sa_store.tokens import COLUMNS

_Compiled = tuple[str, tuple[str, ...] | None, dict[str, Any]]
Shape = tuple["str | tuple[str, int]", ...]
"""The columns a lookup compares: ``name`` (= :name) or ``(name, n)`` (IN, n values)."""


def bind(criteria: tuple[tuple[str, Any], ...]) -> tuple[Shape, dict[str, Any]]:
    """Criteria (column, value; a tuple value: IN) as a :meth:`Statements.select` shape
    and its parameters."""
    names: list[str | tuple[str, int]] = []
    params: dict[str, Any] = {}
    for name, value in criteria:
        if isinstance(value, tuple):
            names.append((name, len(value)))
            params.update({f"{name}_{i}": v for i, v in enumerate(value)})
        else:
            names.append(name)
            params[name] = value
    return tuple(names), params


class Statements:
    """The statements of one token table on one dialect.

    Args:
        table: the token table.
        dialect: the engine's dialect (the SQL is compiled for it).
    """

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self._built: dict[tuple[Any, ...], Executable] = {}
        self._compiled: dict[int, _Compiled] = {}

    def select(self, names: Shape, *, newest: bool = False) -> Any:
        """``SELECT <the SDK's columns> WHERE name = :name AND ...``.

        The SDK's columns in :class:`~zoho_sa_store.tokens.TokenFields`' order, then
        ``saved_at`` and ``key_id``. A ``(name, n)`` in ``names`` compares
        ``name IN (:name_0, ... :name_<n-1>)`` (see :func:`bind`). ``newest``: the most
        recently saved matching row only (a refresh locks
        its row with :meth:`lock_row` first).
        """
        key = ("select", names, newest)
        stmt = self._built.get(key)
        if stmt is None:
            c = self.table.c
            query = select(*(c[n] for n in COLUMNS), c.saved_at, c.key_id).where(
                *(
                    c[n] == bindparam(n)
                    if isinstance(n, str)
                    else c[n[0]].in_([bindparam(f"{n[0]}_{i}") for i in range(n[1])])
                    for n in names
                )
            )
            if newest:
                query = query.order_by(c.saved_at.desc()).limit(1)
            stmt = self._built[key] = query
        return stmt

    def page(self) -> Executable:
        """Up to ``:size`` rows with ids after ``:after``, by id (keyset pagination).

        The SDK's columns, then ``key_id``.
        """
        key = ("page",)
        stmt = self._built.get(key)
        if stmt is None:
            c = self.table.c
            stmt = self._built[key] = (
                select(*(c[n] for n in COLUMNS), c.key_id)
                .where(c.id > bindparam("after"))
                .order_by(c.id)
                .limit(bindparam("size"))
            )
        return stmt

    def update(self, names: tuple[str, ...], sealed: bool | None = None) -> Executable:
        """``UPDATE ... SET name = :name, ... WHERE id = :row_id``.

        ``sealed``: True, only a row sealed under the key being written (``AND key_id =
        :row_key_id``); False, only a plain row (``AND key_id IS NULL``); None, any row.
        """
        key = ("update", names, sealed)
        stmt = self._built.get(key)
        if stmt is None:
            c = self.table.c
            query = update(self.table).where(c.id == bindparam("row_id"))
            if sealed is not None:
                query = query.where(
                    c.key_id == bindparam("row_key_id") if sealed else c.key_id.is_(None)
                )
            stmt = self._built[key] = query.values({n: bindparam(n) for n in names})
        return stmt

    def lock_row(self) -> Executable:
        """``UPDATE ... SET saved_at = saved_at WHERE id = :row_id``: changes nothing.

        It takes the row's write lock as ``SELECT ... FOR UPDATE`` would, and it also fails
        for a database user who may read the table but not write it (MariaDB lets such a
        user take ``FOR UPDATE``): a refresh proves it can save before it calls Zoho.
        """
        key = ("lock_row",)
        stmt = self._built.get(key)
        if stmt is None:
            c = self.table.c
            stmt = self._built[key] = (
                update(self.table).where(c.id == bindparam("row_id")).values(saved_at=c.saved_at)
            )
        return stmt

    def insert(self, names: tuple[str, ...]) -> Executable:
        """``INSERT INTO ... (name, ...) VALUES (:name, ...)``."""
        key = ("insert", names)
        stmt = self._built.get(key)
        if stmt is None:
            stmt = self._built[key] = insert(self.table).values({n: bindparam(n) for n in names})
        return stmt

    def execute(
        self, conn: Connection, stmt: Executable, params: dict[str, Any]
    ) -> CursorResult[Any]:
        """Run ``stmt`` (built here) with ``params``, compiled once for this dialect."""
        return conn.exec_driver_sql(*self.driver_args(stmt, params))

    def driver_args(self, stmt: Executable, params: dict[str, Any]) -> tuple[str, Any]:
        """``stmt`` as the driver's SQL and parameters (a tuple or a dict, by paramstyle)."""
        compiled = self._compiled.get(id(stmt))
        if compiled is None:
            assert isinstance(stmt, ClauseElement)
            done = stmt.compile(dialect=self.dialect)
            assert isinstance(done, SQLCompiler)
            order = tuple(done.positiontup or ()) if done.positional else None
            compiled = self._compiled[id(stmt)] = (str(done), order, dict(done.params))
        sql, order, defaults = compiled
        values = {**defaults, **params}
        if order is None:
            return sql, values
        return sql, tuple(values[name] for name in order)
