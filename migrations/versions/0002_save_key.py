"""Add ``save_key``: a unique key for rows of tokens without a user name.

Concurrent first saves of one token without a user name used to be serialized by a
session-level named lock (a PostgreSQL advisory lock, MySQL's ``GET_LOCK``), which a
transaction-pooling proxy (PgBouncer, RDS Proxy, ProxySQL) and Galera cannot honour. A
unique constraint needs no lock: the store writes the SHA-256 of the save rule's criteria
into ``save_key`` on such inserts, and of two racing inserts one wins. Existing rows keep
NULL (NULLs never collide). Either step is skipped when it is already there, so an
interrupted upgrade, or one on a restored table without its version table, can run again
(see ``zoho_sa_store.migration_ops``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from zoho_sa_store.migration_ops import (
    add_column_if_missing,
    create_unique_if_missing,
    drop_column_if_exists,
    drop_unique_if_exists,
)

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def table_name() -> str:
    """The table's name, set by env.py from ``-x table=`` (default ``oauthtoken``)."""
    name: str = op.get_context().config.attributes["table_name"]
    return name


def upgrade() -> None:
    name = table_name()
    add_column_if_missing(name, sa.Column("save_key", sa.String(64), nullable=True))
    create_unique_if_missing(name, f"uq_{name}_save_key", ["save_key"])


def downgrade() -> None:
    name = table_name()
    drop_unique_if_exists(name, f"uq_{name}_save_key")
    drop_column_if_exists(name, "save_key")
