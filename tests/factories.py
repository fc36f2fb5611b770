"""Small builders of SDK tokens for tests."""

from __future__ import annotations

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

CLIENT_A = ("1000.A", "secret-A")
CLIENT_B = ("1000.B", "secret-B")


def token(
    user: str | None = None,
    *,
    client: tuple[str, str] | None = CLIENT_A,
    access: str | None = None,
    refresh: str | None = None,
    grant: str | None = None,
    expires: str | None = None,
    id: str | None = None,
    api_domain: str | None = None,
) -> OAuthToken:
    """An OAuthToken as the SDK holds one; fields set through its own setters."""
    result = OAuthToken(
        client_id=client[0] if client else None,
        client_secret=client[1] if client else None,
        grant_token=grant,
        refresh_token=refresh,
        id=id,
        access_token=access,
        user_signature=UserSignature(user) if user is not None else None,
        api_domain=api_domain,
    )
    result.set_expires_in(expires)
    return result


def values(t: OAuthToken | None) -> dict[str, str | None] | None:
    """A token's values by the SDK's column names, for comparing in assertions."""
    if t is None:
        return None
    signature = t.get_user_signature()
    return {
        "id": t.get_id(),
        "user_name": signature.get_name() if signature is not None else None,
        "client_id": t.get_client_id(),
        "client_secret": t.get_client_secret(),
        "refresh_token": t.get_refresh_token(),
        "access_token": t.get_access_token(),
        "grant_token": t.get_grant_token(),
        "expiry_time": t.get_expires_in(),
        "api_domain": t.get_api_domain(),
    }
