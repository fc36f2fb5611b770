"""``LegacyTokenStore``: the v2/v2.1 SDK's (``zcrmsdk``) token store on the same table.

``zohocrmsdk2_1`` and ``zohocrmsdk2_0`` install ``zcrmsdk``, whose store interface
(``zcrmsdk/src/com/zoho/api/authenticator/store/token_store.py``) differs from the later
generations': ``get_token(user, token)``, ``get_token_by_id(id, token)``,
``save_token(user, token)``, ``delete_token(token)``, ``get_tokens()``, ``delete_tokens()``;
the user is a ``UserSignature(email)``, and tokens have no ``api_domain``. This adapter
translates at that boundary and leaves the rest to a :class:`SQLAlchemyTokenStore` it holds
(same table, model, rules and migrations), so tokens saved through ``zcrmsdk`` are found by
``zohocrmsdk`` 5_0 to 8_0 and the other way round: an app moves from v2 to v8 without
moving its tokens.

The user's email is stored as ``user_name``. A row saved by zohocrmsdk 6_0 or newer is
named ``email:org-id``; ``get_token`` finds it by its grant or refresh token (as
``zcrmsdk``'s own stores match: email, client id, and grant or refresh token), and a save
keeps that name. The store's coordinated refresh is off: ``zcrmsdk`` refreshes a token that
expires within 5 s on its own, as with its own stores.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Engine

from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.sdk import HAS_ZCRMSDK, require
from zoho_sa_store.settings import WRITE_TIMEOUT_S
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.tokens import TokenFields, clean_fields, clean_id

if not HAS_ZCRMSDK:
    require("zcrmsdk")

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zcrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

__all__ = ["LegacyTokenStore"]

_SETTERS = (
    ("id", "set_id"),
    ("client_id", "set_client_id"),
    ("client_secret", "set_client_secret"),
    ("refresh_token", "set_refresh_token"),
    ("access_token", "set_access_token"),
    ("grant_token", "set_grant_token"),
    ("expiry_time", "set_expires_in"),
    ("redirect_url", "set_redirect_url"),
)


def email_of(user_name: str | None) -> str | None:
    """The email in a stored user name: ``ann@example.com`` for ``ann@example.com:700000001``
    (zohocrmsdk 6_0 and newer) and for ``ann@example.com`` (zcrmsdk, zohocrmsdk5_0)."""
    if user_name is None:
        return None
    email, colon, org = user_name.rpartition(":")
    return email if colon and org.isdigit() else user_name


def _fields(token: object, email: str | None = None) -> TokenFields:
    if not isinstance(token, OAuthToken):
        raise TypeError(f"expected a zcrmsdk OAuthToken, not {type(token).__name__}")
    return clean_fields(
        {
            "id": token.get_id(),
            "user_name": email,
            "client_id": token.get_client_id(),
            "client_secret": token.get_client_secret(),
            "refresh_token": token.get_refresh_token(),
            "access_token": token.get_access_token(),
            "grant_token": token.get_grant_token(),
            "expiry_time": token.get_expires_in(),
            "redirect_url": token.get_redirect_url(),
        }
    )


def _email(user: object) -> str:
    if not isinstance(user, UserSignature):
        raise TypeError(f"expected a zcrmsdk UserSignature, not {type(user).__name__}")
    email = user.get_email()
    if not isinstance(email, str) or not email.strip():
        raise ValueError("the UserSignature has no email")
    return email


def _fill(token: Any, row: TokenFields) -> Any:
    """Fill the token's None fields from the row (its own values win); return it."""
    for name, setter in _SETTERS:
        value = getattr(row, name)
        getter = "get_expires_in" if name == "expiry_time" else setter.replace("set_", "get_", 1)
        if value is not None and getattr(token, getter)() is None:
            getattr(token, setter)(value)
    if token.get_user_mail() is None and row.user_name is not None:
        token.set_user_mail(email_of(row.user_name))
    return token


