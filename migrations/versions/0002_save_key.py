"""Add ``save_key``: a unique key for rows of tokens without a user name.

Concurrent first saves of one token without a user name used to be serialized by a
session-level named lock (a PostgreSQL advisory lock, MySQL's ``GET_LOCK``), which a
transaction-pooling proxy (PgBouncer, RDS Proxy, ProxySQL) and Galera cannot honour. A
unique constraint needs no lock: the store writes the SHA-256 of the save rule's criteria
into ``save_key`` on such inserts, and of two racing inserts one wins. Existing rows keep
NULL (NULLs never collide). Either step is skipped when it is already there, so an
interrupted upgrade can run again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

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
    inspector = sa.inspect(op.get_bind())
    has_column = "save_key" in {c["name"] for c in inspector.get_columns(name)}
    unique = f"uq_{name}_save_key"
    has_unique = unique in {u["name"] for u in inspector.get_unique_constraints(name)} | {
        i["name"] for i in inspector.get_indexes(name) if i.get("unique")
    }
    if has_column and has_unique:
        return
    with op.batch_alter_table(name) as batch:
        if not has_column:
            batch.add_column(sa.Column("save_key", sa.String(64), nullable=True))
        if not has_unique:
            batch.create_unique_constraint(unique, ["save_key"])


def downgrade() -> None:
    name = table_name()
    with op.batch_alter_table(name) as batch:
        batch.drop_constraint(f"uq_{name}_save_key", type_="unique")
        batch.drop_column("save_key")
