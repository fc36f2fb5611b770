"""One refresh for everybody: when the store refreshes a row, and the back-off.

The SDK refreshes an access token only when it expires in under 5 s
(``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``, ``get_token``), in every
process on its own. The store refreshes earlier, inside a row lock, so one process calls
Zoho and the others read its result (see :meth:`SQLAlchemyTokenStore.find_token`). This
module decides when (:class:`RefreshPolicy`) and runs the steps (:class:`Refresher`); the
request to Zoho Accounts and the answer's checks are in :mod:`zoho_sa_store.token_endpoint`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.token_endpoint import Refreshed, RefreshError, request_refresh, sdk_accounts
from zoho_sa_store.tokens import TokenFields

__all__ = ["RefreshError", "RefreshPolicy", "RefreshStep", "Refreshed", "Refresher"]

log = logging.getLogger(__name__)


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
        if self._backing_off(row.id):
            return row
        accounts_url, update_api_domain = sdk_accounts(row)
        if accounts_url is None:
            return row

        def step(current: TokenFields, current_saved_at: int | None) -> Refreshed | None:
            if not self.policy.is_stale(current, saved_at=current_saved_at):
                return None
            if self._backing_off(row_id):  # a thread before us on the lock just failed
                return None
            try:
                answer = request_refresh(
                    accounts_url,
                    current,
                    timeout=self.policy.http_timeout,
                    update_api_domain=update_api_domain,
                )
            except RefreshError:
                self._back_off(row_id)  # now, while the lock still keeps the others waiting
                raise
            self._failed_until.pop(row_id, None)
            return answer

        row_id = row.id
        try:
            refreshed = locked_refresh(row_id, step)
        except (TokenStoreError, RefreshError) as error:
            log.warning("refresh of token id %s failed, left to the SDK: %s", row_id, error)
            self._back_off(row_id)
            return row
        return refreshed or row

    def _backing_off(self, row_id: str) -> bool:
        """True while row ``row_id``'s last refresh by this store failed within the back-off."""
        return self._failed_until.get(row_id, 0.0) > time.monotonic()

    def _back_off(self, row_id: str) -> None:
        self._failed_until[row_id] = time.monotonic() + self.policy.backoff
