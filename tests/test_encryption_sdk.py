"""With keys, the real SDK through the stand-in leaves no secret in the database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken

from tests.factories import CLIENT_B
from tests.test_sdk_e2e import ANN, BOB, CLIENT, current_user_email, initialize
from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.keyring import new_entry
from zoho_sa_store.settings import make_engine, sqlite_file
from zoho_sa_store.testing import ZohoStandIn

pytestmark = pytest.mark.usefixtures("fresh_sdk")


def test_no_secret_in_any_column_or_file_byte(
    backend_url: str, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    # SQLite: a file of its own, so pages freed by other tests cannot hold these tokens
    url = f"sqlite:///{tmp_path / 'sealed.db'}" if backend_url.startswith("sqlite") else backend_url
    upgrade(url)
    store = SQLAlchemyTokenStore(url, keys=new_entry("k1"))
    store.delete_tokens()
    try:
        ann_grant = zoho_stand_in.issue_grant(ANN, **CLIENT)
        initialize(zoho_stand_in, store, tmp_path, grant_token=ann_grant)
        assert current_user_email() == ANN
        [row] = store.get_tokens()
        expired = OAuthToken(id=row.get_id(), access_token=row.get_access_token())
        expired.set_expires_in(str(int(time.time() * 1000) - 1000))
        store.save_token(expired)
        zoho_stand_in.expire_access_tokens()
        assert current_user_email() == ANN  # refreshed through the store's coordinated refresh
        assert zoho_stand_in.count(grant_type="refresh_token") == 1
        bob_grant = zoho_stand_in.issue_grant(BOB, client_id=CLIENT_B[0], client_secret=CLIENT_B[1])
        initialize(
            zoho_stand_in,
            store,
            tmp_path,
            grant_token=bob_grant,
            client_id=CLIENT_B[0],
            client_secret=CLIENT_B[1],
        )
        assert current_user_email() == BOB
        tokens = {t.get_user_signature().get_name().split(":")[0]: t for t in store.get_tokens()}
        assert set(tokens) == {ANN, BOB}
        assert tokens[ANN].get_access_token() == zoho_stand_in.issued_access_tokens[1]
        secrets = {
            CLIENT["client_secret"],
            CLIENT_B[1],
            ann_grant,
            bob_grant,
            *zoho_stand_in.issued_access_tokens,
            *zoho_stand_in.issued_refresh_tokens,
        }
        assert len(secrets) == 9  # 2 client secrets, 2 grants, 3 access and 2 refresh tokens
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                dump = [
                    repr(conn.execute(text(f"SELECT * FROM {name}")).all())
                    for name in inspect(conn).get_table_names()
                ]
        finally:
            engine.dispose()
        found = [s[:9] for s in secrets for table in dump if s in table]
        assert not found, f"secrets stored readable: {found}"
        assert "zss1:k1:" in "".join(dump)
    finally:
        store.close()
    path = sqlite_file(url)
    if path is not None:
        raw = b"".join(
            Path(f"{path}{suffix}").read_bytes()
            for suffix in ("", "-wal", "-shm")
            if Path(f"{path}{suffix}").exists()
        )
        assert b"zss1:k1:" in raw
        assert not [s[:9] for s in secrets if s.encode() in raw], "secrets in the file's bytes"
