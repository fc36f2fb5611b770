"""Zoho Accounts' token endpoint: where a row's refresh goes, the request, the answer's checks.

The request and the answer's reading follow the SDK's ``refresh_access_token`` and
``parse_response`` (``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``); the
exchange itself runs under one deadline in :mod:`zoho_sa_store.deadline_http`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from zoho_sa_store.datacentres import DataCentre, data_centre, is_loopback, origin
from zoho_sa_store.deadline_http import ExchangeError, post_json
from zoho_sa_store.model import MAX_TOKEN_LENGTH
from zoho_sa_store.tokens import TokenFields

log = logging.getLogger("zoho_sa_store.refresh")


class RefreshError(Exception):
    """The token endpoint could not be reached or refused the refresh (no secret in it)."""


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
        try:
            answer = post_json(
                transport.accounts_url,
                body,
                timeout=timeout,
                max_bytes=MAX_ANSWER_BYTES,
                proxies=transport.proxies,
                what="token endpoint",
            )
        except ExchangeError as error:
            raise RefreshError(str(error)) from None
        refreshed = check_answer(answer, transport, update_api_domain)
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
