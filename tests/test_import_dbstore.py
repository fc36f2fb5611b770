"""Importing the SDK DBStore's tables from another database, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

from tests.test_importers import by_id, counts, raw_rows, sdk_tokens
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.importers import SourceError, import_rows, read_dbstore
from zoho_sa_store.settings import make_engine

DBSTORE_DDL = """CREATE TABLE {name} (
  id varchar(10) NOT NULL,
  user_name varchar(255),
  client_id varchar(255),
  client_secret varchar(255),
  refresh_token varchar(255),
  access_token varchar(255),
  grant_token varchar(255),
  expiry_time varchar(20),
  redirect_url varchar(255),
  {api_domain}
  PRIMARY KEY (id)
)"""


@pytest.fixture
def source(backend_url: str) -> Iterator[Engine]:
    """The SDK DBStore's table (its DDL) as ``sdk_dbstore_src`` and, without api_domain,
    ``sdk_dbstore_old`` in the test database; dropped afterwards."""
    yield from dbstore_tables(backend_url)


@pytest.fixture
def mysql_source(mysql_url: str) -> Iterator[Engine]:
    """The same tables on MySQL/MariaDB, the only database the SDK's DBStore runs on."""
    yield from dbstore_tables(mysql_url)


def dbstore_tables(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    drop = "DROP TABLE IF EXISTS {}"
    with engine.begin() as conn:
        for name, api_domain in (
            ("sdk_dbstore_src", "api_domain varchar(255),"),
            ("sdk_dbstore_old", ""),
        ):
            conn.execute(text(drop.format(name)))
            conn.execute(text(DBSTORE_DDL.format(name=name, api_domain=api_domain)))
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(text(drop.format("sdk_dbstore_src")))
            conn.execute(text(drop.format("sdk_dbstore_old")))
        engine.dispose()


def fill(engine: Engine, table: str, rows: list[dict[str, str | None]]) -> None:
    with engine.begin() as conn:
        for row in rows:
            names = ", ".join(row)
            params = ", ".join(f":{name}" for name in row)
            conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({params})"), row)


DB_ROWS: list[dict[str, str | None]] = [
    {
        "id": "1",
        "user_name": "ann@example.com",
        "client_id": "1000.A",
        "client_secret": "secret-A-0123456789",
        "refresh_token": "1000.refresh-db-ann-0123456789",
        "access_token": "1000.access-db-ann-0123456789",
        "grant_token": None,
        "expiry_time": "1900000000000",
        "redirect_url": None,
    },
    {
        "id": "2",
        "user_name": "",
        "client_id": "1000.B",
        "client_secret": "secret-B-0123456789",
        "refresh_token": "1000.refresh-db-anon-0123456789",
        "access_token": None,
        "grant_token": "",
        "expiry_time": None,
        "redirect_url": "https://example.com/cb",
    },
    {
        "id": "10",
        "user_name": "o'brien@example.com",
        "client_id": "1000.A",
        "client_secret": "secret-A-0123456789",
        "refresh_token": None,
        "access_token": "1000.access-db-ob-0123456789",
        "grant_token": None,
        "expiry_time": "1700000000000",
        "redirect_url": None,
    },
]


def test_dbstore_import_rerun_and_conflicts(store: SQLAlchemyTokenStore, source: Engine) -> None:
    url = source.url.render_as_string(hide_password=False)
    fill(
        source,
        "sdk_dbstore_src",
        [{**row, "api_domain": "https://www.zohoapis.com"} for row in DB_ROWS],
    )
    report = import_rows(store, read_dbstore(url, "sdk_dbstore_src"))
    assert counts(report) == (3, 3, 0, 0, 0)
    rows = {row["id"]: row for row in raw_rows(store)}
    assert set(rows) == {"1", "2", "10"}
    assert rows["2"]["user_name"] is None and rows["2"]["grant_token"] is None
    assert rows["10"]["user_name"] == "o'brien@example.com"
    assert rows["1"]["api_domain"] == "https://www.zohoapis.com"
    before = raw_rows(store)
    assert counts(import_rows(store, read_dbstore(url, "sdk_dbstore_src"))) == (3, 0, 3, 0, 0)
    assert raw_rows(store) == before
    with source.begin() as conn:
        conn.execute(
            text("UPDATE sdk_dbstore_src SET access_token = 'other-0123456789' WHERE id = '1'")
        )
    report = import_rows(store, read_dbstore(url, "sdk_dbstore_src"))
    assert counts(report) == (3, 0, 2, 1, 0)
    assert report.conflicts == ["row 1 (id '1'): stored row '1' differs in access_token"]
    assert raw_rows(store) == before


def test_dbstore_table_without_api_domain(store: SQLAlchemyTokenStore, source: Engine) -> None:
    url = source.url.render_as_string(hide_password=False)
    fill(source, "sdk_dbstore_old", DB_ROWS)
    assert counts(import_rows(store, read_dbstore(url, "sdk_dbstore_old"))) == (3, 3, 0, 0, 0)
    assert {row["api_domain"] for row in raw_rows(store)} == {None}


def test_dbstore_source_errors(source: Engine) -> None:
    url = source.url.render_as_string(hide_password=False)
    with pytest.raises(SourceError, match="no table 'sdk_dbstore_nope'"):
        read_dbstore(url, "sdk_dbstore_nope")
    with source.begin() as conn:
        conn.execute(text("DROP TABLE sdk_dbstore_old"))
        conn.execute(text("CREATE TABLE sdk_dbstore_old (id varchar(10), user_name varchar(255))"))
    with pytest.raises(SourceError, match="has no column client_id, client_secret"):
        read_dbstore(url, "sdk_dbstore_old")
    with pytest.raises(ValueError, match="invalid table name"):
        read_dbstore(url, "oauth;token")


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "sdk.db"
    with pytest.raises(SourceError, match="no SQLite database file"):
        read_dbstore(f"sqlite:///{missing}")
    assert not missing.exists()


def test_dbstore_written_by_the_sdk(mysql_url: str, mysql_source: Engine) -> None:
    """On MySQL/MariaDB, the only database DBStore supports, the SDK fills the table itself."""
    store = SQLAlchemyTokenStore(mysql_url)
    store.delete_tokens()
    source = mysql_source
    from zohocrmsdk.src.com.zoho.api.authenticator.store.db_store import DBStore

    url = make_url(source.url)
    db_store = DBStore(
        host=url.host or "127.0.0.1",
        database_name=url.database,
        user_name=url.username or "root",
        password=url.password or "",
        port_number=str(url.port or 3306),
        table_name="sdk_dbstore_src",
    )
    tokens = sdk_tokens()
    for t in tokens:
        db_store.save_token(t)
    address = source.url.render_as_string(hide_password=False)
    assert counts(import_rows(store, read_dbstore(address, "sdk_dbstore_src"))) == (3, 3, 0, 0, 0)
    assert by_id(store.get_tokens()) == by_id(tokens)
    assert counts(import_rows(store, read_dbstore(address, "sdk_dbstore_src"))) == (3, 0, 3, 0, 0)
    store.close()