class LegacyTokenStore(TokenStore):  # type: ignore[misc]
    """``zcrmsdk``'s ``TokenStore`` (zohocrmsdk2_1, 2_0) in any database SQLAlchemy reaches.

    Args:
        url, engine, table_name, write_timeout, engine_options: as for
            :class:`SQLAlchemyTokenStore` (whose table, rules and migrations this shares).

    Raises:
        TypeError, ValueError: as :class:`SQLAlchemyTokenStore`.

    Importing this module without ``zcrmsdk`` raises :class:`zoho_sa_store.sdk.MissingSDK`
    (install ``zoho-sa-store[sdk2]``). Every method raises ``TypeError``/``ValueError`` for a
    wrong argument before any SQL runs, and :class:`zoho_sa_store.TokenStoreError` (a
    ``zcrmsdk`` ``SDKException``) when the database fails.
    """

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        table_name: str = DEFAULT_TABLE_NAME,
        write_timeout: float | None = WRITE_TIMEOUT_S,
        **engine_options: Any,
    ) -> None:
        self.store = SQLAlchemyTokenStore(
            url,
            engine=engine,
            table_name=table_name,
            refresh=False,
            write_timeout=write_timeout,
            **engine_options,
        )
        """The :class:`SQLAlchemyTokenStore` doing the work (its engine: ``store.engine``)."""

    def __repr__(self) -> str:
        return f"LegacyTokenStore({self.store!r})"

    def close(self) -> None:
        """Dispose of the engine's pooled connections (only when the store created it)."""
        self.store.close()

    def get_token(self, user: Any, token: Any) -> Any:
        """The stored token of ``user`` for ``token``'s client, filled into ``token``.

        Looks up the row of (the user's email, the client id); else the row with the token's
        grant or refresh token (with its client id and secret) whose user is this email,
        e.g. ``email:org-id`` as zohocrmsdk 6_0 and newer name it.

        Returns:
            ``token`` with its None fields filled from the row (``user_mail`` included), or
            None when nothing matches (``token`` untouched).
        """
        email = _email(user)
        fields = _fields(token, email)
        row = self.store.find_fields(_without(fields, "id"), "get_token")
        if row is None and (fields.grant_token or fields.refresh_token):
            by_secret = self.store.find_fields(_without(fields, "id", "user_name"), "get_token")
            if by_secret is not None and email_of(by_secret.user_name) in (email, None):
                row = by_secret
        return None if row is None else _fill(token, row)

    def get_token_by_id(self, id: Any, token: Any) -> Any:
        """Row ``id`` filled into ``token``; None when there is none."""
        _fields(token)
        token_id = clean_id(id)
        if token_id is None:
            return None
        row = self.store.find_fields(TokenFields(id=token_id), "get_token_by_id")
        return None if row is None else _fill(token, row)

    def save_token(self, user: Any, token: Any) -> None:
        """Upsert ``token`` as ``user``'s (the rules of :meth:`SQLAlchemyTokenStore.save_token`);
        sets its id when a row was inserted or found, and its ``user_mail``.

        A row saved by zohocrmsdk 6_0 or newer keeps its ``email:org-id`` name.
        """
        email = _email(user)
        fields = _fields(token, email)
        if fields.id is not None:
            current = self.store.find_fields(TokenFields(id=fields.id), "save_token")
            if current is not None and email_of(current.user_name) == email:
                fields = TokenFields(**{**fields.present(), "user_name": current.user_name})
        row_id = self.store.save_fields(fields)
        token.set_user_mail(email)
        if token.get_id() != row_id:
            token.set_id(row_id)

    def delete_token(self, token: Any) -> None:
        """Delete the row ``token`` means: its id (when every value it has matches that row),
        else the row :meth:`get_token` finds for its ``user_mail``; nothing found is no error."""
        fields = _fields(token)
        row: TokenFields | None = None
        if fields.id is not None:
            row = self.store.find_fields(fields, "delete_token")
        elif token.get_user_mail():
            row = self._find_for(token.get_user_mail(), fields)
        if row is not None and row.id is not None:
            self.store.delete_token(row.id)

    def _find_for(self, email: str, fields: TokenFields) -> TokenFields | None:
        with_user = TokenFields(**{**fields.present(), "user_name": email})
        return self.store.find_fields(with_user, "delete_token")

    def get_tokens(self) -> list[Any]:
        """Every stored token as a ``zcrmsdk`` ``OAuthToken`` (``user_mail`` the email)."""
        tokens = []
        for row in self.store.all_fields():
            token = OAuthToken(
                client_id=row.client_id,
                client_secret=row.client_secret,
                grant_token=row.grant_token,
                refresh_token=row.refresh_token,
                redirect_url=row.redirect_url,
                id=row.id,
                access_token=row.access_token,
            )
            token.set_expires_in(row.expiry_time)
            token.set_user_mail(email_of(row.user_name))
            tokens.append(token)
        return tokens

    def delete_tokens(self) -> None:
        """Delete every row, in one statement."""
        self.store.delete_tokens()


def _without(fields: TokenFields, *names: str) -> TokenFields:
    values: dict[str, Any] = fields.present()
    for name in names:
        values.pop(name, None)
    return TokenFields(**values)
