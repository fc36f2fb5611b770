"""Create the token table (the SDK's ten columns, in its order, plus saved_at).

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from zoho_sa_store.model import TOKEN_PREFIX_INDEX_LENGTH, ExactString, ExactText

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_COLUMNS = ("access_token", "grant_token", "refresh_token")


def table_name() -> str:
    """The table's name, set by env.py from ``-x table=`` (default ``oauthtoken``)."""
    name: str = op.get_context().config.attributes["table_name"]
    return name


def upgrade() -> None:
    name = table_name()
    op.create_table(
        name,
        sa.Column("id", ExactString(64), nullable=False),
        sa.Column("user_name", ExactString(255), nullable=True),
        sa.Column("client_id", ExactString(255), server_default=sa.text("''"), nullable=False),
        sa.Column("client_secret", ExactString(255), nullable=True),
        sa.Column("refresh_token", ExactText(), nullable=True),
        sa.Column("access_token", ExactText(), nullable=True),
        sa.Column("grant_token", ExactText(), nullable=True),
        sa.Column("expiry_time", sa.String(20), nullable=True),
        sa.Column("redirect_url", sa.String(1024), nullable=True),
        sa.Column("api_domain", sa.String(255), nullable=True),
        sa.Column("saved_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("user_name", "client_id", name=op.f(f"uq_{name}_user_name_client_id")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    for column in TOKEN_COLUMNS:
        op.create_index(
            f"ix_{name}_{column}",
            name,
            [column],
            mysql_length=TOKEN_PREFIX_INDEX_LENGTH,
            postgresql_using="hash",
        )


def downgrade() -> None:
    name = table_name()
    for column in TOKEN_COLUMNS:
        op.drop_index(f"ix_{name}_{column}", table_name=name)
    op.drop_table(name)
