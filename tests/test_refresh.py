"""Coordinated refresh: one refresh request for many workers, on every backend."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

from tests.factories import CLIENT_A, token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.refresh import RefreshPolicy
from zoho_sa_store.testing import ZohoStandIn
from zoho_sa_store.tokens import TokenFields

pytestmark = [pytest.mark.usefixtures("fresh_sdk"), pytest.mark.pooled]

CLIENT = {"client_id": CLIENT_A[0], "client_secret": CLIENT_A[1]}
WORKERS = 8


def load_sdk_json() -> None:
    """The SDK's slow one-time JSON load, done before a race starts."""
    import zohocrmsdk.src.com.zoho.crm.api.initializer as module

    path = os.path.join(os.path.dirname(module.__file__), *[".."] * 4, "json_details.json")
    Initializer.json_details = Initializer.get_json(path)


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


def expired_user(store: SQLAlchemyTokenStore, stand_in: ZohoStandIn, tmp: Path) -> str:
    """A user whose stored access token has expired; returns the grant the app holds."""
    grant = stored_user(store, stand_in, tmp)
    [row] = store.get_tokens()
    expired = OAuthToken(id=row.get_id(), access_token=row.get_access_token())
    expired.set_expires_in(str(int(time.time() * 1000) - 1000))
    store.save_token(expired)
    stand_in.expire_access_tokens()
    stand_in.reset_counts()
    Initializer.initializer = None
    return grant


def initialize_and_get(url: str, stand_in_url: str, grant: str, barrier: Any, tmp: str) -> str:
    """What each worker runs: the app's Initializer.initialize, then its access token."""
    load_sdk_json()
    store = SQLAlchemyTokenStore(url)
    environment = DataCenter.Environment(
        stand_in_url, stand_in_url + "/oauth/v2/token", stand_in_url
    )
    app_token = OAuthToken(**CLIENT, grant_token=grant)
    barrier.wait(timeout=120)
    try:
        Initializer.initialize(
            environment=environment, token=app_token, store=store, resource_path=tmp
        )
        return str(app_token.get_access_token())
    finally:
        store.close()


def _process_main(
    url: str, stand_in_url: str, grant: str, barrier: Any, tmp: str, out: Any
) -> None:
    try:
        out.put(("ok", initialize_and_get(url, stand_in_url, grant, barrier, tmp)))
    except BaseException as error:
        out.put(("error", repr(error)))


def assert_one_refresh_for_all(
    store: SQLAlchemyTokenStore, stand_in: ZohoStandIn, got: list[str]
) -> None:
    assert stand_in.count(grant_type="refresh_token") == 1
    assert stand_in.count(grant_type="authorization_code") == 0
    fresh = stand_in.issued_access_tokens[-1]
    assert got == [fresh] * WORKERS
    [row] = store.get_tokens()
    assert row.get_access_token() == fresh
    assert int(row.get_expires_in()) > (time.time() + 3000) * 1000


@pytest.mark.slow
def test_processes_share_one_refresh(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path
) -> None:
    with ZohoStandIn(delay=0.2) as stand_in:
        grant = expired_user(store, stand_in, tmp_path)
        ctx = multiprocessing.get_context("spawn")
        barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
        processes = [
            ctx.Process(
                target=_process_main,
                args=(backend_url, stand_in.url, grant, barrier, str(tmp_path), out),
            )
            for _ in range(WORKERS)
        ]
        for p in processes:
            p.start()
        results = [out.get(timeout=240) for _ in processes]
        for p in processes:
            p.join(timeout=60)
        assert [kind for kind, _ in results] == ["ok"] * WORKERS, results
        assert_one_refresh_for_all(store, stand_in, [value for _, value in results])


@pytest.mark.slow
def test_threads_share_one_refresh(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path
) -> None:
    with ZohoStandIn(delay=0.2) as stand_in:
        grant = expired_user(store, stand_in, tmp_path)
        # the process's first initialize is for an unrelated, fresh user
        other = stand_in.issue_grant("other@example.com", **CLIENT)
        Initializer.initialize(
            environment=stand_in.environment(),
            token=OAuthToken(**CLIENT, grant_token=other),
            store=store,
            resource_path=str(tmp_path),
        )
        store.delete_token(str(Initializer.get_initializer().token.get_id()))
        stand_in.reset_counts()
        barrier = threading.Barrier(WORKERS)
        got: list[str] = []
        errors: list[BaseException] = []

        def work() -> None:
            app_token = OAuthToken(**CLIENT, grant_token=grant)
            barrier.wait(timeout=60)
            try:
                Initializer.switch_user(token=app_token)
                got.append(str(app_token.get_access_token()))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert_one_refresh_for_all(store, stand_in, got)


