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
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

from tests.factories import CLIENT_A, token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.testing import ZohoStandIn

pytestmark = pytest.mark.usefixtures("fresh_sdk")

CLIENT = {"client_id": CLIENT_A[0], "client_secret": CLIENT_A[1]}


def stored_user(store: SQLAlchemyTokenStore, stand_in: ZohoStandIn, tmp: Path) -> str:
    """Ann's token, stored through the SDK; the SDK stays initialized on the stand-in."""
    grant = stand_in.issue_grant("ann@example.com", **CLIENT)
    Initializer.initialize(
        environment=stand_in.environment(),
        token=OAuthToken(**CLIENT, grant_token=grant),
        store=store,
        resource_path=str(tmp),
    )
    stand_in.reset_counts()
    return grant


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
