"""Run the packaged Alembic migrations from Python.

The scripts live in ``migrations/`` at the repository root and ship in the wheel as
``zoho_sa_store.migrations``, so :func:`upgrade` works from a plain install. Our Alembic
version table is :data:`VERSION_TABLE`, apart from an application's own Alembic history in
the same database.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, Connection, Engine

from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.settings import check_table_name, make_engine

VERSION_TABLE = "zoho_sa_store_alembic_version"


def version_table(table_name: str = DEFAULT_TABLE_NAME) -> str:
    """Alembic's version table for a token table: one history per token table.

    ``zoho_sa_store_alembic_version`` for the default table, with ``_<name>`` appended for
    any other, so two token tables in one database migrate independently.
    """
    name = check_table_name(table_name)
    return VERSION_TABLE if name == DEFAULT_TABLE_NAME else f"{VERSION_TABLE}_{name}"


def script_location() -> Path:
    """The folder of the packaged migration scripts (``env.py``, ``versions/``)."""
    spec = importlib.util.find_spec("zoho_sa_store.migrations")
    assert spec is not None and spec.origin is not None, "zoho_sa_store.migrations is missing"
    return Path(spec.origin).parent


def alembic_config(table_name: str = DEFAULT_TABLE_NAME) -> Config:
    """An Alembic ``Config`` for the packaged scripts, with no ini file."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["table_name"] = check_table_name(table_name)
    return config


@contextmanager
def _connection(url_or_engine: str | URL | Engine | None) -> Iterator[Connection]:
    engine = url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        if engine is not url_or_engine:
            engine.dispose()


def upgrade(
    url_or_engine: str | URL | Engine | None = None,
    revision: str = "head",
    *,
    table_name: str = DEFAULT_TABLE_NAME,
) -> None:
    """Upgrade the schema to ``revision`` (``alembic upgrade head`` from Python).

    Args:
        url_or_engine: an Engine, or a URL resolved as the store does (argument,
            ``$ZOHO_SA_STORE_URL``, ``sqlite:///zohooauth.db``).
        revision: an Alembic revision, ``"head"`` by default.
        table_name: the token table's name.

    Raises:
        sqlalchemy.exc.SQLAlchemyError, alembic.util.CommandError: the migration failed; it
            runs in one transaction where the backend has transactional DDL.
    """
    with _connection(url_or_engine) as conn:
        config = alembic_config(table_name)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(
    url_or_engine: str | URL | Engine | None = None,
    revision: str = "base",
    *,
    table_name: str = DEFAULT_TABLE_NAME,
    drop_data: bool = False,
) -> None:
    """Downgrade the schema to ``revision`` (``"base"``: drop the token table).

    Raises:
        RuntimeError: the table still holds tokens and ``drop_data`` is False.
    """
    with _connection(url_or_engine) as conn:
        config = alembic_config(table_name)
        config.attributes["connection"] = conn
        config.attributes["drop_data"] = drop_data
        command.downgrade(config, revision)


def current(
    url_or_engine: str | URL | Engine | None = None, *, table_name: str = DEFAULT_TABLE_NAME
) -> str | None:
    """The database's current revision for the token table; None before the first upgrade."""
    with _connection(url_or_engine) as conn:
        opts = {"version_table": version_table(table_name)}
        context = MigrationContext.configure(conn, opts=opts)
        return context.get_current_revision()
