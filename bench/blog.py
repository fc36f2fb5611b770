"""A minimal stand-in for the hand-written SQLite token store that blog posts show.

What is measured is the shape of such a class, faults included on purpose: a new
``sqlite3`` connection for every call, a table with no index at all (not even a primary
key), and SQL built with f-strings. It is bench code only; never use it.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

TABLE = "oauthtoken"
_COLUMNS = (
    "id, user_name, client_id, client_secret, refresh_token, access_token, grant_token, "
    "expiry_time, redirect_url, api_domain"
)


def _q(value: Any) -> str:
    return "NULL" if value is None else f"'{value}'"


class BlogSQLiteStore(TokenStore):  # type: ignore[misc]
    def __init__(self, path: str) -> None:
        self.path = path
        conn = sqlite3.connect(self.path)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT, user_name TEXT, client_id TEXT, "
            "client_secret TEXT, refresh_token TEXT, access_token TEXT, grant_token TEXT, "
            "expiry_time TEXT, redirect_url TEXT, api_domain TEXT)"
        )
        conn.commit()
        conn.close()

    def _where(self, token: OAuthToken) -> str | None:
        signature = token.get_user_signature()
        if signature is not None and signature.get_name():
            return f"user_name = '{signature.get_name()}'"
        if token.get_access_token() and not token.get_client_id():
            return f"access_token = '{token.get_access_token()}'"
        if token.get_grant_token():
            return f"grant_token = '{token.get_grant_token()}'"
        if token.get_refresh_token():
            return f"refresh_token = '{token.get_refresh_token()}'"
        return None

    @staticmethod
    def _fill(token: OAuthToken, row: tuple[Any, ...]) -> OAuthToken:
        (id_, name, client_id, secret, refresh, access, grant, expiry, redirect, domain) = row
        token.set_id(token.get_id() or id_)
        if token.get_user_signature() is None and name:
            token.set_user_signature(UserSignature(name))
        token.set_client_id(token.get_client_id() or client_id)
        token.set_client_secret(token.get_client_secret() or secret)
        token.set_refresh_token(token.get_refresh_token() or refresh)
        token.set_access_token(token.get_access_token() or access)
        token.set_grant_token(token.get_grant_token() or grant)
        token.set_expires_in(token.get_expires_in() or expiry)
        token.set_redirect_url(token.get_redirect_url() or redirect)
        token.set_api_domain(token.get_api_domain() or domain)
        return token

    def find_token(self, token: OAuthToken) -> OAuthToken | None:
        where = self._where(token)
        if where is None:
            return None
        conn = sqlite3.connect(self.path)
        row = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where}").fetchone()
        conn.close()
        return None if row is None else self._fill(token, row)

    def find_token_by_id(self, id: str) -> OAuthToken | None:
        conn = sqlite3.connect(self.path)
        row = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE} WHERE id = '{id}'").fetchone()
        conn.close()
        if row is None:
            return None
        return self._fill(OAuthToken(id=id), row)

    def save_token(self, token: OAuthToken) -> None:
        signature = token.get_user_signature()
        name = signature.get_name() if signature is not None else None
        where = f"id = '{token.get_id()}'" if token.get_id() else self._where(token)
        conn = sqlite3.connect(self.path)
        row = conn.execute(f"SELECT id FROM {TABLE} WHERE {where}").fetchone() if where else None
        if row is not None:
            conn.execute(
                f"UPDATE {TABLE} SET access_token = {_q(token.get_access_token())}, "
                f"refresh_token = {_q(token.get_refresh_token())}, "
                f"expiry_time = {_q(token.get_expires_in())}, "
                f"api_domain = {_q(token.get_api_domain())} WHERE id = '{row[0]}'"
            )
        else:
            if token.get_id() is None:
                token.set_id(str(uuid.uuid4()))
            values = (
                token.get_id(),
                name,
                token.get_client_id(),
                token.get_client_secret(),
                token.get_refresh_token(),
                token.get_access_token(),
                token.get_grant_token(),
                token.get_expires_in(),
                token.get_redirect_url(),
                token.get_api_domain(),
            )
            conn.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES ({', '.join(_q(v) for v in values)})"
            )
        conn.commit()
        conn.close()

    def get_tokens(self) -> list[OAuthToken]:
        conn = sqlite3.connect(self.path)
        rows = conn.execute(f"SELECT {_COLUMNS} FROM {TABLE}").fetchall()
        conn.close()
        return [self._fill(OAuthToken(id=row[0]), row) for row in rows]

    def delete_token(self, id: str) -> None:
        conn = sqlite3.connect(self.path)
        conn.execute(f"DELETE FROM {TABLE} WHERE id = '{id}'")
        conn.commit()
        conn.close()

    def delete_tokens(self) -> None:
        conn = sqlite3.connect(self.path)
        conn.execute(f"DELETE FROM {TABLE}")
        conn.commit()
        conn.close()
