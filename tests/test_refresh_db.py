"""The database side of the coordinated refresh: the row lock, the window cap, clock skew."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, make_url, text
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

from tests.factories import token
from tests.test_refresh import stored_user
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.testing import ZohoStandIn

pytestmark = pytest.mark.usefixtures("fresh_sdk")


def expire(store: SQLAlchemyTokenStore) -> OAuthToken:
    """Make the stored access token expired (the SDK's lifetime-at-issue kept: an hour)."""
    [row] = store.get_tokens()
    expired = OAuthToken(id=row.get_id(), access_token=row.get_access_token())
    expired.set_expires_in(str(int(time.time() * 1000) - 1000))
    store.save_token(expired)
    return store.get_tokens()[0]


@pytest.fixture
def read_only_url(server_url: str) -> Iterator[str]:
    """A database user who may SELECT the token table and nothing else; dropped afterwards."""
    admin_url = make_url(server_url)
    name = f"zss_ro_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    if admin_url.get_backend_name() == "postgresql":
        grant = [
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}'",
            f'GRANT CONNECT ON DATABASE "{admin_url.database}" TO {name}',
            f"GRANT USAGE ON SCHEMA public TO {name}",
            f"GRANT SELECT ON oauthtoken TO {name}",
        ]
        drop = [f"DROP OWNED BY {name}", f"DROP ROLE {name}"]
    else:
        grant = [
            f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'",
            f"GRANT SELECT ON `{admin_url.database}`.oauthtoken TO '{name}'@'%'",
        ]
        drop = [f"DROP USER '{name}'@'%'"]
    with engine.connect() as conn:
        for sql in grant:
            conn.execute(text(sql))
    try:
        reader: URL = admin_url.set(username=name, password=password)
        yield reader.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            for sql in drop:
                conn.execute(text(sql))
        engine.dispose()


def test_a_read_only_user_never_asks_zoho_for_a_token_it_cannot_save(
    server_url: str,
    read_only_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with SQLAlchemyTokenStore(server_url) as store, ZohoStandIn() as stand_in:
        store.delete_tokens()
        grant = stored_user(store, stand_in, tmp_path)
        stale = expire(store)
        with (
            SQLAlchemyTokenStore(read_only_url) as reader,
            caplog.at_level(logging.WARNING, logger="zoho_sa_store"),
        ):
            found = reader.find_token(token(grant=grant))
            by_id = reader.find_token_by_id(stale.get_id())
        # the lock's UPDATE was refused before any request: Zoho saw none, nothing was lost
        assert stand_in.count(grant_type="refresh_token") == 0
        assert found is not None and by_id is not None
        assert found.get_access_token() == stale.get_access_token()
        assert found.get_expires_in() == stale.get_expires_in()
        assert by_id.get_access_token() == stale.get_access_token()
        assert "failed, left to the SDK" in caplog.text
        assert stale.get_refresh_token() not in caplog.text
        [row] = store.get_tokens()
        assert row.get_access_token() == stale.get_access_token()


def test_short_lived_tokens_are_refreshed_once_per_half_lifetime(
    backend_url: str, tmp_path: Path
) -> None:
    """30 s tokens and the default 60 s window: every token would be "stale" at birth, and
    every lookup would refresh it; the window is capped at half the token's lifetime."""
    with SQLAlchemyTokenStore(backend_url) as store, ZohoStandIn(expires_in=30) as stand_in:
        store.delete_tokens()
        grant = stored_user(store, stand_in, tmp_path)
        row_id = expire(store).get_id()
        got: set[str | None] = set()
        for _ in range(10):
            found = store.find_token(token(grant=grant))
            by_id = store.find_token_by_id(row_id)
            assert found is not None and by_id is not None
            got |= {found.get_access_token(), by_id.get_access_token()}
            time.sleep(0.3)
        assert stand_in.count(grant_type="refresh_token") == 1
        assert got == {stand_in.issued_access_tokens[-1]}


@pytest.mark.parametrize(
    ("expiry_ms", "saved_at_us", "stale"),
    [
        (1_030_000, 1_000_000_000, False),  # 30 s lifetime, 30 s left: more than half
        (1_016_000, 984_000_000, False),  # 16 s left of 32 s (saved 16 s ago): half left
        (1_013_000, 986_000_000, True),  # 13 s left of 27 s: over half gone
        (1_050_000, 900_000_000, True),  # 50 s left of 150 s: within the 60 s window
        (1_061_000, 0, False),  # saved_at unknown (0): the window alone
        (1_059_000, 0, True),
        (999_000, 1_000_000_000, True),  # saved already expired
        (1_014_000, None, True),  # no saved_at given: the window alone
    ],
)
def test_window_is_capped_at_half_the_lifetime(
    expiry_ms: int, saved_at_us: int | None, stale: bool
) -> None:
    from zoho_sa_store.refresh import RefreshPolicy
    from zoho_sa_store.tokens import TokenFields

    row = TokenFields(
        id="1",
        refresh_token="r",
        client_id="c",
        client_secret="s",
        access_token="a",
        expiry_time=str(expiry_ms),
    )
    policy = RefreshPolicy(window=60)
    assert policy.is_stale(row, now_ms=1_000_000, saved_at=saved_at_us) is stale


@pytest.mark.parametrize("window", [1800.5, 3600, 86_400])
def test_a_window_over_30_minutes_is_refused(window: float) -> None:
    from zoho_sa_store.refresh import RefreshPolicy

    with pytest.raises(ValueError, match="at most 1800"):
        RefreshPolicy(window=window)
    assert RefreshPolicy(window=1800).window == 1800


@pytest.mark.parametrize("offset", [300.0, -300.0])
def test_clock_skew_is_logged_once_per_process(
    server_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    offset: float,
) -> None:
    import zoho_sa_store.refresh_lock as store_module

    monkeypatch.setattr(store_module, "_skew_warned_in", None)
    with SQLAlchemyTokenStore(server_url) as store, ZohoStandIn() as stand_in:
        store.delete_tokens()
        grant = stored_user(store, stand_in, tmp_path)
        # the clocks agree: a refresh logs nothing about them
        expire(store)
        with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
            assert store.find_token(token(grant=grant)) is not None
        assert stand_in.count(grant_type="refresh_token") == 1
        assert "clock" not in caplog.text
        # this machine's clock 5 minutes off: one warning, however many refreshes
        monkeypatch.setattr(store_module, "wall_clock", lambda: time.time() + offset)
        for _ in range(2):
            expire(store)
            with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
                found = store.find_token(token(grant=grant))
            assert found is not None
            assert found.get_access_token() == stand_in.issued_access_tokens[-1]
        assert stand_in.count(grant_type="refresh_token") == 3
        warnings = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert f"{offset:+.1f} s off" in warnings[0]
        assert "NTP" in warnings[0]
