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

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.tokens import TokenFields

log = logging.getLogger(__name__)


class RefreshError(Exception):
    """The token endpoint could not be reached or refused the refresh (no secret in it)."""


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """How the store coordinates refreshes.

    Attributes:
        window: refresh when the access token expires within this many seconds; 0 turns
            coordinated refresh off.
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

    def is_stale(self, row: TokenFields, now_ms: int | None = None) -> bool:
        """True when the row can be refreshed and its access token is missing or expiring.

        A row needs a refresh token and client credentials; an expiry_time that is not
        digits never counts as stale (the SDK decides then).
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
        return int(row.expiry_time) - now < self.window * 1000


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


RefreshStep = Callable[[TokenFields], "Refreshed | None"]
"""Given the locked, re-read row: the endpoint's answer, or None when it is fresh now."""
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

    def fresh(self, row: TokenFields, locked_refresh: LockedRefresh) -> TokenFields:
        """The row, refreshed first through ``locked_refresh`` when stale; never raises."""
        if row.id is None or not self.policy.is_stale(row):
            return row
        if self._failed_until.get(row.id, 0.0) > time.monotonic():
            return row
        accounts_url, update_api_domain = sdk_accounts()
        if accounts_url is None:
            return row

        def step(current: TokenFields) -> Refreshed | None:
            if not self.policy.is_stale(current):
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


def sdk_accounts() -> tuple[str | None, bool]:
    """The SDK's current accounts URL (None before ``Initializer.initialize``), and whether
    the SDK takes api_domain from token answers (``SDKConfig.apply_api_domain_update()``)."""
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

    initializer = Initializer.get_initializer()
    url = getattr(getattr(initializer, "environment", None), "accounts_url", None)
    config = getattr(initializer, "sdk_config", None)
    update_api_domain = bool(config.apply_api_domain_update()) if config is not None else True
    return (url if isinstance(url, str) and url else None), update_api_domain


def request_refresh(
    accounts_url: str, row: TokenFields, *, timeout: float, update_api_domain: bool = True
) -> Refreshed:
    """POST ``grant_type=refresh_token`` to Zoho Accounts' token endpoint.

    Args:
        accounts_url: the token endpoint (the SDK environment's ``accounts_url``).
        row: the stored token (refresh_token, client_id, client_secret are used).
        timeout: seconds to connect and to wait for the answer.
        update_api_domain: keep the answer's api_domain (the SDK's
            ``SDKConfig.apply_api_domain_update()``).

    Returns:
        The new access token and its expiry.

    Raises:
        RefreshError: no answer in time, not JSON, or an answer without an access token.
    """
    body = {
        "refresh_token": row.refresh_token,
        "client_id": row.client_id,
        "client_secret": row.client_secret,
        "grant_type": "refresh_token",
    }
    try:
        response = requests.post(accounts_url, data=body, timeout=timeout, allow_redirects=False)
        answer: Any = response.json()
    except (requests.RequestException, ValueError) as error:
        raise RefreshError(f"token endpoint failed: {type(error).__name__}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        error_code = answer.get("error") if isinstance(answer, dict) else None
        raise RefreshError(f"token endpoint refused the refresh: {str(error_code)[:64]}")
    try:
        expires = int(answer["expires_in"])
    except (KeyError, TypeError, ValueError):
        raise RefreshError("token endpoint answer has no usable expires_in") from None
    # as the SDK's get_token_expires_in: with expires_in_sec present, expires_in is in ms
    expires_ms = expires if "expires_in_sec" in answer else expires * 1000
    api_domain = answer.get("api_domain") if update_api_domain else None
    return Refreshed(
        access_token=answer["access_token"],
        expiry_time=str(int(time.time() * 1000) + expires_ms),
        api_domain=api_domain if isinstance(api_domain, str) and api_domain else None,
    )
