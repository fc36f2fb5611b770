"""``upgrade`` finishes on what an earlier run, a restore or a lost version table left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, make_url, text
from sqlalchemy.exc import OperationalError

from tests.conftest import ensure_database
from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, current, upgrade
from zoho_sa_store.migrate import alembic_config, check, head, version_table
from zoho_sa_store.model import OAuthTokenRow
from zoho_sa_store.settings import make_engine

TABLE = "zss_rerun"
TOKEN_COLUMNS = ("access_token", "grant_token", "refresh_token")
HEAD = head()
# the store's columns a restore from an older revision may lack (0001 had no save_key,
# 0002 no key_id and digests)
OPTIONAL_COLUMNS = [
    c
    for c in ("api_domain", "save_key", "key_id", "access_token_digest")
    if c in OAuthTokenRow.__table__.c
]
LAST_REVISION_INDEXES = ("key_id", "access_token_digest", "refresh_token_digest")
"""Indexes the head revision (0003) creates after its columns."""


def drop(url: str, *tables: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name in tables:
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    finally:
        engine.dispose()


@pytest.fixture
def url(backend_url: str) -> Iterator[str]:
    """The test database, with no ``zss_rerun`` table, duplicates or version table."""
    names = (TABLE, f"{TABLE}_duplicates", version_table(TABLE))
    drop(backend_url, *names)
    yield backend_url
    drop(backend_url, *names)


def save_three(url: str) -> set[str]:
    with SQLAlchemyTokenStore(url, table_name=TABLE) as store:
        for user in ("ann", "bob", "cy"):
            store.save_token(token(f"{user}@example.com", access=f"1000.a-{user}"))
        return {t.get_id() for t in store.get_tokens()}


def stored_ids(url: str) -> set[str]:
    with SQLAlchemyTokenStore(url, table_name=TABLE) as store:
        return {t.get_id() for t in store.get_tokens()}


def names(url: str) -> set[str]:
    """The token table's index and unique constraint names."""
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        found = {i["name"] for i in inspector.get_indexes(TABLE)}
        return found | {u["name"] for u in inspector.get_unique_constraints(TABLE)}
    finally:
        engine.dispose()


def strip(
    url: str, *, indexes: tuple[str, ...] = TOKEN_COLUMNS, columns: tuple[str, ...] = ()
) -> None:
    """Leave the table as a table-only restore may: no version table, no unique constraints,
    without the token indexes on ``indexes`` and the ``columns``."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            uniques = [u["name"] for u in inspect(conn).get_unique_constraints(TABLE)]
            ops = Operations(MigrationContext.configure(conn))
            present = {i["name"] for i in inspect(conn).get_indexes(TABLE)}
            for column in (*indexes, *columns):  # a dropped column's index goes too
                if f"ix_{TABLE}_{column}" in present:
                    ops.drop_index(f"ix_{TABLE}_{column}", table_name=TABLE)
            with ops.batch_alter_table(TABLE) as batch:
                for name in uniques:
                    batch.drop_constraint(name, type_="unique")
                for column in columns:
                    batch.drop_column(column)
            conn.execute(text(f"DROP TABLE {version_table(TABLE)}"))
    finally:
        engine.dispose()
    assert not {n for n in names(url) if n.startswith("uq_")}
    assert not names(url) & {f"ix_{TABLE}_{c}" for c in indexes}


def test_upgrade_again_after_the_version_table_is_dropped(url: str) -> None:
    upgrade(url, table_name=TABLE)
    ids = save_three(url)
    drop(url, version_table(TABLE))
    assert current(url, table_name=TABLE) is None
    upgrade(url, table_name=TABLE)
    assert current(url, table_name=TABLE) == HEAD
    assert check(url, table_name=TABLE)
    assert stored_ids(url) == ids
    upgrade(url, table_name=TABLE)  # and at head, nothing to do
    assert check(url, table_name=TABLE)


@pytest.mark.parametrize(
    ("indexes", "columns"),
    [
        (TOKEN_COLUMNS, ()),
        (TOKEN_COLUMNS[1:], ()),  # some indexes there, some not
        *((TOKEN_COLUMNS, (c,)) for c in OPTIONAL_COLUMNS),
    ],
)
def test_a_restored_table_gets_its_indexes_back(
    url: str, indexes: tuple[str, ...], columns: tuple[str, ...]
) -> None:
    upgrade(url, table_name=TABLE)
    ids = save_three(url)
    strip(url, indexes=indexes, columns=columns)
    upgrade(url, table_name=TABLE)
    assert current(url, table_name=TABLE) == HEAD
    assert check(url, table_name=TABLE)
    assert names(url) >= {f"ix_{TABLE}_{c}" for c in TOKEN_COLUMNS} | {
        f"uq_{TABLE}_user_name_client_id"
    }
    assert stored_ids(url) == ids
    with SQLAlchemyTokenStore(url, table_name=TABLE) as store:
        found = store.find_token(token(client=None, access="1000.a-bob"))
        assert found is not None and found.get_user_signature().get_name() == "bob@example.com"


def test_a_revision_that_failed_halfway_runs_again(url: str) -> None:
    """Each later revision too: here the last one's columns are there, some indexes not."""
    upgrade(url, table_name=TABLE)
    ids = save_three(url)
    script = ScriptDirectory.from_config(alembic_config(TABLE))
    last = script.get_revision(HEAD)
    if last is None or last.down_revision is None:
        pytest.skip("only one revision")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            ops = Operations(MigrationContext.configure(conn))
            for column in LAST_REVISION_INDEXES:
                ops.drop_index(f"ix_{TABLE}_{column}", table_name=TABLE)
            conn.execute(
                text(f"UPDATE {version_table(TABLE)} SET version_num = :v"),
                {"v": last.down_revision},
            )
    finally:
        engine.dispose()
    assert not check(url, table_name=TABLE)
    upgrade(url, table_name=TABLE)
    assert current(url, table_name=TABLE) == HEAD
    assert check(url, table_name=TABLE)
    assert names(url) >= {f"ix_{TABLE}_{column}" for column in LAST_REVISION_INDEXES}
    assert stored_ids(url) == ids


