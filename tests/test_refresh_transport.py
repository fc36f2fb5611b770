"""The HTTP side of coordinated refresh: which server, how long, what answer, which proxy."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.request_proxy import RequestProxy
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

from tests.factories import CLIENT_A, token
from zoho_sa_store import SQLAlchemyTokenStore, datacentres
from zoho_sa_store.datacentres import DataCentre, data_centre, is_loopback, sdk_data_centres
from zoho_sa_store.refresh import RefreshPolicy
from zoho_sa_store.testing import ZohoStandIn
from zoho_sa_store.token_endpoint import (
    RefreshError,
    Transport,
    check_answer,
    request_refresh,
    sdk_accounts,
    sdk_proxies,
)
from zoho_sa_store.tokens import TokenFields

pytestmark = pytest.mark.usefixtures("fresh_sdk")

CLIENT = {"client_id": CLIENT_A[0], "client_secret": CLIENT_A[1]}
STALE_ACCESS = "1000.stale-access-token-0000"
TOKEN_PATH = "/oauth/v2/token"


def use_environment(
    url: str,
    accounts_url: str | None = None,
    *,
    sdk_config: Any = None,
    proxy: RequestProxy | None = None,
) -> None:
    """The SDK's current Initializer: its environment, config and proxy (no Zoho call)."""
    initializer = Initializer()
    initializer.environment = DataCenter.Environment(url, accounts_url or url + TOKEN_PATH, url)
    initializer.sdk_config = SDKConfig() if sdk_config is None else sdk_config
    initializer.request_proxy = proxy
    Initializer.initializer = initializer


def stale_row(store: SQLAlchemyTokenStore, user: str, refresh: str, api_domain: str | None) -> str:
    """Save an expired token of ``user`` (at ``api_domain``); return its id."""
    store.save_token(
        token(
            user,
            refresh=refresh,
            access=STALE_ACCESS,
            expires="1000000000000",
            api_domain=api_domain,
        )
    )
    [row] = [t for t in store.get_tokens() if t.get_user_signature().get_name() == user]
    return str(row.get_id())


