"""Which Zoho CRM Python SDK is installed, and the SDK classes the store builds on.

Two interface families share the store's table, model, rules and migrations:

- ``zohocrmsdk`` (``zohocrmsdk8_0``, ``7_0``, ``6_0``, ``5_0``): ``TokenStore`` with
  ``find_token(token)``, ``save_token(token)``, ``delete_token(id)``, ...
  (``zohocrmsdk/src/com/zoho/api/authenticator/store/token_store.py``, identical from 5_0 to
  8_0), served by :class:`zoho_sa_store.SQLAlchemyTokenStore`;
- ``zcrmsdk`` (``zohocrmsdk2_1``, ``2_0``): ``get_token(user, token)``,
  ``save_token(user, token)``, ... (``zcrmsdk/src/com/zoho/api/authenticator/store/
  token_store.py``), served by :class:`zoho_sa_store.legacy.LegacyTokenStore`.

The store declares no SDK dependency of its own (each generation is an extra:
``zoho-sa-store[sdk8]``, ...), so nothing here fails at import when an SDK is missing: a
missing class is a placeholder whose use raises :class:`MissingSDK`, which names the
install command. Nothing in this module does I/O.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

__all__ = [
    "DISTRIBUTIONS",
    "HAS_ZCRMSDK",
    "HAS_ZOHOCRMSDK",
    "INSTALL_HINT",
    "LEGACY_INSTALL_HINT",
    "SDK_EXCEPTIONS",
    "MissingSDK",
    "OAuthToken",
    "SDKException",
    "TokenStore",
    "UserSignature",
    "can_revoke_by_id",
    "current_user_choice",
    "finds_user",
    "installed",
    "require",
]

INSTALL_HINT = (
    'pip install "zoho-sa-store[sdk8]" (zohocrmsdk8_0; [sdk7], [sdk6] or [sdk5] keep the'
    " zohocrmsdk7_0, 6_0 or 5_0 an app already has; [sdk2] installs zohocrmsdk2_1 for"
    " zoho_sa_store.legacy)"
)
"""The install command a :class:`MissingSDK` error names."""

DISTRIBUTIONS = {
    "zohocrmsdk8_0": "zohocrmsdk",
    "zohocrmsdk7_0": "zohocrmsdk",
    "zohocrmsdk6_0": "zohocrmsdk",
    "zohocrmsdk5_0": "zohocrmsdk",
    "zohocrmsdk2_1": "zcrmsdk",
    "zohocrmsdk2_0": "zcrmsdk",
}
"""Each supported SDK distribution (newest first) and the import package it installs."""


class MissingSDK(ImportError):
    """The Zoho CRM SDK a call needs is not installed; the message names the command."""


HAS_ZOHOCRMSDK = importlib.util.find_spec("zohocrmsdk") is not None
"""Whether a ``zohocrmsdk`` generation (5_0 to 8_0) is installed."""
HAS_ZCRMSDK = importlib.util.find_spec("zcrmsdk") is not None
"""Whether a ``zcrmsdk`` generation (2_0, 2_1) is installed."""


LEGACY_INSTALL_HINT = (
    'pip install "zoho-sa-store[sdk2]" (zohocrmsdk2_1; [sdk2_0] keeps zohocrmsdk2_0)'
)
"""The install command a :class:`MissingSDK` error for ``zcrmsdk`` names."""


def require(package: str) -> NoReturn:
    """Raise :class:`MissingSDK` for the import package ``package`` (``"zohocrmsdk"`` or
    ``"zcrmsdk"``), naming its install command."""
    hint = LEGACY_INSTALL_HINT if package == "zcrmsdk" else INSTALL_HINT
    raise MissingSDK(f"the Zoho CRM SDK ({package}) is not installed: {hint}")


def _placeholder(name: str, package: str) -> type:
    """A class standing for an SDK class that is not installed: isinstance() is False for
    every object, and creating one raises :class:`MissingSDK`."""

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        require(package)

    return type(name, (), {"__init__": __init__, "__doc__": f"{package} is not installed"})


def _load(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


_AUTH = "zohocrmsdk.src.com.zoho.api.authenticator"
OAuthToken: Any
TokenStore: Any
UserSignature: Any
SDKException: Any
"""``zohocrmsdk``'s classes; without it, placeholders (``TokenStore``: ``object``; an
``SDKException`` that nothing raises)."""
if HAS_ZOHOCRMSDK:
    OAuthToken = _load(f"{_AUTH}.oauth_token", "OAuthToken")
    TokenStore = _load(f"{_AUTH}.store.token_store", "TokenStore")
    UserSignature = _load("zohocrmsdk.src.com.zoho.crm.api.user_signature", "UserSignature")
    SDKException = _load("zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception", "SDKException")
else:
    OAuthToken = _placeholder("OAuthToken", "zohocrmsdk")
    TokenStore = object
    UserSignature = _placeholder("UserSignature", "zohocrmsdk")
    SDKException = type("SDKException", (Exception,), {"__doc__": "zohocrmsdk is not installed"})


def _sdk_exceptions() -> tuple[type[Exception], ...]:
    found = [
        _load(f"{package}.src.com.zoho.crm.api.exception.sdk_exception", "SDKException")
        for package, present in (("zohocrmsdk", HAS_ZOHOCRMSDK), ("zcrmsdk", HAS_ZCRMSDK))
        if present
    ]
    return tuple(found) or (Exception,)


SDK_EXCEPTIONS = _sdk_exceptions()
"""The ``SDKException`` class of every installed SDK family (``(Exception,)`` with none):
the bases of :class:`zoho_sa_store.TokenStoreError`, so that each SDK handles it as its own."""


def installed() -> dict[str, str]:
    """The supported SDK distributions installed, newest generation first: name -> version."""
    found = {}
    for name in DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _major(text: str) -> int:
    head = text.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def can_revoke_by_id() -> bool:
    """Whether the installed SDK's ``OAuthToken.revoke(id)`` reaches the store.

    Only ``zohocrmsdk8_0`` 7.0.0 and newer build its lookup token as ``OAuthToken(id=id)``;
    earlier versions and generations build ``OAuthToken()``, which their own constructor
    refuses (``MANDATORY VALUE ERROR``) before the store is asked. ``zcrmsdk`` has no
    ``revoke``.
    """
    sdk8 = installed().get("zohocrmsdk8_0")
    return HAS_ZOHOCRMSDK and sdk8 is not None and _major(sdk8) >= 7


def finds_user() -> bool:
    """Whether the installed ``zohocrmsdk`` looks the user up after a grant exchange (6_0 and
    newer: ``OAuthToken(find_user=True)``, the default), so saved tokens carry a user name.

    zohocrmsdk5_0 never does: its tokens are saved without one unless the app gives
    ``OAuthToken(user_signature=UserSignature(email))``.
    """
    return HAS_ZOHOCRMSDK and "find_user" in inspect.signature(OAuthToken).parameters


def current_user_choice() -> bool:
    """Whether the installed SDK's ``GetUsersParam.type`` takes a ``Choice`` rather than a str
    (zohocrmsdk7_0 and 6_0)."""
    return bool({"zohocrmsdk7_0", "zohocrmsdk6_0"} & installed().keys())
