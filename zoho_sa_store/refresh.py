"""One refresh for everybody: the token-endpoint request behind the store's coordinated refresh.

The SDK refreshes an access token only when it expires in under 5 s
(``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``, ``get_token``), in every
process on its own. The store refreshes earlier, inside a row lock, so one process calls
Zoho and the others read its result (see :meth:`SQLAlchemyTokenStore.find_token`). This
module holds the parts without a database: when a row is stale, the request, the answer.
The request and the answer's reading follow the SDK's ``refresh_access_token`` and
``parse_response``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from zoho_sa_store.datacentres import DataCentre, data_centre, is_loopback, origin
from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.model import MAX_TOKEN_LENGTH
from zoho_sa_store.tokens import TokenFields

log = logging.getLogger(__name__)


class RefreshError(Exception):
    """The token endpoint could not be reached or refused the refresh (no secret in it)."""


MAX_WINDOW = 1800.0
"""The largest refresh window (seconds): half of the one hour Zoho's access tokens live."""


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """How the store coordinates refreshes.

    Attributes:
        window: refresh when the access token expires within this many seconds, at most
            :data:`MAX_WINDOW` (30 minutes); 0 turns coordinated refresh off. At run time
            the window is capped at half the token's lifetime (its expiry minus the time
            it was saved), so a token is refreshed at most once per half lifetime however
            short-lived Zoho's tokens are.
        http_timeout: seconds for the token endpoint's answer.
        lock_timeout: seconds a worker waits for another worker's refresh (the row lock).
        backoff: seconds during which a row whose refresh failed is not tried again by
            this store, so a Zoho outage does not cost every API call a timeout.
    """

    window: float = 60.0
    http_timeout: float = 10.0
    lock_timeout: float = 15.0
    backoff: float = 30.0

    def __post_init__(self) -> None:
        for name in ("window", "http_timeout", "lock_timeout", "backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"refresh {name} must be a number of seconds >= 0, not {value!r}")
        if self.window > MAX_WINDOW:
            raise ValueError(
                f"refresh window must be at most {MAX_WINDOW:g} seconds (half of Zoho's one-hour"
                f" access tokens), not {self.window!r}"
            )

    def is_stale(
        self, row: TokenFields, now_ms: int | None = None, saved_at: int | None = None
    ) -> bool:
        """True when the row can be refreshed and its access token is missing or expiring.

        A row needs a refresh token and client credentials; an expiry_time that is not
        digits never counts as stale (the SDK decides then). ``saved_at`` (epoch µs of the
        row's last save; None or 0: unknown) caps the window at half the lifetime the token
        had when saved, ``expiry - saved_at``: a token saved with more than half of it left
        is not refreshed before half of it has gone.
        """
        if not self.window or row.refresh_token is None:
            return False
        if row.client_id is None or row.client_secret is None:
            return False
        if row.access_token is None:
            return True
        if row.expiry_time is None or not row.expiry_time.isdigit():
            return False
        now = int(time.time() * 1000) if now_ms is None else now_ms
        expiry = int(row.expiry_time)
        window_ms = self.window * 1000
        if saved_at:
            lifetime_ms = expiry - saved_at // 1000
            if lifetime_ms > 0:
                window_ms = min(window_ms, lifetime_ms / 2)
        return expiry - now < window_ms


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A token endpoint's answer: ``expiry_time`` is absolute epoch ms as a str."""

    access_token: str
    expiry_time: str
    api_domain: str | None

    def values(self) -> dict[str, str]:
        """The columns to update: access_token, expiry_time and api_domain when given."""
        values = {"access_token": self.access_token, "expiry_time": self.expiry_time}
        if self.api_domain is not None:
            values["api_domain"] = self.api_domain
        return values


RefreshStep = Callable[[TokenFields, "int | None"], "Refreshed | None"]
"""Given the locked, re-read row and its saved_at (epoch µs): the endpoint's answer, or
None when it is fresh now."""
LockedRefresh = Callable[[str, RefreshStep], "TokenFields | None"]
"""The store's part: lock row ``id``, run the step on it, save the answer, return the row."""


class Refresher:
    """Decides when a row is refreshed, and remembers failed rows for the back-off.

    Args:
        policy: True (default :class:`RefreshPolicy`), False (off) or a policy.

    Raises:
        TypeError: ``policy`` is neither a bool nor a RefreshPolicy.
    """

    def __init__(self, policy: RefreshPolicy | bool) -> None:
        if isinstance(policy, bool):
            policy = RefreshPolicy() if policy else RefreshPolicy(window=0)
        if not isinstance(policy, RefreshPolicy):
            raise TypeError(f"refresh must be a bool or RefreshPolicy, not {type(policy).__name__}")
        self.policy = policy
        self._failed_until: dict[str, float] = {}

    def fresh(
        self, row: TokenFields, locked_refresh: LockedRefresh, saved_at: int | None = None
    ) -> TokenFields:
        """The row, refreshed first through ``locked_refresh`` when stale; never raises.

        ``saved_at``: the row's, epoch µs (see :meth:`RefreshPolicy.is_stale`).
        """
        if row.id is None or not self.policy.is_stale(row, saved_at=saved_at):
            return row
        if self._failed_until.get(row.id, 0.0) > time.monotonic():
            return row
        accounts_url, update_api_domain = sdk_accounts(row)
        if accounts_url is None:
            return row

        def step(current: TokenFields, current_saved_at: int | None) -> Refreshed | None:
            if not self.policy.is_stale(current, saved_at=current_saved_at):
                return None
            return request_refresh(
                accounts_url,
                current,
                timeout=self.policy.http_timeout,
                update_api_domain=update_api_domain,
            )

        try:
            refreshed = locked_refresh(row.id, step)
        except (TokenStoreError, RefreshError) as error:
            log.warning("refresh of token id %s failed, left to the SDK: %s", row.id, error)
            self._failed_until[row.id] = time.monotonic() + self.policy.backoff
            return row
        self._failed_until.pop(row.id, None)
        return refreshed or row


@dataclass(frozen=True, slots=True)
class Transport:
    """Where and how one row's refresh is sent.

    Attributes:
        accounts_url: the token endpoint of the row's data centre.
        api_origin: the :func:`~zoho_sa_store.datacentres.origin` of the row's api_domain.
        data_centre: the row's known data centre; None in the offline case (the row's
            api_domain is the current SDK environment's URL, which is no known data centre).
        proxies: ``requests`` proxies from the SDK's ``RequestProxy``; None: none given.
    """

    accounts_url: str
    api_origin: str
    data_centre: DataCentre | None = None
    proxies: dict[str, str] | None = None

    @property
    def host(self) -> str:
        """The accounts server's host (for log lines)."""
        return urlsplit(self.accounts_url).hostname or "?"


MAX_ANSWER_BYTES = 64 * 1024
"""A token endpoint answer longer than this fails the refresh (Zoho's are under 1 KiB)."""
MIN_EXPIRES_IN_S = 1
MAX_EXPIRES_IN_S = 86_400
_CHUNK = 4096


def sdk_accounts(row: TokenFields) -> tuple[Transport | None, bool]:
    """Where the row's refresh goes (None: the store leaves it to the SDK), and whether the
    SDK takes api_domain from token answers (``SDKConfig.apply_api_domain_update()``, absent
    on older SDKs: then True, their behaviour).

    The accounts URL is the one of the row's data centre, found from its api_domain (or,
    when it has none, the current environment's URL, as the SDK's ``get_token`` does). An
    api_domain of no known data centre is refreshed only when it is the current environment's
    URL (an offline stand-in), at that environment's accounts URL. An ``http://`` accounts
    URL is refused unless its host is loopback.
    """
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

    initializer = Initializer.get_initializer()
    update_api_domain = _apply_api_domain_update(getattr(initializer, "sdk_config", None))
    environment = getattr(initializer, "environment", None)
    current_url = getattr(environment, "url", None)
    current_accounts = getattr(environment, "accounts_url", None)
    domain = row.api_domain or current_url
    api_origin = origin(domain)
    if api_origin is None:
        log.debug("token id %s not refreshed by the store: no usable api_domain", row.id)
        return None, update_api_domain
    known = data_centre(api_origin)
    if known is not None:
        accounts_url = known.accounts_url
    elif api_origin == origin(current_url) and isinstance(current_accounts, str):
        accounts_url = current_accounts
    else:
        log.debug(
            "token id %s not refreshed by the store: api_domain %s is no known data centre "
            "and not the SDK environment's URL",
            row.id,
            api_origin,
        )
        return None, update_api_domain
    scheme = urlsplit(accounts_url).scheme.lower()
    if scheme != "https" and not (scheme == "http" and is_loopback(accounts_url)):
        log.debug(
            "token id %s not refreshed by the store: accounts URL of %s is not https",
            row.id,
            urlsplit(accounts_url).hostname,
        )
        return None, update_api_domain
    proxies = sdk_proxies(getattr(initializer, "request_proxy", None))
    return Transport(accounts_url, api_origin, known, proxies), update_api_domain


def _apply_api_domain_update(config: object) -> bool:
    method = getattr(config, "apply_api_domain_update", None)
    if not callable(method):
        return True  # SDKs before the setting always took api_domain from the answer
    try:
        return bool(method())
    except Exception:
        return True


def sdk_proxies(request_proxy: Any) -> dict[str, str] | None:
    """``requests`` proxies for the SDK's ``RequestProxy`` (host, port, user, password), for
    http and https URLs alike; a host without a scheme is an http proxy. None when there is no
    proxy. The fields are read where ``RequestProxy.__init__`` keeps them (zohocrmsdk8_0's
    getters have no body and return None), else through the getters."""
    if request_proxy is None:
        return None

    def field(name: str) -> Any:
        value = getattr(request_proxy, f"_RequestProxy__{name}", None)
        if value is None:
            getter = getattr(request_proxy, f"get_{name}", None)
            value = getter() if callable(getter) else None
        return value

    host, port, user, password = (field(n) for n in ("host", "port", "user", "password"))
    if not host or port is None:
        return None
    scheme, found, rest = str(host).partition("://")
    scheme, host = (scheme, rest) if found else ("http", host)
    auth = f"{quote(str(user), safe='')}:{quote(str(password or ''), safe='')}@" if user else ""
    url = f"{scheme}://{auth}{host}:{port}"
    return {"http": url, "https": url}


class _Deadline:
    """Shuts down the exchange's sockets when its time is up, whatever they are waiting on."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[tuple[socket.socket, int]] = []

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append((sock, sock.fileno()))
            if self.expired:
                self._shut_down()

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut_down()

    def forget(self) -> None:
        """The exchange is over (its sockets not closed yet): never touch them again."""
        with self._lock:
            self._sockets.clear()

    def _shut_down(self) -> None:
        owned = {fd for sock, fd in self._sockets if sock.fileno() == fd}
        for sock, fd in self._sockets:
            if sock.fileno() == fd:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            elif sock.fileno() == -1 and fd not in owned:
                # detached by the TLS wrap, whose socket is not watched yet: the handshake
                _shut_down_fd(fd)


def _shut_down_fd(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("zoho_sa_store_refresh_deadline", default=None)


def _watch(sock: socket.socket | None) -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)  # the TLS socket, owner of the descriptor from now on


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections (direct or through an http proxy) join the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _post(transport: Transport, body: dict[str, str | None], timeout: float) -> Any:
    """POST the form and read the JSON answer, all within ``timeout`` seconds."""
    deadline = _Deadline(timeout)
    session = requests.Session()
    adapter = _DeadlineAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    response: requests.Response | None = None
    context = _DEADLINE.set(deadline)
    timer = threading.Timer(timeout, deadline.expire)
    timer.daemon = True
    timer.start()
    try:
        response = session.post(
            transport.accounts_url,
            data=body,
            timeout=deadline.remaining(),
            allow_redirects=False,
            stream=True,
            proxies=transport.proxies,
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise RefreshError(f"token endpoint answer over {MAX_ANSWER_BYTES} bytes")
        data = bytearray()
        for chunk in response.iter_content(_CHUNK):
            data += chunk
            if len(data) > MAX_ANSWER_BYTES:
                raise RefreshError(f"token endpoint answer over {MAX_ANSWER_BYTES} bytes")
            if deadline.expired or time.monotonic() > deadline.end:
                break
        if deadline.expired or time.monotonic() > deadline.end:
            raise RefreshError(f"token endpoint did not answer within {timeout:g} s")
        return json.loads(bytes(data))
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        if deadline.expired:
            raise RefreshError(f"token endpoint did not answer within {timeout:g} s") from None
        raise RefreshError(f"token endpoint failed: {type(error).__name__}") from None
    finally:
        timer.cancel()
        deadline.forget()  # before the sockets close: no descriptor of theirs is touched after
        _DEADLINE.reset(context)
        if response is not None:
            response.close()
        session.close()


def request_refresh(
    transport: Transport, row: TokenFields, *, timeout: float, update_api_domain: bool = True
) -> Refreshed:
    """POST ``grant_type=refresh_token`` to the row's data centre's token endpoint.

    Args:
        transport: where and how (from :func:`sdk_accounts`).
        row: the stored token (refresh_token, client_id, client_secret are used).
        timeout: seconds for the whole exchange: connect, send, and the answer's last byte.
        update_api_domain: keep the answer's api_domain (the SDK's
            ``SDKConfig.apply_api_domain_update()``).

    Returns:
        The new access token and its expiry.

    Raises:
        RefreshError: no answer in time, an answer over :data:`MAX_ANSWER_BYTES`, not JSON,
            a refusal, or an answer that fails :func:`check_answer`.

    Every call logs one INFO line on ``zoho_sa_store.refresh``: token id, user name, the
    accounts host, the duration and the outcome (never a secret).
    """
    body = {
        "refresh_token": row.refresh_token,
        "client_id": row.client_id,
        "client_secret": row.client_secret,
        "grant_type": "refresh_token",
    }
    started = time.monotonic()
    outcome = "failed"
    try:
        refreshed = check_answer(_post(transport, body, timeout), transport, update_api_domain)
        outcome = "ok"
        return refreshed
    except RefreshError as error:
        outcome = f"failed: {error}"
        raise
    finally:
        log.info(
            "refresh of token id %s (user %s) at %s: %s in %d ms",
            row.id,
            row.user_name,
            transport.host,
            outcome,
            (time.monotonic() - started) * 1000,
        )


_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))


def check_answer(answer: Any, transport: Transport, update_api_domain: bool = True) -> Refreshed:
    """Read a token endpoint answer, validated as a save would be.

    access_token: 1 to ``MAX_TOKEN_LENGTH`` printable ASCII characters, no whitespace;
    expires_in: an integer of 1 s to 1 day (ms when ``expires_in_sec`` is present, as the
    SDK's ``get_token_expires_in`` reads it); api_domain, when present: a URL of the row's
    data centre (https, or http on loopback), or in the offline case the row's own.

    Raises:
        RefreshError: a refusal or an invalid answer (the message names the field only).
    """
    if not isinstance(answer, dict) or "access_token" not in answer:
        error_code = answer.get("error") if isinstance(answer, dict) else None
        raise RefreshError(f"token endpoint refused the refresh: {_printable(error_code)}")
    access_token = answer["access_token"]
    if (
        not isinstance(access_token, str)
        or not 0 < len(access_token) <= MAX_TOKEN_LENGTH
        or not _PRINTABLE.issuperset(access_token)
    ):
        raise RefreshError(
            "token endpoint answer has an invalid access_token (not 1 to "
            f"{MAX_TOKEN_LENGTH} printable ASCII characters)"
        )
    expires = answer.get("expires_in")
    if isinstance(expires, str) and expires.isascii() and expires.isdigit() and len(expires) < 16:
        expires = int(expires)
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise RefreshError("token endpoint answer has no integer expires_in")
    # as the SDK's get_token_expires_in: with expires_in_sec present, expires_in is in ms
    expires_ms = expires if "expires_in_sec" in answer else expires * 1000
    if not MIN_EXPIRES_IN_S * 1000 <= expires_ms <= MAX_EXPIRES_IN_S * 1000:
        raise RefreshError(
            f"token endpoint answer's expires_in is outside {MIN_EXPIRES_IN_S} s .. 1 day"
        )
    api_domain = answer.get("api_domain")
    if api_domain is not None and not _same_data_centre(api_domain, transport):
        raise RefreshError("token endpoint answer's api_domain is not of the token's data centre")
    return Refreshed(
        access_token=access_token,
        expiry_time=str(int(time.time() * 1000) + expires_ms),
        api_domain=api_domain if update_api_domain and api_domain else None,
    )


def _same_data_centre(api_domain: object, transport: Transport) -> bool:
    if not isinstance(api_domain, str) or len(api_domain) > 255:
        return False
    answered = origin(api_domain)
    if answered is None or (not answered.startswith("https://") and not is_loopback(answered)):
        return False
    if transport.data_centre is None:
        return answered == transport.api_origin
    known = data_centre(answered)
    return known is not None and known.accounts_url == transport.data_centre.accounts_url


def _printable(value: object) -> str:
    return "".join(c for c in str(value)[:64] if c in _PRINTABLE or c == " ")
