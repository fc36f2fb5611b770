"""The SDK's ``OAuthToken`` <-> row values: validation, merge, complete tokens, masking.

Nothing here does I/O. The SDK's token class is
``zohocrmsdk/src/com/zoho/api/authenticator/oauth_token.py``; its fields map to the
SDK's column names (``expires_in`` is stored as ``expiry_time``, the user signature's name
as ``user_name``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from zoho_sa_store.model import MAX_TOKEN_LENGTH
from zoho_sa_store.sdk import HAS_ZOHOCRMSDK, OAuthToken, UserSignature, require

SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "access_token", "grant_token"})
"""Fields whose values never appear in a log line, message or repr."""

_MAX_LENGTH = {
    "id": 64,
    "user_name": 255,
    "client_id": 255,
    "client_secret": 255,
    "refresh_token": MAX_TOKEN_LENGTH,
    "access_token": MAX_TOKEN_LENGTH,
    "grant_token": MAX_TOKEN_LENGTH,
    "expiry_time": 20,
    "redirect_url": 1024,
    "api_domain": 255,
}


@dataclass(frozen=True, slots=True)
class TokenFields:
    """An ``OAuthToken``'s values by the SDK's column names; blank strings become None."""

    id: str | None = None
    user_name: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    grant_token: str | None = None
    expiry_time: str | None = None
    redirect_url: str | None = None
    api_domain: str | None = None

    def present(self) -> dict[str, str]:
        """The non-None values, keyed by column name."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


COLUMNS = tuple(f.name for f in fields(TokenFields))

EXPIRY_MS_MIN = 10**12
"""The smallest ``expires_in`` a save accepts: 2001-09-09 (epoch ms, 13 digits)."""
EXPIRY_MS_MAX = 10**13 - 1
"""The largest ``expires_in`` a save accepts: 2286-11-20 (epoch ms, 13 digits)."""


def is_blank(value: str | None) -> bool:
    """True for None, ``""`` and whitespace-only strings: "absent" in the SDK's rules."""
    return value is None or not value.strip()


_SDK_NAMES = {"expiry_time": "expires_in", "user_name": "user_signature name"}


