"""An offline stand-in for Zoho Accounts (OAuth 2) and the Zoho CRM endpoints the SDK calls.

:class:`ZohoStandIn` serves HTTP on ``127.0.0.1`` (a free port); point the real SDK at it with
:meth:`ZohoStandIn.environment`. Endpoints (all answer JSON):

- ``POST /oauth/v2/token`` (form body): ``grant_type=authorization_code`` trades a single-use
  grant from :meth:`ZohoStandIn.issue_grant` for ``{"access_token", "refresh_token",
  "api_domain", "token_type": "Bearer", "expires_in": <seconds>}``; ``grant_type=refresh_token``
  answers the same without ``refresh_token`` (no rotation). A bad code, refresh token or client
  gets HTTP 200 ``{"error": "invalid_code"}``, as from Zoho.
- ``POST /oauth/v2/token/revoke`` (``token`` in the form or query): revokes a refresh token and
  its access tokens: ``{"status": "success"}``, or ``{"status": "error"}`` if unknown.
- ``GET /crm/v<version>/users`` and ``GET /crm/v<version>/org`` for every API version an SDK
  calls (``v8``, ``v7``, ``v6``, ``v5``, ``v2.1``, ``v2``; ``Authorization:
  Zoho-oauthtoken <token>``): the token's user and org, so that ``Utility.get_user_name``
  returns ``"email:org_id"``; a bad, expired or revoked token gets 401 :data:`INVALID_TOKEN`.

Tokens look like Zoho's (``1000.<32 hex>.<32 hex>``) and are never logged. Only the standard
library is imported here; the SDK is imported by :meth:`ZohoStandIn.environment`, which
serves the installed one: ``zohocrmsdk`` (5_0 to 8_0) or else ``zcrmsdk`` (2_0, 2_1).
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DEFAULT_ORG_ID", "INVALID_TOKEN", "RecordedRequest", "ZohoStandIn", "new_token"]

DEFAULT_ORG_ID = "700000001"
"""The org id (the CRM ``zgid``) of users whose grant names no other org."""


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "details": {}, "message": message, "status": "error"}


INVALID_TOKEN = _error("INVALID_TOKEN", "invalid oauth token")
"""The JSON body of the 401 answer to a CRM request with a bad access token."""
_INVALID_URL = _error("INVALID_URL_PATTERN", "Please check the URL")
_GRANT_PATH = "/oauth/v2/token"
_REVOKE_PATH = "/oauth/v2/token/revoke"
_CRM_PATH = re.compile(r"^/crm/v\d+(?:\.\d+)?/(users|org)$")
_AUTH_SCHEME = "Zoho-oauthtoken"


def new_token() -> str:
    """Return a fresh random token in Zoho's format: ``"1000.<32 hex>.<32 hex>"``."""
    return f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"


def _numeric_id(text: str) -> str:
    return str(4_150_868_000_000_000_000 + zlib.crc32(text.encode()))


@dataclass(frozen=True)
class RecordedRequest:
    """One request received: ``method`` ``"GET"``/``"POST"``, ``path`` without query, the form's
    ``grant_type`` (``None`` if absent) and ``at``, ``time.monotonic()`` on arrival (seconds)."""

    method: str
    path: str
    grant_type: str | None
    at: float


@dataclass(frozen=True)
class _Account:
    email: str
    client_id: str
    client_secret: str
    org_id: str


