"""Tests of the offline Zoho stand-in, at the HTTP level and with the real SDK talking to it."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.exception import SDKException
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.util import Utility

from zoho_sa_store.testing import DEFAULT_ORG_ID, INVALID_TOKEN, RecordedRequest, ZohoStandIn

TOKEN_RE = re.compile(r"^1000\.[0-9a-f]{32}\.[0-9a-f]{32}$")
EMAIL = "ana@example.com"
CLIENT = {"client_id": "1000.CLIENTID", "client_secret": "s3cret"}
ORG = "60012345"


class DictStore(TokenStore):  # type: ignore[misc]
    """A minimal in-memory token store, keyed by the id it gives each saved token."""

    def __init__(self) -> None:
        self.tokens: dict[str, OAuthToken] = {}

    def find_token(self, token: OAuthToken) -> OAuthToken | None:
        if token.get_id() is not None:  # OAuthToken.revoke() wants the token filled in place
            found = self.tokens.get(token.get_id())
            if found is None:
                return None
            token.set_refresh_token(found.get_refresh_token())
            token.set_access_token(found.get_access_token())
            token.set_user_signature(found.get_user_signature())
            return token
        for saved in self.tokens.values():
            grant, refresh = token.get_grant_token(), token.get_refresh_token()
            if (grant is not None and saved.get_grant_token() == grant) or (
                refresh is not None and saved.get_refresh_token() == refresh
            ):
                return saved
        return None

    def save_token(self, token: OAuthToken) -> None:
        if token.get_id() is None:
            token.set_id(uuid.uuid4().hex)
        self.tokens[token.get_id()] = token

    def delete_token(self, id: str) -> None:
        self.tokens.pop(id, None)

    def get_tokens(self) -> list[OAuthToken]:
        return list(self.tokens.values())

    def delete_tokens(self) -> None:
        self.tokens.clear()

    def find_token_by_id(self, id: str) -> OAuthToken | None:
        return self.tokens.get(id)


@pytest.fixture
def stand_in() -> Iterator[ZohoStandIn]:
    with ZohoStandIn() as server:
        yield server


@contextmanager
def quiet_urllib3() -> Iterator[None]:
    """urllib3 logs request URLs at DEBUG: keep a deliberate token-in-URL out of the logs."""
    logger = logging.getLogger("urllib3.connectionpool")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)


def post(server: ZohoStandIn, path: str, **form: str) -> tuple[int, dict[str, Any]]:
    with requests.post(server.url + path, data=form, timeout=5) as response:
        return response.status_code, response.json()


def get(server: ZohoStandIn, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {} if token is None else {"Authorization": f"Zoho-oauthtoken {token}"}
    with requests.get(server.url + path, headers=headers, timeout=5) as response:
        return response.status_code, response.json()


def trade_grant(server: ZohoStandIn, org_id: str = ORG) -> dict[str, Any]:
    code = server.issue_grant(EMAIL, org_id=org_id, **CLIENT)
    status, body = post(
        server, "/oauth/v2/token", grant_type="authorization_code", code=code, **CLIENT
    )
    assert status == 200
    return body


def init_sdk(server: ZohoStandIn, tmp_path: Path, **token: str) -> DictStore:
    store = DictStore()
    Initializer.initialize(
        environment=server.environment(),
        token=OAuthToken(**CLIENT, **token),
        store=store,
        resource_path=str(tmp_path),
    )
    return store


# -- HTTP level ------------------------------------------------------------------------------
def test_url_and_environment(stand_in: ZohoStandIn) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", stand_in.url)
    assert stand_in.url != "http://127.0.0.1:0"
    env = stand_in.environment()
    assert (env.url, env.accounts_url, env.file_upload_url) == (
        stand_in.url,
        stand_in.url + "/oauth/v2/token",
        stand_in.url,
    )


def test_authorization_code_answer(stand_in: ZohoStandIn) -> None:
    code = stand_in.issue_grant(EMAIL, **CLIENT)
    assert TOKEN_RE.match(code)
    body = trade_grant(stand_in)
    assert set(body) == {"access_token", "refresh_token", "api_domain", "token_type", "expires_in"}
    assert TOKEN_RE.match(body["access_token"]) and TOKEN_RE.match(body["refresh_token"])
    assert body["access_token"] != body["refresh_token"]
    assert (body["api_domain"], body["token_type"], body["expires_in"]) == (
        stand_in.url,
        "Bearer",
        3600,
    )
    assert stand_in.issued_access_tokens == [body["access_token"]]
    assert stand_in.issued_refresh_tokens == [body["refresh_token"]]
    assert stand_in.is_live(body["access_token"]) and stand_in.is_live(body["refresh_token"])
    assert not stand_in.is_live(code)


def test_grant_is_single_use_and_checks_the_client(stand_in: ZohoStandIn) -> None:
    code = stand_in.issue_grant(EMAIL, **CLIENT)
    form = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT["client_id"]}
    assert post(stand_in, "/oauth/v2/token", **form, client_secret="wrong") == (
        200,
        {"error": "invalid_code"},
    )
    status, body = post(stand_in, "/oauth/v2/token", **form, client_secret="s3cret")
    assert status == 200 and "access_token" in body
    again = post(stand_in, "/oauth/v2/token", **form, client_secret="s3cret")
    assert again == (200, {"error": "invalid_code"})
    unknown = {**form, "code": "1000." + "0" * 32 + "." + "0" * 32}
    assert post(stand_in, "/oauth/v2/token", **unknown, client_secret="s3cret")[1] == {
        "error": "invalid_code"
    }
    assert len(stand_in.issued_access_tokens) == 1


def test_refresh_gives_access_token_only(stand_in: ZohoStandIn) -> None:
    first = trade_grant(stand_in)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **CLIENT}
    status, body = post(stand_in, "/oauth/v2/token", **form)
    assert status == 200
    assert set(body) == {"access_token", "api_domain", "token_type", "expires_in"}
    assert TOKEN_RE.match(body["access_token"]) and body["access_token"] != first["access_token"]
    assert body["expires_in"] == 3600 and body["api_domain"] == stand_in.url
    assert stand_in.issued_access_tokens == [first["access_token"], body["access_token"]]
    assert stand_in.issued_refresh_tokens == [first["refresh_token"]]
    bad_client = {**form, "client_secret": "wrong"}
    assert post(stand_in, "/oauth/v2/token", **bad_client) == (200, {"error": "invalid_code"})
    unknown = {**form, "refresh_token": "1000." + "1" * 32 + "." + "1" * 32}
    assert post(stand_in, "/oauth/v2/token", **unknown) == (200, {"error": "invalid_code"})
    assert post(stand_in, "/oauth/v2/token", grant_type="password")[1] == {
        "error": "unsupported_grant_type"
    }


@pytest.mark.parametrize("in_query", [False, True])
def test_revoke(stand_in: ZohoStandIn, in_query: bool) -> None:
    tokens = trade_grant(stand_in)
    refresh = tokens["refresh_token"]
    if in_query:
        with (
            quiet_urllib3(),
            requests.post(
                stand_in.url + "/oauth/v2/token/revoke", params={"token": refresh}, timeout=5
            ) as response,
        ):
            answer = response.status_code, response.json()
    else:
        answer = post(stand_in, "/oauth/v2/token/revoke", token=refresh)
    assert answer == (200, {"status": "success"})
    assert not stand_in.is_live(refresh) and not stand_in.is_live(tokens["access_token"])
    assert get(stand_in, "/crm/v8/users?type=CurrentUser", tokens["access_token"]) == (
        401,
        INVALID_TOKEN,
    )
    form = {"grant_type": "refresh_token", "refresh_token": refresh, **CLIENT}
    assert post(stand_in, "/oauth/v2/token", **form)[1] == {"error": "invalid_code"}
    assert post(stand_in, "/oauth/v2/token/revoke", token=refresh) == (200, {"status": "error"})
    assert stand_in.revoke(refresh) is False


def test_crm_users_and_org(stand_in: ZohoStandIn) -> None:
    access = trade_grant(stand_in)["access_token"]
    status, users = get(stand_in, "/crm/v8/users?type=CurrentUser", access)
    assert status == 200 and [u["email"] for u in users["users"]] == [EMAIL]
    assert users["info"]["count"] == 1 and users["users"][0]["id"].isdigit()
    status, org = get(stand_in, "/crm/v8/org", access)
    assert status == 200 and [o["zgid"] for o in org["org"]] == [ORG]
    other = trade_grant(stand_in, org_id=DEFAULT_ORG_ID)["access_token"]
    assert get(stand_in, "/crm/v8/org", other)[1]["org"][0]["zgid"] == "700000001"


def test_crm_rejects_bad_tokens(stand_in: ZohoStandIn) -> None:
    access = trade_grant(stand_in)["access_token"]
    assert get(stand_in, "/crm/v8/users", None) == (401, INVALID_TOKEN)
    assert get(stand_in, "/crm/v8/org", "1000." + "2" * 32 + "." + "2" * 32) == (
        401,
        INVALID_TOKEN,
    )
    assert get(stand_in, "/crm/v8/Leads", access)[0] == 404
    assert stand_in.expire_access_tokens() == 1
    assert not stand_in.is_live(access)
    assert get(stand_in, "/crm/v8/org", access) == (401, INVALID_TOKEN)
    assert stand_in.expire_access_tokens() == 0


def test_short_lived_access_tokens() -> None:
    with ZohoStandIn(expires_in=1) as server:
        body = trade_grant(server)
        assert body["expires_in"] == 1 and server.is_live(body["access_token"])
        time.sleep(1.05)
        assert not server.is_live(body["access_token"])
        assert server.is_live(body["refresh_token"])


def test_request_records_and_counts(stand_in: ZohoStandIn) -> None:
    before = time.monotonic()
    tokens = trade_grant(stand_in)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **CLIENT}
    post(stand_in, "/oauth/v2/token", **refresh)
    post(stand_in, "/oauth/v2/token", **refresh)
    get(stand_in, "/crm/v8/org", tokens["access_token"])
    records = stand_in.requests
    assert [(r.method, r.path, r.grant_type) for r in records] == [
        ("POST", "/oauth/v2/token", "authorization_code"),
        ("POST", "/oauth/v2/token", "refresh_token"),
        ("POST", "/oauth/v2/token", "refresh_token"),
        ("GET", "/crm/v8/org", None),
    ]
    assert all(isinstance(r, RecordedRequest) and r.at >= before for r in records)
    assert stand_in.count(grant_type="refresh_token") == 2
    assert stand_in.count(grant_type="authorization_code") == 1
    assert stand_in.count(method="GET") == 1 and stand_in.count(path="/oauth/v2/token") == 3
    assert stand_in.count() == 4
    stand_in.reset_counts()
    assert stand_in.count() == 0 and stand_in.requests == []
    assert stand_in.is_live(tokens["refresh_token"])


def test_delay_applies_to_token_endpoint(stand_in: ZohoStandIn) -> None:
    tokens = trade_grant(stand_in)
    stand_in.delay = 0.2
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **CLIENT}
    started = time.monotonic()
    assert "access_token" in post(stand_in, "/oauth/v2/token", **form)[1]
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert get(stand_in, "/crm/v8/org", tokens["access_token"])[0] == 200
    assert time.monotonic() - started < 0.2


def test_concurrent_refreshes(stand_in: ZohoStandIn) -> None:
    tokens = trade_grant(stand_in)
    stand_in.reset_counts()
    stand_in.delay = 0.05
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **CLIENT}
    answers: list[dict[str, Any]] = []
    workers = [
        threading.Thread(
            target=lambda: answers.append(post(stand_in, "/oauth/v2/token", **form)[1])
        )
        for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    access = {a["access_token"] for a in answers}
    assert len(access) == 8 and all(stand_in.is_live(a) for a in access)
    assert stand_in.count(grant_type="refresh_token") == 8


def test_never_logs_tokens(stand_in: ZohoStandIn, capfd: pytest.CaptureFixture[str]) -> None:
    tokens = trade_grant(stand_in)
    get(stand_in, "/crm/v8/users?type=CurrentUser", tokens["access_token"])
    with (
        quiet_urllib3(),
        requests.post(
            stand_in.url + "/oauth/v2/token/revoke",
            params={"token": tokens["refresh_token"]},
            timeout=5,
        ) as response,
    ):
        assert response.json() == {"status": "success"}
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_stop_and_restart() -> None:
    server = ZohoStandIn()
    with pytest.raises(RuntimeError):
        _ = server.url
    server.start()
    url = server.url
    refresh = server.issue_refresh_token(EMAIL, **CLIENT)
    with pytest.raises(RuntimeError):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/crm/v8/org", timeout=5)
    with server:
        form = {"grant_type": "refresh_token", "refresh_token": refresh, **CLIENT}
        assert "access_token" in post(server, "/oauth/v2/token", **form)[1]


def test_pytest_fixture(zoho_stand_in: ZohoStandIn) -> None:
    assert isinstance(zoho_stand_in, ZohoStandIn) and zoho_stand_in.delay == 0
    assert "access_token" in trade_grant(zoho_stand_in)


# -- the real SDK against the stand-in ---------------------------------------------------------
def test_sdk_grant_flow(stand_in: ZohoStandIn, tmp_path: Path) -> None:
    code = stand_in.issue_grant(EMAIL, org_id=ORG, **CLIENT)
    store = init_sdk(stand_in, tmp_path, grant_token=code)
    [token] = store.get_tokens()
    assert token.get_user_signature().get_name() == f"{EMAIL}:{ORG}"
    assert stand_in.issued_access_tokens == [token.get_access_token()]
    assert stand_in.issued_refresh_tokens == [token.get_refresh_token()]
    assert token.get_api_domain() == stand_in.url
    assert int(token.get_expires_in()) > (time.time() + 3500) * 1000
    assert stand_in.count(grant_type="authorization_code") == 1
    assert stand_in.count(grant_type="refresh_token") == 0
    assert [r.path for r in stand_in.requests if r.method == "GET"] == [
        "/crm/v8/users",
        "/crm/v8/org",
    ]
    assert Utility.get_user_name(token.get_access_token()) == f"{EMAIL}:{ORG}"


def test_sdk_reused_grant_is_refused(stand_in: ZohoStandIn, tmp_path: Path) -> None:
    code = stand_in.issue_grant(EMAIL, **CLIENT)
    init_sdk(stand_in, tmp_path, grant_token=code)
    with pytest.raises(SDKException) as caught:
        init_sdk(stand_in, tmp_path, grant_token=code)
    assert caught.value.error_message == "invalid_code"
    assert stand_in.count(grant_type="authorization_code") == 2
    assert len(stand_in.issued_access_tokens) == 1


def test_sdk_refresh(stand_in: ZohoStandIn, tmp_path: Path) -> None:
    code = stand_in.issue_grant(EMAIL, org_id=ORG, **CLIENT)
    store = init_sdk(stand_in, tmp_path, grant_token=code)
    [token] = store.get_tokens()
    first_access, refresh = token.get_access_token(), token.get_refresh_token()
    token.set_expires_in(str(int(time.time() * 1000)))  # make the SDK think it has expired
    new_access = Initializer.get_initializer().token.get_token()
    assert new_access != first_access and stand_in.is_live(new_access)
    assert stand_in.issued_access_tokens == [first_access, new_access]
    assert token.get_refresh_token() == refresh  # not rotated
    assert stand_in.count(grant_type="refresh_token") == 1
    assert store.get_tokens()[0].get_access_token() == new_access


def test_sdk_starts_from_refresh_token(stand_in: ZohoStandIn, tmp_path: Path) -> None:
    refresh = stand_in.issue_refresh_token(EMAIL, org_id=ORG, **CLIENT)
    store = init_sdk(stand_in, tmp_path, refresh_token=refresh)
    [token] = store.get_tokens()
    assert token.get_refresh_token() == refresh
    assert token.get_access_token() == stand_in.issued_access_tokens[0]
    assert token.get_user_signature().get_name() == f"{EMAIL}:{ORG}"
    assert stand_in.count(grant_type="refresh_token") == 1
    assert stand_in.count(grant_type="authorization_code") == 0


def test_sdk_revoke(stand_in: ZohoStandIn, tmp_path: Path) -> None:
    code = stand_in.issue_grant(EMAIL, org_id=ORG, **CLIENT)
    store = init_sdk(stand_in, tmp_path, grant_token=code)
    [token] = store.get_tokens()
    assert token.revoke(token.get_id()) is True
    assert stand_in.count(path="/oauth/v2/token/revoke") == 1
    assert not stand_in.is_live(token.get_refresh_token())
    assert not stand_in.is_live(token.get_access_token())
    with pytest.raises(SDKException) as caught:
        Utility.get_user_name(token.get_access_token())
    assert caught.value.details["code"] == "INVALID_TOKEN"
    assert token.revoke(token.get_id()) is False