def test_rows_saved_without_the_unique_constraint_are_set_aside(url: str) -> None:
    upgrade(url, table_name=TABLE)
    strip(url, indexes=TOKEN_COLUMNS[2:])
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {TABLE} (id, user_name, client_id, access_token, expiry_time,"
                    " saved_at) VALUES (:id, 'dup@example.com', '1000.A', :id, :expiry, 1)"
                ),
                [
                    {"id": "old", "expiry": "1600000000000"},
                    {"id": "new", "expiry": "1800000000000"},
                ],
            )
        upgrade(url, table_name=TABLE)
        assert check(url, table_name=TABLE)
        with engine.connect() as conn:
            assert conn.scalar(text(f"SELECT id FROM {TABLE}")) == "new"
            assert conn.scalar(text(f"SELECT id FROM {TABLE}_duplicates")) == "old"
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("ddl", "why"),
    [
        ("(id varchar(64) PRIMARY KEY, saved_at bigint, x int)", "it has saved_at but no "),
        (
            "(id varchar(10) PRIMARY KEY, user_name varchar(255), client_id varchar(255),"
            " client_secret varchar(255), refresh_token varchar(255),"
            " access_token varchar(255), grant_token varchar(255), expiry_time varchar(20),"
            " redirect_url varchar(255), saved_at bigint)",
            "it has saved_at but id, refresh_token, access_token, grant_token, redirect_url"
            " narrower than the store's",
        ),
    ],
)
def test_a_table_with_saved_at_that_is_not_the_stores_is_refused(
    url: str, ddl: str, why: str
) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE {TABLE} {ddl}"))
        with pytest.raises(RuntimeError, match="not the SDK DBStore's token table") as caught:
            upgrade(url, table_name=TABLE)
        assert why in str(caught.value)
        assert current(url, table_name=TABLE) is None
    finally:
        engine.dispose()


NO_INDEX_USER = "zss_noindex"


@pytest.fixture
def no_index_url(mysql_url: str) -> Iterator[str]:
    """A database of its own, and a user with every privilege on it but INDEX."""
    root = make_url(mysql_url)
    own = root.set(database=NO_INDEX_USER)
    ensure_database(own)
    engine = make_engine(root)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{NO_INDEX_USER}'@'%'"))
            conn.execute(text(f"CREATE USER '{NO_INDEX_USER}'@'%' IDENTIFIED BY 'pw-noindex'"))
            conn.execute(
                text(f"GRANT ALL PRIVILEGES ON {NO_INDEX_USER}.* TO '{NO_INDEX_USER}'@'%'")
            )
            conn.execute(text(f"REVOKE INDEX ON {NO_INDEX_USER}.* FROM '{NO_INDEX_USER}'@'%'"))
        user = own.set(username=NO_INDEX_USER, password="pw-noindex")
        yield user.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP USER IF EXISTS '{NO_INDEX_USER}'@'%'"))
            conn.execute(text(f"DROP DATABASE IF EXISTS {NO_INDEX_USER}"))
        engine.dispose()


def test_upgrade_completes_once_the_missing_privilege_is_granted(
    no_index_url: str, mysql_url: str
) -> None:
    with pytest.raises(OperationalError, match="INDEX command denied"):
        upgrade(no_index_url)
    # MySQL/MariaDB committed the CREATE TABLE: a table without its indexes, no version row
    assert current(no_index_url) is None
    engine = make_engine(mysql_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"GRANT INDEX ON {NO_INDEX_USER}.* TO '{NO_INDEX_USER}'@'%'"))
    finally:
        engine.dispose()
    upgrade(no_index_url)
    assert current(no_index_url) == HEAD
    assert check(no_index_url)
    with SQLAlchemyTokenStore(no_index_url) as store:
        store.save_token(token("ann@example.com", access="1000.a-ann"))
        found = store.find_token(token(client=None, access="1000.a-ann"))
        assert found is not None and found.get_user_signature().get_name() == "ann@example.com"
