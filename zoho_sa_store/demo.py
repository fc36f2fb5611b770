"""``zoho-sa-store demo``: the real SDK through a whole token lifecycle, offline.

The SDK (``Initializer.initialize``, ``OAuthToken``, a CRM ``get_users`` call) talks to
:class:`zoho_sa_store.testing.ZohoStandIn` on 127.0.0.1 and keeps its tokens in a
:class:`SQLAlchemyTokenStore` on the given database, else in a throwaway SQLite file
deleted at the end: never in ``$ZOHO_SA_STORE_URL``'s database, which may hold an app's
tokens. Secrets are printed masked, every line within 100 columns.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import URL

from zoho_sa_store.admin import describe_expiry
from zoho_sa_store.hygiene import printable, safe_url
from zoho_sa_store.migrate import upgrade
from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.sdk import (
    HAS_ZOHOCRMSDK,
    can_revoke_by_id,
    current_user_choice,
    finds_user,
    installed,
    require,
)
from zoho_sa_store.settings import URL_ENV_VAR, resolve_url
from zoho_sa_store.store import SQLAlchemyTokenStore
from zoho_sa_store.testing import ZohoStandIn
from zoho_sa_store.tokens import mask

DEMO_USER = "demo.user@example.com"
DEMO_CLIENT = {"client_id": "1000.DEMOCLIENTID", "client_secret": "demo-client-secret"}


def current_user() -> str:
    """The current user's email, from one CRM ``get_users`` call through the installed
    ``zohocrmsdk`` (its ``type`` parameter a ``Choice`` on 6_0 and 7_0, a str elsewhere).

    Raises:
        SDKException: the SDK's call failed.
    """
    from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations

    params = ParameterMap()
    if current_user_choice():
        from zohocrmsdk.src.com.zoho.crm.api.util.choice import Choice

        params.add(GetUsersParam.type, Choice("CurrentUser"))
    else:
        params.add(GetUsersParam.type, "CurrentUser")
    return str(UsersOperations().get_users(params).get_object().get_users()[0].get_email())


def rows(store: SQLAlchemyTokenStore) -> list[str]:
    """The stored rows, three lines each, with every secret masked and control characters
    escaped (:func:`~zoho_sa_store.hygiene.printable`)."""
    lines = []
    for t in store.get_tokens():
        signature = t.get_user_signature()
        expiry = describe_expiry({"expiry_time": t.get_expires_in()})  # as `list` shows it
        lines += [
            f"  id={t.get_id()}  user_name={signature.get_name() if signature else None}",
            f"    client_id={t.get_client_id()}  client_secret={mask(t.get_client_secret())}",
            f"    access_token={mask(t.get_access_token())}  "
            f"refresh_token={mask(t.get_refresh_token())}  expiry_time={expiry}",
        ]
    return [printable(line) for line in lines]  # a stored value cannot forge a line


@contextlib.contextmanager
def _database(url: str | URL | None, echo: Callable[[str], object]) -> Iterator[str | URL]:
    """``url``, or a throwaway SQLite file deleted on exit (``$ZOHO_SA_STORE_URL`` unused)."""
    if url is not None:
        echo(f"database: {safe_url(resolve_url(url))}")
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="zoho-sa-store-demo-") as directory:
        echo(f"database: sqlite:///{directory}/demo.db")
        echo(f"  a throwaway file, deleted at the end (${URL_ENV_VAR} is not used; see --url)")
        yield f"sqlite:///{directory}/demo.db"


def run_demo(
    url: str | URL | None,
    echo: Callable[[str], object],
    *,
    table_name: str = DEFAULT_TABLE_NAME,
) -> None:
    """Run the lifecycle, printing each step through ``echo``.

    Args:
        url: the database (its table is created if missing); None: a throwaway SQLite
            file in a temp dir, deleted at the end. ``$ZOHO_SA_STORE_URL`` is never used.
        echo: prints one line.
        table_name: the token table.

    Raises:
        TokenStoreError: the database failed.
        SDKException: the SDK failed (it should not: the stand-in answers everything).
    """
    if not HAS_ZOHOCRMSDK:
        require("zohocrmsdk")
    with _database(url, echo) as database:
        _lifecycle(database, echo, table_name)


def _lifecycle(url: str | URL, echo: Callable[[str], object], table_name: str) -> None:
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

    sdk = ", ".join(f"{name} {version}" for name, version in installed().items()) or "?"
    echo(f"SDK: {sdk}")
    client: dict[str, Any] = dict(DEMO_CLIENT)
    if not finds_user():  # zohocrmsdk5_0: the app names the user (see the README)
        client["user_signature"] = UserSignature(DEMO_USER)
        echo(f"  this SDK does not look the user up: the tokens carry {DEMO_USER} from the app")
    upgrade(url, table_name=table_name)
    with ZohoStandIn() as zoho, tempfile.TemporaryDirectory() as resources:

        def start(store: SQLAlchemyTokenStore, token: OAuthToken) -> None:
            Initializer.initializer = None  # a fresh process has no initializer
            Initializer.initialize(
                environment=zoho.environment(), token=token, store=store, resource_path=resources
            )

        store = SQLAlchemyTokenStore(url, table_name=table_name)
        echo(f"table: {table_name}; Zoho stand-in at {zoho.url} (nothing leaves 127.0.0.1)")
        grant = zoho.issue_grant(DEMO_USER, **DEMO_CLIENT)
        token = OAuthToken(**client, grant_token=grant)
        start(store, token)
        echo(f"1. grant {mask(grant)} exchanged and saved as id {token.get_id()}")
        echo(f"   CRM says the current user is {current_user()}")
        store.close()

        store = SQLAlchemyTokenStore(url, table_name=table_name)
        start(store, OAuthToken(**client, grant_token=grant))
        current_user()
        exchanges = zoho.count(grant_type="authorization_code")
        echo(f"2. restarted process found the token: {exchanges} grant exchange(s) in all")

        expired = OAuthToken(id=token.get_id(), access_token=token.get_access_token())
        expired.set_expires_in(str(int(time.time() * 1000) - 1000))
        store.save_token(expired)
        start(store, OAuthToken(**client, grant_token=grant))
        current_user()
        refreshed = store.find_token_by_id(token.get_id())
        assert refreshed is not None
        echo(
            f"3. expired access token refreshed ({zoho.count(grant_type='refresh_token')} "
            f"refresh request) and saved: {mask(refreshed.get_access_token())}"
        )

        start(store, OAuthToken(id=token.get_id()))
        echo(f"4. OAuthToken(id={token.get_id()!r}) works: CRM user {current_user()}")

        if can_revoke_by_id():
            revoked = token.revoke(token.get_id())
            echo(f"5. revoke({token.get_id()!r}) -> {revoked}")
            echo("   (the SDK keeps the row; Zoho forgets the refresh token)")
        else:
            echo("5. revoke(id) skipped: this SDK's OAuthToken.revoke builds OAuthToken() without")
            echo("   the id, which the SDK refuses before the store is asked (zohocrmsdk8_0 7.0.0")
            echo("   or newer revokes by id)")
        echo("stored rows:")
        for line in rows(store):
            echo(line)
        store.close()
        Initializer.initializer = None
