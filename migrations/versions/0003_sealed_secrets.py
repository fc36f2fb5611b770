"""Encrypted secrets: ``key_id``, the blind-index digest columns, a wider ``client_secret``.

``key_id`` names the key that sealed a row's secrets (NULL: plain text) and the
``<token>_digest`` columns hold the HMAC-SHA256 digests that lookups by token compare on
encrypted rows (see ``zoho_sa_store.sealing``); each gets a B-tree index. ``client_secret``
becomes TEXT like the tokens, wide enough for a sealed value. Existing rows stay plain
(``key_id`` NULL) until ``zoho-sa-store rotate-keys`` seals them. Every step is skipped when
it is already there, so an interrupted upgrade can simply run again.

Downgrade refuses while rows are encrypted (the older schema cannot read them): run
``zoho-sa-store rotate-keys --to-plaintext`` first. ``client_secret`` goes back to
VARCHAR(255), which every plain value fits (the store accepts at most 255 characters).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from zoho_sa_store.migration_ops import (
    add_column_if_missing,
    create_index_if_missing,
    drop_column_if_exists,
    drop_index_if_exists,
    inspect_table,
)
from zoho_sa_store.model import DIGEST_COLUMNS, KEY_ID_LENGTH, ExactString, ExactText

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def table_name() -> str:
    """The table's name, set by env.py from ``-x table=`` (default ``oauthtoken``)."""
    name: str = op.get_context().config.attributes["table_name"]
    return name


def _client_secret(type_: sa.types.TypeEngine[str], existing: sa.types.TypeEngine[str]) -> None:
    with op.batch_alter_table(table_name()) as batch:
        batch.alter_column("client_secret", type_=type_, existing_type=existing, nullable=True)


def upgrade() -> None:
    name = table_name()
    add_column_if_missing(name, sa.Column("key_id", sa.String(KEY_ID_LENGTH), nullable=True))
    for digest in DIGEST_COLUMNS:
        add_column_if_missing(name, sa.Column(digest, sa.String(64), nullable=True))
    for column in ("key_id", *DIGEST_COLUMNS):
        create_index_if_missing(name, f"ix_{name}_{column}", [column])
    found = inspect_table(name)
    assert found is not None
    if getattr(found.columns["client_secret"], "length", None) is not None:
        _client_secret(ExactText(), ExactString(255))


def downgrade() -> None:
    name = table_name()
    found = inspect_table(name)
    if found is None:
        return
    if "key_id" in found.columns:
        table = sa.table(name, sa.column("key_id"))
        count = sa.select(sa.func.count()).select_from(table).where(table.c.key_id.is_not(None))
        sealed = op.get_bind().scalar(count)
        if sealed:
            raise RuntimeError(
                f"downgrade would leave {sealed} encrypted tokens in {name!r} that the older"
                " schema cannot read: decrypt them first with"
                " `zoho-sa-store rotate-keys --to-plaintext` (with the keys configured)"
            )
    if getattr(found.columns["client_secret"], "length", None) is None:
        _client_secret(ExactString(255), ExactText())
    for column in ("key_id", *DIGEST_COLUMNS):
        drop_index_if_exists(name, f"ix_{name}_{column}")
    for column in (*DIGEST_COLUMNS, "key_id"):
        drop_column_if_exists(name, column)
