"""A quick readiness check for a web app's health endpoint (``zoho-sa-store check --quick``).

Two statements at most, no schema comparison: the version row of the token table against
the packaged head (read once per process), then the token table itself. The full check,
which also compares the table with the model, is :func:`zoho_sa_store.migrate.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, column, false, literal_column, select, table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from zoho_sa_store.errors import driver_code
from zoho_sa_store.migrate import head as migrate_head
from zoho_sa_store.migrate import version_table
from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.settings import check_table_name, make_engine, sqlite_file
from zoho_sa_store.transactions import ONE_STATEMENT

MISSING_TABLE_CODES = frozenset({"42P01", "42S02", "1146"})
"""PostgreSQL's undefined_table; MySQL/MariaDB's SQLSTATE and errno for no such table."""


@dataclass(frozen=True)
class Readiness:
    """The outcome of :func:`check_ready`; true when ready.

    Attributes:
        ok: the database answered, the token table exists and its schema is at head.
        reason: one line naming the problem (or ``"ready"``): never a URL, password or
            driver message.
        database_failed: the database could not be reached or queried (not a schema
            problem): ``zoho-sa-store check --quick`` exits 1 for it, 3 otherwise.
        error: the SQLAlchemy error behind ``database_failed`` (not in the repr), for a
            caller that reports the driver's reason itself, as the CLI does.
    """

    ok: bool
    reason: str
    database_failed: bool = False
    error: Exception | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.ok


def _missing_table(error: SQLAlchemyError) -> bool:
    if not isinstance(error, DBAPIError):
        return False
    args = getattr(error.orig, "args", ())
    if driver_code(error) in MISSING_TABLE_CODES or (args and args[0] == 1146):
        return True
    return str(error.orig).startswith("no such table")  # SQLite's only signal


def _probe(conn: Connection, table_name: str, head: str | None) -> Readiness:
    versions = table(version_table(table_name), column("version_num"))
    try:
        found = set(conn.scalars(select(versions.c.version_num)))
    except SQLAlchemyError as error:
        if not _missing_table(error):
            raise
        return Readiness(False, f"{table_name}: not migrated (no version table): run upgrade")
    if found != {head}:
        now = ", ".join(sorted(found)) or "no revision"
        return Readiness(False, f"{table_name}: at {now}, head is {head}: run upgrade")
    try:
        conn.execute(select(literal_column("1")).select_from(table(table_name)).where(false()))
    except SQLAlchemyError as error:
        if not _missing_table(error):
            raise
        why = "missing, though its version row is at head: stamp base, then upgrade"
        return Readiness(False, f"{table_name}: {why}")
    return Readiness(True, f"{table_name}: ready (at {head})")


def check_ready(
    url_or_engine: str | URL | Engine | None = None, *, table_name: str = DEFAULT_TABLE_NAME
) -> Readiness:
    """Is the store usable: database reachable, token table present, schema at head?

    For a readiness endpoint: pass the app's Engine, so the check borrows a pooled
    connection and runs at most two statements, each its own round trip on an engine of
    :func:`zoho_sa_store.make_engine` (no ``BEGIN``; a plain engine's driver may add its
    own). It reads the version row and touches the token table; it never reflects or
    compares the schema (``zoho-sa-store check`` does).

    Args:
        url_or_engine: an Engine, or a URL resolved as the store does (a new engine each
            call, so a connection too).
        table_name: the token table's name.

    Returns:
        A :class:`Readiness`; it never raises for a database failure or a schema problem.

    Raises:
        ValueError: an invalid ``table_name``.
    """
    name = check_table_name(table_name)
    head = migrate_head()
    if not isinstance(url_or_engine, Engine):  # a probe creates no SQLite file
        path = sqlite_file(url_or_engine)
        if path is not None and not Path(path).exists():
            return Readiness(False, f"no database at {path}", database_failed=True)
    engine: Engine | None = None
    try:
        engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
        with engine.connect() as conn:
            return _probe(conn.execution_options(**{ONE_STATEMENT: True}), name, head)
    except SQLAlchemyError as error:
        code = driver_code(error)
        kind = type(error).__name__ + (f" {code}" if code else "")
        return Readiness(False, f"database failed ({kind})", database_failed=True, error=error)
    finally:
        if engine is not None and engine is not url_or_engine:
            engine.dispose()