def test_fresh_tokens_are_not_refreshed(
    store: SQLAlchemyTokenStore, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    grant = zoho_stand_in.issue_grant("ann@example.com", **CLIENT)
    Initializer.initialize(
        environment=zoho_stand_in.environment(),
        token=OAuthToken(**CLIENT, grant_token=grant),
        store=store,
        resource_path=str(tmp_path),
    )
    found = store.find_token(token(grant=grant))
    assert found is not None
    assert found.get_access_token() == zoho_stand_in.issued_access_tokens[-1]
    assert zoho_stand_in.count(grant_type="refresh_token") == 0


def test_refresh_within_the_window_before_expiry(
    store: SQLAlchemyTokenStore, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    grant = expired_user(store, zoho_stand_in, tmp_path)
    [row] = store.get_tokens()
    soon = OAuthToken(id=row.get_id(), access_token=row.get_access_token())
    soon.set_expires_in(str(int(time.time() * 1000) + 30_000))  # inside the 60 s window
    store.save_token(soon)
    # saved an hour minus 30 s ago, as a one-hour token is: more than half its life has gone
    # (one saved 30 s before its expiry would have a 30 s lifetime, capping the window at 15 s)
    with store.engine.begin() as conn:
        conn.execute(update(store.table).values(saved_at=store.table.c.saved_at - 3570 * 10**6))
    Initializer.initialize(
        environment=zoho_stand_in.environment(),
        token=OAuthToken(**CLIENT, grant_token=grant),
        store=store,
        resource_path=str(tmp_path),
    )
    assert zoho_stand_in.count(grant_type="refresh_token") == 1
    assert (
        store.find_token_by_id(row.get_id()).get_access_token()
        == zoho_stand_in.issued_access_tokens[-1]
    )


def test_refresh_off(backend_url: str, zoho_stand_in: ZohoStandIn, tmp_path: Path) -> None:
    with SQLAlchemyTokenStore(backend_url, refresh=False) as store:
        store.delete_tokens()
        grant = expired_user(store, zoho_stand_in, tmp_path)
        Initializer.initialize(
            environment=zoho_stand_in.environment(),
            token=OAuthToken(**CLIENT, grant_token=grant),
            store=store,
            resource_path=str(tmp_path),
        )
        found = store.find_token(token(grant=grant))
        # the SDK refreshed on its own (its 5 s rule) and saved; the store made no request
        assert zoho_stand_in.count(grant_type="refresh_token") == 1
        assert (
            found is not None and found.get_access_token() == zoho_stand_in.issued_access_tokens[-1]
        )


def test_failed_refresh_returns_the_stored_token_and_logs(
    store: SQLAlchemyTokenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ZohoStandIn() as stand_in:
        grant = expired_user(store, stand_in, tmp_path)
        environment = stand_in.environment()
        stale = store.get_tokens()[0]
    # the stand-in is gone: the accounts URL refuses connections
    initializer = Initializer()
    initializer.environment = environment
    Initializer.initializer = initializer
    with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
        found = store.find_token(token(grant=grant))
        again = store.find_token(token(grant=grant))
    assert found is not None and again is not None
    assert found.get_access_token() == stale.get_access_token()
    assert found.get_expires_in() == stale.get_expires_in()
    failures = [r for r in caplog.records if "failed, left to the SDK" in r.getMessage()]
    assert len(failures) == 1  # the second lookup is inside the back-off: no second try
    assert stale.get_refresh_token() not in caplog.text


@pytest.mark.parametrize(
    ("row", "stale"),
    [
        (
            TokenFields(
                id="1",
                refresh_token="r",
                client_id="c",
                client_secret="s",
                access_token="a",
                expiry_time="0",
            ),
            True,
        ),
        (
            TokenFields(
                id="1",
                refresh_token="r",
                client_id="c",
                client_secret="s",
                access_token="a",
                expiry_time="1059999",
            ),
            True,
        ),
        (
            TokenFields(
                id="1",
                refresh_token="r",
                client_id="c",
                client_secret="s",
                access_token="a",
                expiry_time="1061000",
            ),
            False,
        ),
        (TokenFields(id="1", refresh_token="r", client_id="c", client_secret="s"), True),
        (
            TokenFields(
                id="1", refresh_token="r", client_id="c", client_secret="s", access_token="a"
            ),
            False,
        ),
        (
            TokenFields(
                id="1", client_id="c", client_secret="s", access_token="a", expiry_time="0"
            ),
            False,
        ),
        (
            TokenFields(
                id="1", refresh_token="r", client_id="c", access_token="a", expiry_time="0"
            ),
            False,
        ),
    ],
)
def test_policy_is_stale(row: TokenFields, stale: bool) -> None:
    assert RefreshPolicy(window=60).is_stale(row, now_ms=1_000_000) is stale
    assert RefreshPolicy(window=0).is_stale(row, now_ms=1_000_000) is False


@pytest.mark.parametrize("bad", [{"window": -1}, {"http_timeout": "5"}, {"lock_timeout": True}])
def test_policy_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be a number of seconds"):
        RefreshPolicy(**bad)  # type: ignore[arg-type]


def test_a_failed_refresh_is_not_repeated_by_threads_waiting_on_the_lock(
    store: SQLAlchemyTokenStore, tmp_path: Path
) -> None:
    """The back-off holds for the threads queued on the row lock, not only for later calls."""
    with ZohoStandIn(delay=0.2) as stand_in:
        grant = expired_user(store, stand_in, tmp_path)
        other = stand_in.issue_grant("other@example.com", **CLIENT)
        Initializer.initialize(  # the SDK's environment, for the accounts URL
            environment=stand_in.environment(),
            token=OAuthToken(**CLIENT, grant_token=other),
            store=store,
            resource_path=str(tmp_path),
        )
        store.delete_token(str(Initializer.get_initializer().token.get_id()))
        [row] = store.get_tokens()
        assert grant and stand_in.revoke(str(row.get_refresh_token()))
        stand_in.reset_counts()
        barrier = threading.Barrier(WORKERS)
        got: list[str | None] = []

        def work() -> None:
            barrier.wait(timeout=60)
            found = store.find_token_by_id(str(row.get_id()))
            got.append(None if found is None else found.get_access_token())

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert stand_in.count(grant_type="refresh_token") == 1  # was one per waiting thread
        assert got == [row.get_access_token()] * WORKERS  # the stored token, to every thread
