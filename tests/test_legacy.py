"""``LegacyTokenStore``: the real v2.1/v2 SDK (``zcrmsdk``) drives the store against the
offline stand-in, on every backend; and its rows meet the zohocrmsdk generations' rules.

Needs ``zcrmsdk`` (``zoho-sa-store[sdk2]``): ``.ci/run`` runs this module in its zohocrmsdk2_1
and 2_0 legs; elsewhere it is reported as skipped, naming that leg (tests/conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import sdk_or_skip

pytestmark = pytest.mark.zcrmsdk
sdk_or_skip("zcrmsdk")

from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zcrmsdk.src.com.zoho.api.logger import Logger  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature  # noqa: E402
from zcrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations  # noqa: E402

from zoho_sa_store import LegacyTokenStore, TokenStoreError  # noqa: E402
from zoho_sa_store.testing import DEFAULT_ORG_ID, ZohoStandIn  # noqa: E402
from zoho_sa_store.tokens import TokenFields  # noqa: E402

ANN = "ann@example.com"
BOB = "bob@example.com"
CLIENT = {"client_id": "1000.LEGACYA", "client_secret": "legacy-secret-a"}


@pytest.fixture
def legacy(backend_url: str) -> Iterator[LegacyTokenStore]:
    store = LegacyTokenStore(backend_url)
    store.delete_tokens()
    Initializer.initializer = None
    yield store
    Initializer.initializer = None
    store.close()


def start(zoho: ZohoStandIn, store: LegacyTokenStore, tmp: Path, user: str, token: object) -> None:
    Initializer.initializer = None  # a new process
    Initializer.initialize(
        user=UserSignature(user),
        environment=zoho.environment(),
        token=token,
        store=store,
        resource_path=str(tmp),
        logger=Logger.get_instance(Logger.Levels.INFO, str(tmp / "sdk_logs.log")),  # not ./
    )


def current_user() -> str:
    """One CRM call through zcrmsdk (``/crm/v2.1/users`` or ``/crm/v2/users``)."""
    params = ParameterMap()
    params.add(GetUsersParam.type, "CurrentUser")
    return str(UsersOperations().get_users(params).get_object().get_users()[0].get_email())


def test_grant_restart_refresh_by_id_and_delete(
    legacy: LegacyTokenStore, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    grant = zoho_stand_in.issue_grant(ANN, **CLIENT)
    start(zoho_stand_in, legacy, tmp_path, ANN, OAuthToken(**CLIENT, grant_token=grant))
    assert current_user() == ANN
    [row] = legacy.get_tokens()
    assert row.get_user_mail() == ANN
    assert row.get_access_token() == zoho_stand_in.issued_access_tokens[-1]
    assert row.get_refresh_token() == zoho_stand_in.issued_refresh_tokens[-1]
    assert row.get_grant_token() == grant
    row_id = row.get_id()

    # restart: the same grant finds the stored token, no second exchange
    start(zoho_stand_in, legacy, tmp_path, ANN, OAuthToken(**CLIENT, grant_token=grant))
    assert current_user() == ANN
    assert zoho_stand_in.count(grant_type="authorization_code") == 1
    assert [t.get_id() for t in legacy.get_tokens()] == [row_id]

    # refresh: an expired access token is refreshed by the SDK and saved in the same row
    fields = legacy.store.find_fields(TokenFields(id=row_id))
    assert fields is not None
    past = str(int(time.time() * 1000) - 1000)
    legacy.store.save_fields(TokenFields(id=row_id, access_token="1000.x", expiry_time=past))
    zoho_stand_in.expire_access_tokens()
    start(zoho_stand_in, legacy, tmp_path, ANN, OAuthToken(**CLIENT, grant_token=grant))
    assert current_user() == ANN
    assert zoho_stand_in.count(grant_type="refresh_token") == 1
    [row] = legacy.get_tokens()
    assert row.get_id() == row_id
    assert row.get_access_token() == zoho_stand_in.issued_access_tokens[-1]
    assert row.get_refresh_token() == fields.refresh_token  # never blanked
    assert int(row.get_expires_in()) > (time.time() + 3000) * 1000

    # by id: a token carrying only the id
    start(zoho_stand_in, legacy, tmp_path, ANN, OAuthToken(id=row_id))
    assert current_user() == ANN
    found = legacy.get_token_by_id(row_id, OAuthToken(id=row_id))
    assert found.get_refresh_token() == fields.refresh_token and found.get_user_mail() == ANN
    assert legacy.get_token_by_id("no-such-id", OAuthToken(id="no-such-id")) is None

    # delete: OAuthToken.remove() removes this row and no other
    bob = OAuthToken(client_id=CLIENT["client_id"], client_secret=CLIENT["client_secret"],
                     grant_token=zoho_stand_in.issue_grant(BOB, **CLIENT))  # fmt: skip
    start(zoho_stand_in, legacy, tmp_path, BOB, bob)
    assert current_user() == BOB
    assert len(legacy.get_tokens()) == 2
    assert found.remove() is True
    assert [t.get_user_mail() for t in legacy.get_tokens()] == [BOB]
    assert zoho_stand_in.count(grant_type="authorization_code") == 2


def test_rows_are_shared_with_the_zohocrmsdk_generations(
    legacy: LegacyTokenStore, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    """A row saved as zohocrmsdk 6_0+ saves it (user ``email:org``) is found by zcrmsdk by
    its refresh token and keeps its name when zcrmsdk saves it; a row zcrmsdk saved is found
    by the zohocrmsdk rules (by id, by refresh token)."""
    refresh = zoho_stand_in.issue_refresh_token(ANN, **CLIENT)
    v8_name = f"{ANN}:{DEFAULT_ORG_ID}"
    expired = str(int(time.time() * 1000) - 1000)  # saved an hour ago by a v8 app
    v8_id = legacy.store.save_fields(
        TokenFields(
            user_name=v8_name,
            refresh_token=refresh,
            access_token="1000.expired",
            expiry_time=expired,
            api_domain=zoho_stand_in.url,
            **CLIENT,
        )
    )
    token = OAuthToken(**CLIENT, refresh_token=refresh)
    start(zoho_stand_in, legacy, tmp_path, ANN, token)
    assert current_user() == ANN
    assert token.get_id() == v8_id
    assert zoho_stand_in.count(grant_type="refresh_token") == 1
    [row] = legacy.store.all_fields()
    assert (row.id, row.user_name, row.api_domain) == (v8_id, v8_name, zoho_stand_in.url)
    assert row.access_token == zoho_stand_in.issued_access_tokens[-1]
    # another user's zcrmsdk never gets ann's row through its refresh token
    assert legacy.get_token(UserSignature(BOB), OAuthToken(**CLIENT, refresh_token=refresh)) is None

    grant = zoho_stand_in.issue_grant(BOB, **CLIENT)
    start(zoho_stand_in, legacy, tmp_path, BOB, OAuthToken(**CLIENT, grant_token=grant))
    assert current_user() == BOB
    [bob] = [t for t in legacy.get_tokens() if t.get_user_mail() == BOB]
    by_id = legacy.store.find_fields(TokenFields(id=bob.get_id()))
    by_refresh = legacy.store.find_fields(
        TokenFields(refresh_token=bob.get_refresh_token(), **CLIENT)
    )
    assert by_id == by_refresh and by_id is not None
    assert (by_id.user_name, by_id.access_token) == (BOB, bob.get_access_token())


def test_bad_arguments_write_nothing(legacy: LegacyTokenStore) -> None:
    token = OAuthToken(**CLIENT, grant_token="1000.g")
    with pytest.raises(TypeError, match="UserSignature"):
        legacy.save_token(ANN, token)
    with pytest.raises(TypeError, match="zcrmsdk OAuthToken"):
        legacy.save_token(UserSignature(ANN), object())
    token.set_expires_in("12")
    with pytest.raises(ValueError, match="epoch milliseconds"):
        legacy.save_token(UserSignature(ANN), token)
    assert legacy.get_tokens() == []
    assert issubclass(TokenStoreError, zcrmsdk_sdk_exception())


def zcrmsdk_sdk_exception() -> type:
    from zcrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

    return SDKException