def _clean(column: str, value: object) -> str | None:
    if value is None:
        return None
    if (
        type(value) is str
        and value.isascii()  # no lone surrogate, and len() counts what the column holds
        and len(value) <= _MAX_LENGTH[column]
        and "\x00" not in value
        and column != "expiry_time"
    ):  # the common case, checked without encoding the value
        return value if value and not value.isspace() else None
    name = _SDK_NAMES.get(column, column)
    if not isinstance(value, str):
        raise TypeError(f"OAuthToken {name} must be a str or None, not {type(value).__name__}")
    if "\x00" in value:
        raise ValueError(f"OAuthToken {name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"OAuthToken {name} is not valid Unicode (lone surrogate)") from None
    if len(value) > _MAX_LENGTH[column]:
        raise ValueError(f"OAuthToken {name} is longer than {_MAX_LENGTH[column]} characters")
    if column == "expiry_time" and not (value.isascii() and value.isdigit()):
        raise ValueError("OAuthToken expires_in must be epoch milliseconds as a str of digits")
    return None if is_blank(value) else value


def token_fields(token: object) -> TokenFields:
    """Read and validate an SDK token.

    Args:
        token: an ``OAuthToken``.

    Returns:
        Its values as :class:`TokenFields` (blank strings as None).

    Raises:
        MissingSDK: ``zohocrmsdk`` is not installed (an ``ImportError``).
        TypeError: ``token`` is not an ``OAuthToken``, a field is not a str/None, or the user
            signature is not a ``UserSignature`` with a str/None name.
        ValueError: a value holds a NUL character or a lone surrogate, is too long for its
            column, or ``expires_in`` is not a str of digits.
    """
    if not isinstance(token, OAuthToken):
        if not HAS_ZOHOCRMSDK:
            require("zohocrmsdk")
        raise TypeError(f"expected an OAuthToken, not {type(token).__name__}")
    signature = token.get_user_signature()
    user_name: object = None
    if signature is not None:
        if not isinstance(signature, UserSignature):
            raise TypeError(
                f"OAuthToken user_signature must be a UserSignature, not {type(signature).__name__}"
            )
        user_name = signature.get_name()
    raw = (  # in COLUMNS' order
        token.get_id(),
        user_name,
        token.get_client_id(),
        token.get_client_secret(),
        token.get_refresh_token(),
        token.get_access_token(),
        token.get_grant_token(),
        token.get_expires_in(),
        token.get_redirect_url(),
        token.get_api_domain(),
    )
    cleaned = [None if v is None else _clean(c, v) for c, v in zip(COLUMNS, raw, strict=True)]
    return TokenFields(*cleaned)


def clean_fields(raw: dict[str, object]) -> TokenFields:
    """Validate values keyed by column name (missing ones are None) as :func:`token_fields`
    does: for adapters of other SDK interfaces (:mod:`zoho_sa_store.legacy`).

    Raises:
        TypeError, ValueError: as :func:`token_fields`; ``KeyError`` for an unknown column.
    """
    return TokenFields(
        **{name: None if value is None else _clean(name, value) for name, value in raw.items()}
    )


def check_expiry(value: str | None) -> None:
    """Refuse an ``expires_in`` that is not epoch milliseconds of years 2001..2286.

    The SDK writes ``str(int(time.time() * 1000) + lifetime_ms)``: 13 digits. A value in
    seconds (10 digits), microseconds (16) or a small number would be stored and then
    misread as an expiry centuries away or long past: never refreshed, or refreshed on every
    call. None (no expiry) passes.

    Raises:
        ValueError: ``value`` is not a str of digits from 10**12 to 10**13 - 1.
    """
    if value is None:
        return
    if not (value.isascii() and value.isdigit() and EXPIRY_MS_MIN <= int(value) <= EXPIRY_MS_MAX):
        raise ValueError(
            "OAuthToken expires_in must be epoch milliseconds (13 digits, "
            f"{EXPIRY_MS_MIN}..{EXPIRY_MS_MAX}: years 2001..2286), as the SDK writes it"
        )


def clean_id(value: object) -> str | None:
    """Validate a token id argument; a blank id is None.

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: as for any field (NUL, lone surrogate, longer than 64 characters).
    """
    if not isinstance(value, str):
        raise TypeError(f"a token id must be a str, not {type(value).__name__}")
    return _clean("id", value)


_SETTERS = {
    "id": "set_id",
    "client_id": "set_client_id",
    "client_secret": "set_client_secret",
    "refresh_token": "set_refresh_token",
    "access_token": "set_access_token",
    "grant_token": "set_grant_token",
    "expiry_time": "set_expires_in",
    "redirect_url": "set_redirect_url",
    "api_domain": "set_api_domain",
}
_GETTERS = {
    "id": "get_id",
    "client_id": "get_client_id",
    "client_secret": "get_client_secret",
    "refresh_token": "get_refresh_token",
    "access_token": "get_access_token",
    "grant_token": "get_grant_token",
    "expiry_time": "get_expires_in",
    "redirect_url": "get_redirect_url",
    "api_domain": "get_api_domain",
}


_ACCESSORS = tuple(
    (name, getattr(OAuthToken, _GETTERS[name]), getattr(OAuthToken, setter))
    for name, setter in _SETTERS.items()
    if HAS_ZOHOCRMSDK  # without it no OAuthToken exists to merge into
)
"""(column, the SDK's getter, its setter) as plain functions: no bound method per call."""


def stored(row: Any) -> TokenFields:
    """Row values (a mapping or a Row with the SDK's column names) as :class:`TokenFields`.

    ``client_id`` stored as ``""`` comes back as None.
    """
    return TokenFields(**{name: (row[name] or None) for name in COLUMNS})


def merge_into(token: OAuthToken, row: TokenFields) -> OAuthToken:
    """Fill the token's None fields from a stored row; the token's own values win.

    Returns the same token object, as ``find_token`` must (the SDK uses the given object).
    """
    for name, get, put in _ACCESSORS:
        value = getattr(row, name)
        if value is not None and get(token) is None:
            put(token, value)
    if token.get_user_signature() is None and row.user_name is not None:
        token.set_user_signature(UserSignature(row.user_name))
    return token


def new_token(row: TokenFields) -> OAuthToken:
    """A complete ``OAuthToken`` built through its constructor from a stored row.

    Built the normal way (not ``object.__new__``), so every private attribute the SDK reads,
    such as its find-user flag, is set and the token can go straight to
    ``Initializer.initialize``.
    """
    token = OAuthToken(
        client_id=row.client_id,
        client_secret=row.client_secret,
        grant_token=row.grant_token,
        refresh_token=row.refresh_token,
        redirect_url=row.redirect_url,
        id=row.id,
        access_token=row.access_token,
        user_signature=UserSignature(row.user_name) if row.user_name is not None else None,
        api_domain=row.api_domain,
    )
    token.set_expires_in(row.expiry_time)
    return token


def mask(secret: str | None) -> str | None:
    """Show the shape of a secret and hide its value: ``1000.ab…f3``.

    Returns None for None; strings of 12 characters or fewer become ``…``.
    """
    if secret is None:
        return None
    if len(secret) <= 12:
        return "…"
    head = secret[:7] if secret.startswith("1000.") else secret[:2]
    return f"{head}…{secret[-2:]}"
