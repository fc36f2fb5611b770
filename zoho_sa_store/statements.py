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

from sqlalchemy import (
    Connection,
    CursorResult,
    Table,
    bindparam,
    exists,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from zoho_sa_store.tokens import COLUMNS

_Compiled = tuple[str, tuple[str, ...] | None, dict[str, Any]]
Shape = tuple["str | tuple[str, int]", ...]
"""The columns a lookup compares: ``name`` (= :name) or ``(name, n)`` (IN, n values)."""


def bind(criteria: tuple[tuple[str, Any], ...]) -> tuple[Shape, dict[str, Any]]:
    """Criteria (column, value; a tuple value: IN) as a :meth:`Statements.select` shape
    and its parameters, in :func:`parameters` order (positional drivers take the values
    as they are)."""
    names: list[str | tuple[str, int]] = []
    params: dict[str, Any] = {}
    for name, value in criteria:
        if isinstance(value, tuple):
            names.append((name, len(value)))
            params.update(zip(parameters((names[-1],)), value, strict=True))  # one naming rule
        else:
            names.append(name)
            params[name] = value
    return tuple(names), params


def parameters(names: Shape) -> tuple[str, ...]:
    """The bound parameters' names of a shape, in order (``(name, n)``: ``name_0``...)."""
    return tuple(
        p
        for n in names
        for p in ((n,) if isinstance(n, str) else (f"{n[0]}_{i}" for i in range(n[1])))
    )


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
        self._hot: dict[Shape, tuple[str, bool]] = {}

    def select(self, names: Shape, *, newest: bool = False) -> Any:
        """``SELECT <the SDK's columns> WHERE name = :name AND ...``.

        The SDK's columns in :class:`~zoho_sa_store.tokens.TokenFields`' order, then
        ``saved_at`` and ``key_id``. A ``(name, n)`` in ``names`` compares
        ``name IN (:name_0, ... :name_<n-1>)`` (see :func:`bind`). ``newest``: the most
        recently saved matching row only, as the plain SQL of :meth:`newest` (a refresh
        locks its row with :meth:`lock_row` first).
        """
        key = ("select", names, newest)
        stmt = self._built.get(key)
        if stmt is None:
            if newest:
                stmt = self._built[key] = text(self._newest_sql(names))
            else:
                c = self.table.c
                stmt = self._built[key] = select(
                    *(c[n] for n in COLUMNS), c.saved_at, c.key_id
                ).where(
                    *(
                        c[n] == bindparam(n)
                        if isinstance(n, str)
                        else c[n[0]].in_([bindparam(p) for p in parameters((n,))])
                        for n in names
                    )
                )
        return stmt

    def newest(self, names: Shape) -> tuple[str, bool]:
        """The lookup of the hot path, as (the driver's SQL, positional).

        ``SELECT id, ..., saved_at, key_id FROM t WHERE a = ? AND b IN (?, ?) ORDER BY
        saved_at DESC LIMIT 1``: unqualified columns and a literal ``LIMIT 1`` (no bound
        LIMIT/OFFSET), in the dialect's parameter style, built and compiled once per
        ``names``. Positional: pass the values as a tuple in :func:`parameters` order, else
        a dict keyed by those names.
        """
        found = self._hot.get(names)
        if found is None:
            compiled = self.select(names, newest=True).compile(dialect=self.dialect)
            if compiled.positional:
                assert tuple(compiled.positiontup or ()) == parameters(names)
            found = self._hot[names] = (str(compiled), bool(compiled.positional))
        return found

    def _newest_sql(self, names: Shape) -> str:
        quote = self.dialect.identifier_preparer.quote
        columns = ", ".join(quote(n) for n in (*COLUMNS, "saved_at", "key_id"))
        table = self.dialect.identifier_preparer.format_table(self.table)
        where = " AND ".join(
            f"{quote(n)} = :{n}"
            if isinstance(n, str)
            else f"{quote(n[0])} IN ({', '.join(':' + p for p in parameters((n,)))})"
            for n in names
        )
        # identifiers of the model, quoted by the dialect; every value is a bound parameter
        return (
            f"SELECT {columns} FROM {table} WHERE {where} "  # noqa: S608
            f"ORDER BY {quote('saved_at')} DESC LIMIT 1"
        )

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

    def insert_new(self, names: tuple[str, ...], guards: tuple[Shape, ...]) -> Executable:
        """A first save in one statement: insert unless a row the save would update exists.

        ``INSERT INTO t (name, ...) SELECT :name, ... WHERE NOT EXISTS (SELECT * FROM t WHERE
        g = :g0_g AND ...) AND ...``, one ``NOT EXISTS`` per group of ``guards`` (group ``k``'s
        column ``g`` compared with the parameter ``gk_g``), and on a unique conflict nothing:
        ``ON CONFLICT DO NOTHING`` on PostgreSQL and SQLite. Its row count is 1 when it
        inserted, else 0; it never writes into an existing row.

        MySQL/MariaDB have no conflict clause that does nothing: a no-op ``ON DUPLICATE KEY
        UPDATE`` reports 1 row for a duplicate as for an insert (SQLAlchemy connects with
        ``CLIENT_FOUND_ROWS``, which the update by id relies on), and ``INSERT IGNORE`` turns
        errors such as a too-long value into warnings and truncates. There the statement has
        no conflict clause, and a race's duplicate key raises ``IntegrityError``, which the
        store takes as "not inserted".
        """
        key = ("insert_new", names, guards)
        stmt = self._built.get(key)
        if stmt is None:
            c = self.table.c
            values = select(*(bindparam(n, type_=c[n].type) for n in names)).where(
                *(
                    ~exists().where(
                        *(
                            c[g] == bindparam(f"g{k}_{g}", type_=c[g].type)
                            if isinstance(g, str)
                            else c[g[0]].in_(
                                [
                                    bindparam(f"g{k}_{p}", type_=c[g[0]].type)
                                    for p in parameters((g,))
                                ]
                            )
                            for g in group
                        )
                    )
                    for k, group in enumerate(guards)
                )
            )
            name = self.dialect.name
            if name == "postgresql":
                stmt = postgresql.insert(self.table).from_select(names, values)
                stmt = stmt.on_conflict_do_nothing()
            elif name == "sqlite":
                stmt = sqlite.insert(self.table).from_select(names, values)
                stmt = stmt.on_conflict_do_nothing()
            else:  # MySQL/MariaDB, others: a race raises IntegrityError (not inserted)
                stmt = insert(self.table).from_select(names, values)
            self._built[key] = stmt
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
