"""Alembic environment for the token table.

The URL, first match wins: a connection handed over by ``zoho_sa_store.upgrade()``;
``alembic -x url=...``; ``$ZOHO_SA_STORE_URL``; ``sqlalchemy.url`` in alembic.ini; the
store's default. ``-x table=NAME`` migrates a table of another name. The version table is
``zoho_sa_store_alembic_version`` (``..._<table>`` for another table name) so an
application's own Alembic history can share the database.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData
from sqlalchemy.pool import NullPool

from zoho_sa_store.migrate import migration_lock, version_table
from zoho_sa_store.model import DEFAULT_TABLE_NAME, NAMING_CONVENTION, token_table
from zoho_sa_store.settings import URL_ENV_VAR, check_table_name, make_engine
from zoho_sa_store.transactions import WRITE

config = context.config
LOGGING_SECTIONS = ("loggers", "handlers", "formatters")
if (
    config.config_file_name is not None
    and "connection" not in config.attributes
    and all(config.file_config.has_section(section) for section in LOGGING_SECTIONS)
):  # an ini of only [alembic] (script_location = zoho_sa_store:migrations) configures none
    fileConfig(config.config_file_name, disable_existing_loggers=False)

x_args = context.get_x_argument(as_dictionary=True)
table_name = check_table_name(
    x_args.get("table") or config.attributes.get("table_name") or DEFAULT_TABLE_NAME
)
config.attributes["table_name"] = table_name
target_metadata = MetaData(naming_convention=NAMING_CONVENTION)
token_table(target_metadata, table_name)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Compare only the token table: the database may hold the application's own tables."""
    return type_ != "table" or name == table_name


options: dict[str, Any] = {
    "include_name": include_name,
    "target_metadata": target_metadata,
    "version_table": version_table(table_name),
    "render_as_batch": True,
    "compare_type": True,
    "compare_server_default": True,
}


def database_url() -> str | None:
    """The URL from -x, the environment or alembic.ini (None: the store's default)."""
    return (
        x_args.get("url") or os.environ.get(URL_ENV_VAR) or config.get_main_option("sqlalchemy.url")
    )


def run_on(connection: Connection) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction(), migration_lock(connection, table_name):
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=database_url(), literal_binds=True, **options)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    run_on(connection)
else:
    engine = make_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            run_on(conn.execution_options(**{WRITE: True}))  # SQLite: BEGIN IMMEDIATE
    finally:
        engine.dispose()