class Scripted:
    """An HTTP server on 127.0.0.1 whose POST answers are written by ``answer(handler)``."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.sent = 0
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scripted.paths.append(self.path)
                scripted.headers.append(dict(self.headers))
                with contextlib.suppress(OSError):  # the client hung up
                    answer(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], Scripted]]:
    servers: list[Scripted] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], None]) -> Scripted:
        servers.append(Scripted(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def json_answer(payload: object) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def good_answer(api_domain: str) -> dict[str, object]:
    return {"access_token": "1000.fresh", "expires_in": 3600, "api_domain": api_domain}


# -- the row's data centre --------------------------------------------------------------


def test_the_sdks_data_centres_are_enumerated() -> None:
    known = sdk_data_centres()
    assert (
        known["https://www.zohoapis.com"].accounts_url == "https://accounts.zoho.com/oauth/v2/token"
    )
    assert (
        known["https://www.zohoapis.eu"].accounts_url == "https://accounts.zoho.eu/oauth/v2/token"
    )
    assert known["https://sandbox.zohoapis.eu"].name == "EUDataCenter"
    assert {dc.name for dc in known.values()} >= {"USDataCenter", "EUDataCenter", "INDataCenter"}
    assert data_centre("https://WWW.zohoapis.com/") == known["https://www.zohoapis.com"]
    assert data_centre("https://evil.example") is None


def test_a_us_token_is_never_sent_to_the_eu_accounts_server() -> None:
    use_environment("https://www.zohoapis.eu", "https://accounts.zoho.eu/oauth/v2/token")
    row = TokenFields(id="1", api_domain="https://www.zohoapis.com")
    transport, _ = sdk_accounts(row)
    assert transport is not None
    assert transport.accounts_url == "https://accounts.zoho.com/oauth/v2/token"
    # no api_domain: the current environment's, as the SDK's get_token does
    transport, _ = sdk_accounts(TokenFields(id="1"))
    assert transport is not None
    assert transport.accounts_url == "https://accounts.zoho.eu/oauth/v2/token"


def two_data_centres(monkeypatch: pytest.MonkeyPatch, us: ZohoStandIn, eu: ZohoStandIn) -> None:
    known = {
        us.url: DataCentre("US stand-in", us.url + TOKEN_PATH),
        eu.url: DataCentre("EU stand-in", eu.url + TOKEN_PATH),
    }
    monkeypatch.setattr(datacentres, "data_centres", lambda: known)


def test_each_token_is_refreshed_at_its_own_data_centre(
    store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ZohoStandIn() as us, ZohoStandIn() as eu:
        two_data_centres(monkeypatch, us, eu)
        use_environment(eu.url)  # the current environment is the EU's
        us_refresh = us.issue_refresh_token("ann@example.com", **CLIENT)
        eu_refresh = eu.issue_refresh_token("bob@example.com", **CLIENT)
        us_id = stale_row(store, "ann@example.com:1", us_refresh, us.url)
        eu_id = stale_row(store, "bob@example.com:1", eu_refresh, eu.url)

        found = store.find_token_by_id(us_id)
        assert us.count(grant_type="refresh_token") == 1
        assert eu.count(grant_type="refresh_token") == 0
        assert found.get_access_token() == us.issued_access_tokens[-1]
        assert found.get_api_domain() == us.url

        found = store.find_token_by_id(eu_id)
        assert (us.count(grant_type="refresh_token"), eu.count(grant_type="refresh_token")) == (
            1,
            1,
        )
        assert found.get_access_token() == eu.issued_access_tokens[-1]


@pytest.mark.slow
def test_eight_workers_two_data_centres_one_refresh_per_user(
    backend_url: str, store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 workers, each with its own store, find a US and an EU user's expired tokens at once."""
    workers = 8
    with ZohoStandIn(delay=0.2) as us, ZohoStandIn(delay=0.2) as eu:
        two_data_centres(monkeypatch, us, eu)
        use_environment(eu.url)
        us_refresh = us.issue_refresh_token("ann@example.com", **CLIENT)
        eu_refresh = eu.issue_refresh_token("bob@example.com", **CLIENT)
        ids = {
            "us": stale_row(store, "ann@example.com:1", us_refresh, us.url),
            "eu": stale_row(store, "bob@example.com:1", eu_refresh, eu.url),
        }
        start = threading.Barrier(workers)
        seen: list[tuple[str, str]] = []
        errors: list[BaseException] = []

        def work(order: tuple[str, str]) -> None:
            try:
                with SQLAlchemyTokenStore(backend_url) as own:
                    start.wait(timeout=30)
                    for dc in order:
                        seen.append((dc, own.find_token_by_id(ids[dc]).get_access_token()))
            except BaseException as error:  # reported below
                errors.append(error)

        orders = [("us", "eu"), ("eu", "us")] * (workers // 2)
        threads = [threading.Thread(target=work, args=(order,)) for order in orders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert us.count(grant_type="refresh_token") == 1
        assert eu.count(grant_type="refresh_token") == 1
        assert {access for dc, access in seen if dc == "us"} == {us.issued_access_tokens[-1]}
        assert {access for dc, access in seen if dc == "eu"} == {eu.issued_access_tokens[-1]}


def test_an_unknown_api_domain_is_left_to_the_sdk(
    store: SQLAlchemyTokenStore, zoho_stand_in: ZohoStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    use_environment(zoho_stand_in.url)
    refresh = zoho_stand_in.issue_refresh_token("ann@example.com", **CLIENT)
    row_id = stale_row(store, "ann@example.com:1", refresh, "https://crm.example")
    with caplog.at_level(logging.DEBUG, logger="zoho_sa_store.refresh"):
        found = store.find_token_by_id(row_id)
    assert zoho_stand_in.count(grant_type="refresh_token") == 0
    assert found.get_access_token() == STALE_ACCESS
    assert "no known data centre" in caplog.text


def test_http_accounts_urls_only_on_loopback() -> None:
    use_environment("http://crm.example", "http://accounts.example/oauth/v2/token")
    assert sdk_accounts(TokenFields(id="1"))[0] is None
    use_environment("http://localhost:8000")
    assert sdk_accounts(TokenFields(id="1"))[0] is not None
    assert [is_loopback(u) for u in ("http://127.8.0.1", "http://[::1]:5", "http://10.0.0.1")] == [
        True,
        True,
        False,
    ]


# -- one deadline for the whole exchange ----------------------------------------------------


def trickle(part: str) -> Callable[[BaseHTTPRequestHandler], None]:
    """Answer one byte each 0.5 s: the status line and headers, or the body."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        port = handler.server.server_address[1]
        body = json.dumps(good_answer(f"http://127.0.0.1:{port}")).encode()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        if part == "body":
            handler.wfile.write(head)
            head, body = b"", body
        else:
            head, body = head + body, b""
        for byte in head + body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.5)

    return answer


@pytest.mark.parametrize("part", ["body", "headers"])
def test_a_trickling_endpoint_is_cut_at_the_deadline(
    backend_url: str, scripted: Callable[..., Scripted], part: str
) -> None:
    server = scripted(trickle(part))
    use_environment(server.url)
    with SQLAlchemyTokenStore(backend_url, refresh=RefreshPolicy(http_timeout=2)) as store:
        store.delete_tokens()
        row_id = stale_row(store, "ann@example.com:1", "1000.refresh-trickle", None)
        started = time.monotonic()
        found = store.find_token_by_id(row_id)
        elapsed = time.monotonic() - started
    assert server.paths == [TOKEN_PATH]
    assert elapsed < 3.5
    assert found.get_access_token() == STALE_ACCESS
    assert found.get_expires_in() == "1000000000000"


# -- answers validated like saves ---------------------------------------------------------


def chunked_forever(server_sent: list[int]) -> Callable[[BaseHTTPRequestHandler], None]:
    """A 300 MiB body without Content-Length (chunked), written until the client hangs up."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b'{"a":"' + b"0" * 65_536
        for _ in range(300 * 16):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            server_sent[0] += len(chunk)
        handler.wfile.write(b"0\r\n\r\n")

    return answer


def declared_huge(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(300 * 1024 * 1024))
    handler.end_headers()
    handler.wfile.write(b"{" * 65_536)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("1 MB access token", "over 65536 bytes"),
        ("evil api_domain", "api_domain"),
        ("negative expires_in", "expires_in"),
        ("34-digit expires_in", "expires_in"),
        ("300 MiB chunked body", "over 65536 bytes"),
        ("300 MiB declared body", "over 65536 bytes"),
        ("error answer", "refused the refresh: invalid_code"),
    ],
)
def test_invalid_answers_fail_the_refresh(
    scripted: Callable[..., Scripted], case: str, message: str
) -> None:
    sent = [0]
    answers: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {
        "300 MiB chunked body": chunked_forever(sent),
        "300 MiB declared body": declared_huge,
        "error answer": json_answer({"error": "invalid_code"}),
    }
    # the server's own URL is filled in below, once it is known
    payload = {
        "1 MB access token": {"access_token": "a" * 1_000_000, "expires_in": 3600},
        "evil api_domain": {**good_answer(""), "api_domain": "https://evil.example"},
        "negative expires_in": {**good_answer(""), "expires_in": -5},
        "34-digit expires_in": {**good_answer(""), "expires_in": 10**33},
    }
    server = scripted(answers.get(case) or json_answer(payload[case]))
    transport = Transport(server.url + TOKEN_PATH, server.url)
    row = TokenFields(id="7", user_name="ann@example.com:1", refresh_token="1000.r", **CLIENT)
    started = time.monotonic()
    with pytest.raises(RefreshError, match=message):
        request_refresh(transport, row, timeout=5)
    assert time.monotonic() - started < 3
    assert sent[0] < 8 * 1024 * 1024  # streamed and cut, not read whole


def test_answer_fields_are_checked_like_saves() -> None:
    transport = Transport("http://127.0.0.1:1/oauth/v2/token", "http://127.0.0.1:1")
    ok = check_answer(good_answer("http://127.0.0.1:1"), transport)
    assert ok.access_token == "1000.fresh" and ok.api_domain == "http://127.0.0.1:1"
    assert check_answer({"access_token": "x", "expires_in": "3600"}, transport).api_domain is None
    ms = {"access_token": "x", "expires_in": 3_600_000, "expires_in_sec": 3600}
    assert int(check_answer(ms, transport).expiry_time) > (time.time() + 3500) * 1000
    bad: list[dict[str, object]] = [
        {"access_token": "a" * 8193, "expires_in": 3600},
        {"access_token": "has space", "expires_in": 3600},
        {"access_token": "tab\t", "expires_in": 3600},
        {"access_token": "é", "expires_in": 3600},
        {"access_token": "", "expires_in": 3600},
        {"access_token": 5, "expires_in": 3600},
        {"access_token": "x", "expires_in": 0},
        {"access_token": "x", "expires_in": 86_401},
        {"access_token": "x", "expires_in": 1.5},
        {"access_token": "x", "expires_in": True},
        {"access_token": "x"},
        {"access_token": "x", "expires_in": 3600, "api_domain": "http://evil.example"},
        {"access_token": "x", "expires_in": 3600, "api_domain": "https://www.zohoapis.com"},
        {"access_token": "x", "expires_in": 3600, "api_domain": 5},
    ]
    for answer in bad:
        with pytest.raises(RefreshError):
            check_answer(answer, transport)


def test_a_zoho_answer_must_name_the_rows_data_centre() -> None:
    us = data_centre("https://www.zohoapis.com")
    transport = Transport(
        "https://accounts.zoho.com/oauth/v2/token", "https://www.zohoapis.com", us
    )
    for same in ("https://www.zohoapis.com", "https://sandbox.zohoapis.com"):
        assert check_answer({**good_answer(same)}, transport).api_domain == same
    for other in ("https://www.zohoapis.eu", "http://www.zohoapis.com", "https://evil.example"):
        with pytest.raises(RefreshError, match="api_domain"):
            check_answer(good_answer(other), transport)


def test_an_invalid_answer_leaves_the_stored_token(
    store: SQLAlchemyTokenStore, scripted: Callable[..., Scripted], caplog: pytest.LogCaptureFixture
) -> None:
    server = scripted(json_answer({**good_answer(""), "api_domain": "https://evil.example"}))
    use_environment(server.url)
    row_id = stale_row(store, "ann@example.com:1", "1000.refresh-invalid", server.url)
    with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
        found = store.find_token_by_id(row_id)
    assert found.get_access_token() == STALE_ACCESS
    assert found.get_api_domain() == server.url
    assert "not of the token's data centre" in caplog.text


# -- the SDK's transport settings and older configs ------------------------------------------


def test_the_sdks_request_proxy_carries_the_refresh(
    store: SQLAlchemyTokenStore, scripted: Callable[..., Scripted]
) -> None:
    target = "http://127.0.0.1:9"  # nothing listens there: only the proxy can answer
    proxy = scripted(json_answer(good_answer(target)))
    port = int(proxy.url.rsplit(":", 1)[1])
    use_environment(target, proxy=RequestProxy("127.0.0.1", port, "zoho", "pw-secret"))
    row_id = stale_row(store, "ann@example.com:1", "1000.refresh-proxied", target)
    found = store.find_token_by_id(row_id)
    assert found.get_access_token() == "1000.fresh"
    assert proxy.paths == [target + TOKEN_PATH]
    expected = "Basic " + base64.b64encode(b"zoho:pw-secret").decode()
    assert proxy.headers[0].get("Proxy-Authorization") == expected


def test_proxy_urls_follow_the_sdks_request_proxy() -> None:
    assert sdk_proxies(None) is None
    with_user = sdk_proxies(RequestProxy("proxy.example", 3128, "a@b", "p:w"))
    assert with_user == {"http": "http://a%40b:p%3Aw@proxy.example:3128"} | {
        "https": "http://a%40b:p%3Aw@proxy.example:3128"
    }
    assert sdk_proxies(RequestProxy("https://proxy.example", 443)) == {
        "http": "https://proxy.example:443",
        "https": "https://proxy.example:443",
    }


def test_a_config_without_apply_api_domain_update(
    store: SQLAlchemyTokenStore, zoho_stand_in: ZohoStandIn
) -> None:
    use_environment(zoho_stand_in.url, sdk_config=SimpleNamespace())  # as on zohocrmsdk6_0
    refresh = zoho_stand_in.issue_refresh_token("ann@example.com", **CLIENT)
    row_id = stale_row(store, "ann@example.com:1", refresh, zoho_stand_in.url)
    found = store.find_token(token("ann@example.com:1"))
    assert found is not None
    assert found.get_access_token() == zoho_stand_in.issued_access_tokens[-1]
    assert found.get_id() == row_id


# -- the INFO line -----------------------------------------------------------------------


def test_every_refresh_logs_one_info_line(
    store: SQLAlchemyTokenStore,
    backend_url: str,
    zoho_stand_in: ZohoStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_environment(zoho_stand_in.url)
    refresh = zoho_stand_in.issue_refresh_token("ann@example.com", **CLIENT)
    row_id = stale_row(store, "ann@example.com:1", refresh, zoho_stand_in.url)
    with caplog.at_level(logging.INFO, logger="zoho_sa_store.refresh"):
        store.find_token_by_id(row_id)
        zoho_stand_in.revoke(refresh)
        store.save_token(token(id=row_id, access=STALE_ACCESS, expires="1000000000000"))
        with SQLAlchemyTokenStore(backend_url) as other:  # no back-off memory
            other.find_token_by_id(row_id)
    lines = [r for r in caplog.records if r.name == "zoho_sa_store.refresh" and r.levelno == 20]
    assert len(lines) == 2
    for record, outcome in zip(lines, ("ok", "failed: token endpoint refused"), strict=True):
        text = record.getMessage()
        assert f"token id {row_id} (user ann@example.com:1) at 127.0.0.1: {outcome}" in text
        assert text.endswith(" ms")
        assert refresh not in text and CLIENT["client_secret"] not in text
