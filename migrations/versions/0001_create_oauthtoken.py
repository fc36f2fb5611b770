"""Create the token table, or adopt the SDK DBStore's table of the same name in place.

The SDK's ten columns in its order, plus saved_at. When the table already exists (made by
the SDK's ``DBStore`` from its README's DDL: ``id varchar(10)`` and ``varchar(255)``
columns), it is upgraded in place: every row and id is kept, columns widen to the store's
exact-match types, ``saved_at`` and the indexes are added. Rows the new unique constraint
would reject (several rows for one user name and client id) are not lost: the newest (the
latest expiry_time, then the highest id) stays, the others move to ``<table>_duplicates``,
and a warning says how many.

Downgrade drops the table, and refuses while it holds rows (they would be lost: export
them first, or pass ``-x drop_data=yes``). An adopted table is not turned back into the
DBStore's shape: its new ids (UUIDs) would not fit ``varchar(10)``.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from zoho_sa_store.model import TOKEN_PREFIX_INDEX_LENGTH, ExactString, ExactText

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("zoho_sa_store.migrations")
TOKEN_COLUMNS = ("access_token", "grant_token", "refresh_token")
SDK_COLUMNS = (
    "id", "user_name", "client_id", "client_secret", "refresh_token", "access_token",
    "grant_token", "expiry_time", "redirect_url", "api_domain",
)  # fmt: skip
TYPES: dict[str, sa.types.TypeEngine[str]] = {
    "id": ExactString(64),
    "user_name": ExactString(255),
    "client_id": ExactString(255),
    "client_secret": ExactString(255),
    "refresh_token": ExactText(),
    "access_token": ExactText(),
    "grant_token": ExactText(),
    "expiry_time": sa.String(20),
    "redirect_url": sa.String(1024),
    "api_domain": sa.String(255),
}


def table_name() -> str:
    """The table's name, set by env.py from ``-x table=`` (default ``oauthtoken``)."""
    name: str = op.get_context().config.attributes["table_name"]
    return name


def upgrade() -> None:
    name = table_name()
    if sa.inspect(op.get_bind()).has_table(name):
        adopt(name)
    else:
        create(name)
    for column in TOKEN_COLUMNS:
        op.create_index(
            f"ix_{name}_{column}",
            name,
            [column],
            mysql_length=TOKEN_PREFIX_INDEX_LENGTH,
            postgresql_using="hash",
        )


def create(name: str) -> None:
    op.create_table(
        name,
        *(sa.Column(column, TYPES[column], nullable=column != "id") for column in SDK_COLUMNS[:2]),
        sa.Column("client_id", TYPES["client_id"], server_default=sa.text("''"), nullable=False),
        *(sa.Column(column, TYPES[column], nullable=True) for column in SDK_COLUMNS[3:]),
        sa.Column("saved_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("user_name", "client_id", name=op.f(f"uq_{name}_user_name_client_id")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def adopt(name: str) -> None:
    """Upgrade the SDK DBStore's table in place, keeping every row and id."""
    bind = op.get_bind()
    existing = {c["name"] for c in sa.inspect(bind).get_columns(name)}
    missing = set(SDK_COLUMNS) - {"api_domain"} - existing
    if missing:
        raise RuntimeError(
            f"table {name!r} exists but is not the SDK DBStore's token table "
            f"(no {', '.join(sorted(missing))}); choose another name with -x table=NAME"
        )
    log.info("adopting the existing table %r in place", name)
    table = sa.table(name, *(sa.column(c) for c in existing))
    op.execute(table.update().where(table.c.client_id.is_(None)).values(client_id=""))
    op.execute(table.update().where(table.c.user_name == "").values(user_name=None))
    move_duplicates(name, table)
    with op.batch_alter_table(name) as batch:
        if "api_domain" not in existing:
            batch.add_column(sa.Column("api_domain", TYPES["api_domain"], nullable=True))
        for column in SDK_COLUMNS:
            if column in existing:
                batch.alter_column(
                    column,
                    type_=TYPES[column],
                    nullable=column not in ("id", "client_id"),
                    server_default=sa.text("''") if column == "client_id" else None,
                    existing_nullable=column != "id",
                )
        batch.add_column(
            sa.Column("saved_at", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch.create_unique_constraint(f"uq_{name}_user_name_client_id", ["user_name", "client_id"])


def move_duplicates(name: str, table: sa.TableClause) -> None:
    """Keep the newest row of each (user_name, client_id); move the others aside."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(table.c.id, table.c.user_name, table.c.client_id, table.c.expiry_time).where(
            table.c.user_name.is_not(None)
        )
    ).all()
    groups: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    for row in rows:
        expiry = int(row.expiry_time) if (row.expiry_time or "").isdigit() else -1
        number = int(row.id) if str(row.id).isdigit() else -1
        groups.setdefault((row.user_name, row.client_id), []).append((expiry, number, row.id))
    losers = [item[2] for group in groups.values() for item in sorted(group)[:-1]]
    if not losers:
        return
    side = f"{name}_duplicates"
    columns = sorted(c.name for c in table.columns)
    op.create_table(side, *(sa.Column(c, sa.Text()) for c in columns))
    for start in range(0, len(losers), 500):
        chunk = losers[start : start + 500]
        source = sa.select(*(table.c[c] for c in columns)).where(table.c.id.in_(chunk))
        op.execute(
            sa.table(side, *(sa.column(c) for c in columns)).insert().from_select(columns, source)
        )
        op.execute(table.delete().where(table.c.id.in_(chunk)))
    log.warning(
        "%d duplicate rows (same user_name and client_id) moved from %r to %r; "
        "the newest row of each user was kept",
        len(losers),
        name,
        side,
    )


def downgrade() -> None:
    name = table_name()
    drop_data = context.get_x_argument(as_dictionary=True).get("drop_data") == "yes"
    rows = op.get_bind().scalar(sa.select(sa.func.count()).select_from(sa.table(name)))
    if rows and not drop_data and not op.get_context().config.attributes.get("drop_data"):
        raise RuntimeError(
            f"downgrade would drop {name!r} with its {rows} tokens: export them first "
            "(zoho-sa-store export --include-secrets), or pass -x drop_data=yes"
        )
    for column in TOKEN_COLUMNS:
        op.drop_index(f"ix_{name}_{column}", table_name=name)
    op.drop_table(name)
