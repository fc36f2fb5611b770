"""Adopting the SDK DBStore's existing table in place with ``alembic upgrade head``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import inspect, text

from tests.factories import CLIENT_A, token
from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.migrate import alembic_config, downgrade
from zoho_sa_store.settings import make_engine

TABLE = "zss_adopt"
SDK_DDL = f"""CREATE TABLE {TABLE} (
  id varchar(10) NOT NULL, user_name varchar(255), client_id varchar(255),
  client_secret varchar(255), refresh_token varchar(255), access_token varchar(255),
  grant_token varchar(255), expiry_time varchar(20), redirect_url varchar(255),
  api_domain varchar(255), PRIMARY KEY (id))"""
ROWS = [
    # id, user_name, client_id, refresh, access, expiry
    *[(str(i), f"user{i}@example.com", "1000.A", f"1000.r{i}", f"1000.a{i}", "1700000000000")
      for i in range(1, 12)],
    ("12", "dup@example.com", "1000.A", "1000.old", "1000.aold", "1600000000000"),
    ("13", "dup@example.com", "1000.A", "1000.new", "1000.anew", "1800000000000"),
    ("14", "dup@example.com", "1000.A", "1000.mid", "1000.amid", "1700000000000"),
    ("15", None, "1000.A", "1000.nouser", "1000.anouser", "1700000000000"),
    ("16", "noclient@example.com", None, "1000.rnc", "1000.anc", "1700000000000"),
]  # fmt: skip


@pytest.fixture
def dbstore_table(backend_url: str) -> Iterator[str]:
    """The SDK DBStore's table, made from its DDL and filled, in the test database."""
    engine = make_engine(backend_url)
    with engine.begin() as conn:
        for name in (TABLE, f"{TABLE}_duplicates", f"zoho_sa_store_alembic_version_{TABLE}"):
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
        conn.execute(text(SDK_DDL))
        conn.execute(
            text(
                f"INSERT INTO {TABLE} (id, user_name, client_id, client_secret, refresh_token,"
                " access_token, grant_token, expiry_time, redirect_url, api_domain) VALUES"
                " (:id, :user, :client, 'secret', :refresh, :access, NULL, :expiry, NULL,"
                " 'https://www.zohoapis.com')"
            ),
            [dict(zip(("id", "user", "client", "refresh", "access", "expiry"), r, strict=True))
             for r in ROWS],
        )  # fmt: skip
    yield backend_url
    with engine.begin() as conn:
        for name in (TABLE, f"{TABLE}_duplicates", f"zoho_sa_store_alembic_version_{TABLE}"):
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def test_upgrade_adopts_the_dbstore_table(dbstore_table: str) -> None:
    url = dbstore_table
    upgrade(url, table_name=TABLE)
    with SQLAlchemyTokenStore(url, table_name=TABLE) as store:
        tokens = {t.get_id(): t for t in store.get_tokens()}
        # every id kept but the two older duplicates of dup@example.com
        assert sorted(tokens, key=int) == [str(i) for i in range(1, 12)] + ["13", "15", "16"]
        assert tokens["13"].get_refresh_token() == "1000.new"
        assert tokens["16"].get_client_id() is None  # stored as "" now, read back as absent
        found = store.find_token(token("user10@example.com"))
        assert found is not None and found.get_id() == "10"
        assert found.get_expires_in() == "1700000000000"
        by_refresh = store.find_token(token(refresh="1000.nouser"))
        assert by_refresh is not None and by_refresh.get_id() == "15"
        new = token("new@example.com", access="1000.fresh")
        store.save_token(new)
        assert new.get_id() not in tokens and len(new.get_id()) == 36
        long_refresh = "1000." + "x" * 3000
        store.save_token(token("user1@example.com", refresh=long_refresh))
        assert store.find_token(token(refresh=long_refresh)).get_id() == "1"
        store.save_token(token("user2@example.com", client=CLIENT_A, access="1000.again"))
        assert len(store.get_tokens()) == 15
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            moved = conn.execute(
                text(f"SELECT id, refresh_token FROM {TABLE}_duplicates ORDER BY id")
            ).all()
        assert [tuple(r) for r in moved] == [("12", "1000.old"), ("14", "1000.mid")]
        with engine.begin() as conn:
            config = alembic_config(TABLE)
            config.attributes["connection"] = conn
            command.check(config)  # the adopted table is exactly the model
        assert {i["name"] for i in inspect(engine).get_indexes(TABLE)} >= {
            f"ix_{TABLE}_refresh_token",
            f"ix_{TABLE}_access_token",
        }
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="downgrade would drop 'zss_adopt' with its 15 tokens"):
        downgrade(url, "base", table_name=TABLE)


def test_a_foreign_table_of_the_same_name_is_not_adopted(backend_url: str) -> None:
    engine = make_engine(backend_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS zss_foreign"))
            conn.execute(text("CREATE TABLE zss_foreign (id varchar(10) PRIMARY KEY, x int)"))
        with pytest.raises(RuntimeError, match="not the SDK DBStore's token table"):
            upgrade(backend_url, table_name="zss_foreign")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS zss_foreign"))
        engine.dispose()
