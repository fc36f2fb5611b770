"""Create the token table, or adopt the SDK DBStore's table of the same name in place.

The SDK's ten columns in its order, plus saved_at. When the table already exists (made by
the SDK's ``DBStore`` from its README's DDL: ``id varchar(10)`` and ``varchar(255)``
columns), it is upgraded in place: every row and id is kept, columns widen to the store's
exact-match types, ``saved_at`` and the indexes are added. Rows the new unique constraint
would reject (several rows for one user name and client id) are not lost: the newest (the
latest expiry_time, then the highest id) stays, the others move to ``<table>_duplicates``,
and a warning says how many.

Every step creates only what is missing, so the revision can run again after a failure
halfway (MySQL/MariaDB commit each DDL statement on its own: a user without the INDEX
privilege gets the table but not its indexes) and on a table of the store's own shape
whose version table is gone (a table-only restore): that table is recognised by its
``saved_at`` column and the store's column types, never converted, and gets only its
missing columns, unique constraint and indexes. A table that is neither the DBStore's nor
the store's is refused.

Downgrade drops the table and its ``<table>_duplicates`` side table (whose rows hold
secrets too), and refuses while either holds rows (they would be lost: export them first,
or pass ``-x drop_data=yes``). An adopted table is not turned back into the
DBStore's shape: its new ids (UUIDs) would not fit ``varchar(10)``.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from zoho_sa_store.migration_ops import (
    Existing,
    add_column_if_missing,
    create_index_if_missing,
    create_unique_if_missing,
    drop_index_if_exists,
    inspect_table,
    too_narrow,
)
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
    found = inspect_table(name)
    if found is None:
        create(name)
    elif "saved_at" not in found.columns:
        adopt(name, found)
    else:
        check_store_shape(name, found)
    # what a restore or a failed earlier run may have left out; no-ops after create/adopt
    add_column_if_missing(name, sa.Column("api_domain", TYPES["api_domain"], nullable=True))
    unique = f"uq_{name}_user_name_client_id"
    now = inspect_table(name)
    assert now is not None
    if unique not in now.names:
        # rows saved while it was missing (a restored table) may break it: newest kept
        move_duplicates(name, sa.table(name, *(sa.column(c) for c in now.columns)))
        create_unique_if_missing(name, unique, ["user_name", "client_id"])
    for column in TOKEN_COLUMNS:
        create_index_if_missing(
            name,
            f"ix_{name}_{column}",
            [column],
            mysql_length=TOKEN_PREFIX_INDEX_LENGTH,
            postgresql_using="hash",
        )


def refuse(name: str, why: str) -> RuntimeError:
    return RuntimeError(
        f"table {name!r} exists but is not the SDK DBStore's token table nor this store's "
        f"({why}); choose another name with -x table=NAME"
    )


def check_store_shape(name: str, found: Existing) -> None:
    """A table with ``saved_at`` must be the store's own: its columns, at their widths."""
    missing = set(SDK_COLUMNS) - {"api_domain"} - set(found.columns)
    if missing:
        raise refuse(name, f"it has saved_at but no {', '.join(sorted(missing))}")
    narrow = [
        c for c in SDK_COLUMNS if c in found.columns and too_narrow(found.columns[c], TYPES[c])
    ]
    if narrow:
        raise refuse(name, f"it has saved_at but {', '.join(narrow)} narrower than the store's")
    log.info("the table %r is already the store's: creating only what it lacks", name)


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


def adopt(name: str, found: Existing) -> None:
    """Upgrade the SDK DBStore's table in place, keeping every row and id."""
    existing = set(found.columns)
    missing = set(SDK_COLUMNS) - {"api_domain"} - existing
    if missing:
        raise refuse(name, f"no {', '.join(sorted(missing))}")
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
    kept = inspect_table(side)  # left by an earlier run: add the columns it lacks
    if kept is None:
        op.create_table(side, *(sa.Column(c, sa.Text()) for c in columns))
    else:
        for column in columns:
            add_column_if_missing(side, sa.Column(column, sa.Text()))
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
    side = f"{name}_duplicates"  # rows moved aside by adopt(): secrets too
    tables = [name] + ([side] if inspect_table(side) is not None else [])
    for table in tables:
        rows = op.get_bind().scalar(sa.select(sa.func.count()).select_from(sa.table(table)))
        if rows and not drop_data and not op.get_context().config.attributes.get("drop_data"):
            first = (
                "export them first (zoho-sa-store export --include-secrets)"
                if table == name
                else "they were moved aside when the table was adopted; keep what you need"
            )
            raise RuntimeError(
                f"downgrade would drop {table!r} with its {rows} tokens: {first}, "
                "or pass -x drop_data=yes"
            )
    for column in TOKEN_COLUMNS:
        drop_index_if_exists(name, f"ix_{name}_{column}")
    for table in tables:
        op.drop_table(table)