class ZohoStandIn:
    """Offline Zoho Accounts + CRM server; a context manager that starts and stops it.

    ``delay`` (seconds, float, may be changed while running) is slept before every answer of
    the token and revoke endpoints; ``expires_in`` (seconds, int) is the access tokens' lifetime
    and the ``expires_in`` answered. Every method is thread-safe."""

    def __init__(self, *, delay: float = 0.0, expires_in: int = 3600) -> None:
        self.delay = delay
        self.expires_in = expires_in
        self._lock = threading.Lock()
        self._grants: dict[str, _Account] = {}
        self._refresh: dict[str, _Account] = {}
        self._access: dict[str, tuple[str, float]] = {}  # token -> (refresh token, expiry)
        self._issued_access: list[str] = []
        self._issued_refresh: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ZohoStandIn:
        """Bind ``127.0.0.1`` on a free port and serve on a daemon thread; return ``self``."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        handler = type("_Bound", (_Handler,), {"stand_in": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; issued tokens are kept. Safe to call twice."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> ZohoStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:PORT"``, the base URL of both Accounts and CRM (when running)."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def environment(self) -> Any:
        """A ``DataCenter.Environment(url, url + "/oauth/v2/token", url)`` for the SDK.

        The installed SDK's class: ``zohocrmsdk``'s, else ``zcrmsdk``'s. Where its
        constructor also takes a ``name`` (zohocrmsdk5_0, zcrmsdk), it is ``"stand_in"``.

        Raises:
            ImportError: neither SDK is installed.
        """
        try:
            from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
        except ImportError:
            from zcrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

        urls = (self.url, self.url + _GRANT_PATH, self.url)
        if "name" in inspect.signature(DataCenter.Environment).parameters:
            return DataCenter.Environment(*urls, "stand_in")
        return DataCenter.Environment(*urls)

    def issue_grant(
        self, email: str, *, client_id: str, client_secret: str, org_id: str = DEFAULT_ORG_ID
    ) -> str:
        """Register and return a single-use grant token (authorization code) for the user."""
        code = new_token()
        with self._lock:
            self._grants[code] = _Account(email, client_id, client_secret, org_id)
        return code

    def issue_refresh_token(
        self, email: str, *, client_id: str, client_secret: str, org_id: str = DEFAULT_ORG_ID
    ) -> str:
        """Register and return a live refresh token for the user, as if a grant was traded."""
        with self._lock:
            return self._new_refresh(_Account(email, client_id, client_secret, org_id))

    def revoke(self, refresh_token: str) -> bool:
        """Revoke a refresh token and its access tokens; return whether it was live."""
        with self._lock:
            return self._refresh.pop(refresh_token, None) is not None  # access tokens die too

    def expire_access_tokens(self) -> int:
        """Make every live access token expired (CRM answers 401); return how many there were."""
        with self._lock:
            count, self._access = len(self._access), {}
            return count

    def is_live(self, token: str) -> bool:
        """Whether ``token`` is a live (issued, unexpired, unrevoked) access or refresh token."""
        with self._lock:
            return token in self._refresh or self._live_access(token) is not None

    @property
    def issued_access_tokens(self) -> list[str]:
        """Every access token issued so far, oldest first (live or not)."""
        with self._lock:
            return list(self._issued_access)

    @property
    def issued_refresh_tokens(self) -> list[str]:
        """Every refresh token issued so far, oldest first (live or not)."""
        with self._lock:
            return list(self._issued_refresh)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received since the start or :meth:`reset_counts`."""
        with self._lock:
            return list(self._requests)

    def count(
        self, *, grant_type: str | None = None, path: str | None = None, method: str | None = None
    ) -> int:
        """Number of recorded requests matching every filter given (``None`` matches all)."""
        given = {"grant_type": grant_type, "path": path, "method": method}
        wanted = {k: v for k, v in given.items() if v is not None}
        return sum(all(getattr(r, k) == v for k, v in wanted.items()) for r in self.requests)

    def reset_counts(self) -> None:
        """Forget the recorded requests (tokens are kept)."""
        with self._lock:
            self._requests.clear()

    def _new_refresh(self, account: _Account) -> str:
        token = new_token()
        self._refresh[token] = account
        self._issued_refresh.append(token)
        return token

    def _new_access(self, refresh_token: str) -> dict[str, Any]:
        token = new_token()
        self._access[token] = (refresh_token, time.monotonic() + self.expires_in)
        self._issued_access.append(token)
        answer = {"access_token": token, "api_domain": self.url, "token_type": "Bearer"}
        return {**answer, "expires_in": self.expires_in}

    def _live_access(self, token: str) -> _Account | None:
        refresh, expiry = self._access.get(token, ("", 0.0))
        if expiry <= time.monotonic():
            return None
        return self._refresh.get(refresh)

    def _post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant_type = form.get("grant_type")
        with self._lock:
            self._requests.append(RecordedRequest("POST", path, grant_type, time.monotonic()))
        if path not in (_GRANT_PATH, _REVOKE_PATH):
            return 404, _INVALID_URL
        if self.delay > 0:
            time.sleep(self.delay)
        if path == _REVOKE_PATH:
            ok = self.revoke(form.get("token", ""))
            return 200, {"status": "success" if ok else "error"}
        client = (form.get("client_id"), form.get("client_secret"))
        with self._lock:
            if grant_type == "authorization_code":
                account = self._grants.get(form.get("code", ""))
                if account is None or (account.client_id, account.client_secret) != client:
                    return 200, {"error": "invalid_code"}
                del self._grants[form["code"]]
                refresh = self._new_refresh(account)
                return 200, {**self._new_access(refresh), "refresh_token": refresh}
            if grant_type == "refresh_token":
                refresh = form.get("refresh_token", "")
                account = self._refresh.get(refresh)
                if account is None or (account.client_id, account.client_secret) != client:
                    return 200, {"error": "invalid_code"}
                return 200, self._new_access(refresh)
        return 200, {"error": "unsupported_grant_type"}

    def _get(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._requests.append(RecordedRequest("GET", path, None, time.monotonic()))
        match = _CRM_PATH.match(path)
        if match is None:
            return 404, _INVALID_URL
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            account = self._live_access(token) if scheme == _AUTH_SCHEME else None
        if account is None:
            return 401, INVALID_TOKEN
        if match.group(1) == "users":
            name = account.email.partition("@")[0]
            user: dict[str, Any] = {
                "id": _numeric_id(account.email),
                "email": account.email,
                "status": "active",
            }
            user.update(full_name=name, last_name=name, confirm=True)
            info = {"per_page": 200, "count": 1, "page": 1, "more_records": False}
            return 200, {"users": [user], "info": info}
        org: dict[str, Any] = {"id": _numeric_id("org:" + account.org_id), "zgid": account.org_id}
        org.update(company_name=f"Org {account.org_id}", primary_email=account.email)
        return 200, {"org": [org]}


class _Handler(BaseHTTPRequestHandler):
    stand_in: ZohoStandIn  # set on a subclass made by ZohoStandIn.start()

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: request lines may carry tokens."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self._answer(*self.stand_in._get(parts.path, self.headers.get("Authorization")))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        form = {k: v[0] for k, v in parse_qs(parts.query).items()}
        form.update({k: v[0] for k, v in parse_qs(body).items()})
        self._answer(*self.stand_in._post(parts.path, form))

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
