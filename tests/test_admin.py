"""Looking after the token table (``zoho_sa_store.admin``) and ``migrate.check``, everywhere."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, admin, migrate
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.settings import make_engine

NOW = 1_900_000_000.0  # epoch seconds
DAY_MS = 86_400_000
CLIENT = ("1000.ADMINCLIENT", "admin-client-secret-0123")


def expired(days: float) -> str:
    return str(int(NOW * 1000 - days * DAY_MS))


def put(
    store: SQLAlchemyTokenStore,
    user: str | None,
    *,
    access: str | None = None,
    refresh: str | None = None,
    grant: str | None = None,
    expires: str | None = None,
) -> str:
    t = token(user, client=CLIENT, access=access, refresh=refresh, grant=grant, expires=expires)
    store.save_token(t)
    return str(t.get_id())


def test_list_find_and_mask(store: SQLAlchemyTokenStore) -> None:
    first = put(store, "ann@example.com", access="1000.access-ann-0123456789", expires=expired(1))
    assert admin.list_rows(store) == [
        {
            "id": first,
            "user_name": "ann@example.com",
            "client_id": CLIENT[0],
            "client_secret": CLIENT[1],
            "refresh_token": None,
            "access_token": "1000.access-ann-0123456789",
            "grant_token": None,
            "expiry_time": expired(1),
            "redirect_url": None,
            "api_domain": None,
        }
    ]
    row = admin.find_row(store, first)
    assert row is not None and list(row) == list(SDK_COLUMNS)
    assert admin.masked(row)["access_token"] == "1000.ac…89"
    assert admin.masked(row)["client_secret"] == "ad…23"
    assert admin.masked(row)["user_name"] == "ann@example.com"
    assert admin.find_row(store, "no-such-id") is None
    assert admin.find_row(store, "   ") is None
    with pytest.raises(ValueError, match="longer than 64"):
        admin.find_row(store, "x" * 65)


def test_json_masks_unless_asked(store: SQLAlchemyTokenStore) -> None:
    put(store, "ann@example.com", refresh="1000.refresh-ann-0123456789")
    rows = admin.list_rows(store)
    masked = json.loads(admin.to_json(rows))
    assert masked[0]["refresh_token"] == "1000.re…89"
    assert "1000.refresh-ann-0123456789" not in admin.to_json(rows)
    assert json.loads(admin.to_json(rows, include_secrets=True)) == rows


def test_table_lines(store: SQLAlchemyTokenStore) -> None:
    put(store, "ann@example.com", access="1000.access-ann-0123456789", expires=expired(1))
    put(store, None, grant="1000.grant-anon-0123456789")
    header, *lines = admin.table_lines(admin.list_rows(store), now=NOW)
    names = ["ID", "USER_NAME", "CLIENT_ID", "ACCESS_TOKEN", "REFRESH_TOKEN", "EXPIRY_TIME"]
    assert header.split() == names
    joined = "\n".join(lines)
    assert "1000.ac…89" in joined and "(expired)" in joined and "1000.access-ann" not in joined
    column = header.index("CLIENT_ID")
    assert all(line[column:].startswith(CLIENT[0]) for line in lines)


def test_delete_and_delete_all(store: SQLAlchemyTokenStore) -> None:
    ann = put(store, "ann@example.com", access="1000.access-ann-0123456789")
    put(store, "bob@example.com", access="1000.access-bob-0123456789")
    assert admin.delete_row(store, ann) is True
    assert admin.delete_row(store, ann) is False
    assert [row["user_name"] for row in admin.list_rows(store)] == ["bob@example.com"]
    assert admin.delete_all(store) == 1
    assert admin.list_rows(store) == []
    assert admin.delete_all(store) == 0


def test_purge_only_old_rows_without_refresh_token(store: SQLAlchemyTokenStore) -> None:
    old = put(store, "old@example.com", access="1000.access-old-0123456789", expires=expired(40))
    put(store, "kept@example.com", refresh="1000.refresh-k-0123456789", expires=expired(40))
    recent = put(store, "new@example.com", access="1000.access-new-0123456789", expires=expired(1))
    put(store, "grant@example.com", grant="1000.grant-g-0123456789")  # no expiry: kept
    month = timedelta(days=30)
    assert [r["id"] for r in admin.purge(store, month, dry_run=True, now=NOW)] == [old]
    assert len(admin.list_rows(store)) == 4
    assert [r["id"] for r in admin.purge(store, month, now=NOW)] == [old]
    assert len(admin.list_rows(store)) == 3
    assert admin.purge(store, month, now=NOW) == []
    assert [r["id"] for r in admin.purge(store, timedelta(hours=12), now=NOW)] == [recent]
    assert sorted(r["user_name"] or "" for r in admin.list_rows(store)) == [
        "grant@example.com",
        "kept@example.com",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        (" 2w ", timedelta(weeks=2)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert admin.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "1.5h", "-3d", "3 days", "3y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        admin.parse_duration(text)


def test_describe_expiry() -> None:
    row = dict.fromkeys(SDK_COLUMNS)
    assert admin.describe_expiry(row) == "-"
    row["expiry_time"] = "1900000000000"
    assert admin.describe_expiry(row, now=NOW - 60) == "2030-03-17 17:46Z"
    assert admin.describe_expiry(row, now=NOW + 60) == "2030-03-17 17:46Z (expired)"
    row["expiry_time"] = "9" * 20
    assert admin.describe_expiry(row) == "9" * 20


def test_write_private(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o644)
    admin.write_private(str(path), "new")
    assert path.read_text() == "new"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_table_says_to_run_the_migrations(backend_url: str) -> None:
    with SQLAlchemyTokenStore(backend_url, table_name="zss_never_made") as store:
        with pytest.raises(TokenStoreError, match=r"zss_never_made.*upgrade"):
            admin.list_rows(store)
        with pytest.raises(TokenStoreError, match=r"zss_never_made.*upgrade"):
            admin.delete_all(store)


def test_check(backend_url: str) -> None:
    table = "zss_admin_check"
    migrate.downgrade(backend_url, "base", table_name=table)
    assert migrate.check(backend_url, table_name=table) is False
    migrate.upgrade(backend_url, table_name=table)
    assert migrate.check(backend_url, table_name=table) is True
    assert migrate.check(backend_url) is True
    engine = make_engine(backend_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN extra INTEGER"))
        assert migrate.check(engine, table_name=table) is False
    finally:
        engine.dispose()
        migrate.downgrade(backend_url, "base", table_name=table)


def test_purge_uses_the_clock_by_default(store: SQLAlchemyTokenStore) -> None:
    long_ago = str(int((time.time() - 2 * 86400) * 1000))
    gone = put(store, "gone@example.com", access="1000.access-gone-0123456789", expires=long_ago)
    assert [r["id"] for r in admin.purge(store, timedelta(days=1))] == [gone]
