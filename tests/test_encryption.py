"""Secrets at rest on every backend: sealed values, blind-index lookups, wrong keys, rotation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, text, update

from tests.factories import token, values
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError
from zoho_sa_store.keyring import new_entry
from zoho_sa_store.keystate import encryption_state
from zoho_sa_store.rotation import rotate_keys
from zoho_sa_store.settings import make_engine

K1 = new_entry("k1")
K2 = new_entry("k2")
K1_OTHER_BYTES = "k1:" + new_entry("x").split(":", 1)[1]
SECRETS = ("secret-A", "1000.acc.ann", "1000.ref.ann", "1000.acc.solo", "1000.grant.solo")


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    made = make_engine(backend_url)
    with made.begin() as conn:
        conn.execute(text("DELETE FROM oauthtoken"))
    yield made
    with made.begin() as conn:  # sealed rows would fail the next test's keyless reads
        conn.execute(text("DELETE FROM oauthtoken"))
    made.dispose()


def keyed(url: str, keys: str | None = K1) -> SQLAlchemyTokenStore:
    return SQLAlchemyTokenStore(url, keys=keys, refresh=False)


def save_two(store: SQLAlchemyTokenStore) -> tuple[str, str]:
    ann = token("ann@x", access="1000.acc.ann", refresh="1000.ref.ann", expires="1700000000000")
    store.save_token(ann)
    solo = token(None, access="1000.acc.solo", grant="1000.grant.solo")
    store.save_token(solo)
    return ann.get_id(), solo.get_id()


def raw_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM oauthtoken"))]


def assert_found_by_every_rule(store: SQLAlchemyTokenStore, ann_id: str, solo_id: str) -> None:
    by_user = store.find_token(token("ann@x"))
    assert values(by_user) is not None and by_user.get_refresh_token() == "1000.ref.ann"
    by_access = store.find_token(token(client=None, access="1000.acc.ann"))
    assert by_access is not None and by_access.get_id() == ann_id
    by_refresh = store.find_token(token(refresh="1000.ref.ann"))
    assert by_refresh is not None and by_refresh.get_access_token() == "1000.acc.ann"
    by_grant = store.find_token(token(grant="1000.grant.solo"))
    assert by_grant is not None and by_grant.get_id() == solo_id
    assert by_grant.get_access_token() == "1000.acc.solo"
    by_id = store.find_token(token(client=None, id=solo_id))
    assert by_id is not None and by_id.get_grant_token() == "1000.grant.solo"
    narrowed = store.find_token(token(id=ann_id, refresh="1000.ref.ann"))
    assert narrowed is not None and narrowed.get_access_token() == "1000.acc.ann"
    assert store.find_token(token(id=ann_id, refresh="1000.ref.other")) is None
    assert store.find_token(token(client=("1000.A", "wrong"), id=ann_id)) is None
    got = store.find_token_by_id(ann_id)
    assert got is not None and got.get_client_secret() == "secret-A"
    assert store.find_token(token(client=None, access="1000.acc.none")) is None


def test_sealed_rows_hold_no_secret_and_every_rule_finds_them(
    backend_url: str, engine: Engine
) -> None:
    with keyed(backend_url) as store:
        ann_id, solo_id = save_two(store)
        assert_found_by_every_rule(store, ann_id, solo_id)
        assert len(store.get_tokens()) == 2
    rows = raw_rows(engine)
    assert {row["key_id"] for row in rows} == {"k1"}
    for row in rows:
        assert row["client_secret"].startswith("zss1:k1:")
        assert row["access_token_digest"] is not None and len(row["access_token_digest"]) == 64
        assert row["save_key"] is None or len(row["save_key"]) == 64
    dump = repr(rows)
    assert not [secret for secret in SECRETS if secret in dump]


def test_plain_rows_are_found_and_resealed_whole_by_a_keyed_store(
    backend_url: str, engine: Engine
) -> None:
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        ann_id, solo_id = save_two(plain)
    assert {row["key_id"] for row in raw_rows(engine)} == {None}
    with keyed(backend_url) as store:
        assert_found_by_every_rule(store, ann_id, solo_id)
        again = token(None, access="1000.acc.solo", grant="1000.grant.solo")
        store.save_token(again)  # the first save's guard covers plain rows: no second row
        assert again.get_id() == solo_id and len(raw_rows(engine)) == 2
        store.save_token(token(id=ann_id, access="1000.acc.ann2", client=None))  # a refresh
        after = store.find_token_by_id(ann_id)
        assert after is not None and after.get_refresh_token() == "1000.ref.ann"
        assert after.get_access_token() == "1000.acc.ann2"
        state = encryption_state(store)
        assert (state.plain, state.by_key) == (0, {"k1": 2})
    [row] = [row for row in raw_rows(engine) if row["id"] == ann_id]
    assert row["key_id"] == "k1" and "1000.ref.ann" not in repr(row)  # all of it, not a part
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:  # no keys: loud, not None
        with pytest.raises(TokenStoreError, match=f"token id '{ann_id}' is encrypted under key"):
            plain.find_token(token("ann@x"))
        with pytest.raises(TokenStoreError, match="k1"):
            plain.save_token(token(id=ann_id, access="1000.acc.plain", client=None))
    assert not [r for r in raw_rows(engine) if "1000.acc.plain" in repr(r)]


def test_every_rule_works_during_a_two_key_rotation(backend_url: str, engine: Engine) -> None:
    with keyed(backend_url, K1) as old:
        ann_id, solo_id = save_two(old)
    with keyed(backend_url, f"{K2},{K1}") as store:
        assert_found_by_every_rule(store, ann_id, solo_id)
        again = token(None, access="1000.acc.solo", grant="1000.grant.solo")
        store.save_token(again)  # found under k1, rewritten whole under k2: no second row
        assert again.get_id() == solo_id
        assert {r["id"]: r["key_id"] for r in raw_rows(engine)} == {ann_id: "k1", solo_id: "k2"}
        assert_found_by_every_rule(store, ann_id, solo_id)
        report = rotate_keys(store)
        assert (report.found, report.rewritten, report.complete) == (1, 1, True)
        assert rotate_keys(store).found == 0  # a second run changes nothing
    with keyed(backend_url, K2) as new:  # the old key dropped
        assert_found_by_every_rule(new, ann_id, solo_id)
        back = rotate_keys(new, to_plaintext=True)
        assert (back.found, back.rewritten) == (2, 2)
    rows = raw_rows(engine)
    assert {r["key_id"] for r in rows} == {None}
    assert {r["access_token_digest"] for r in rows} == {None}
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        assert_found_by_every_rule(plain, ann_id, solo_id)


def test_wrong_or_missing_key_names_the_key_id_and_row_id(
    backend_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with keyed(backend_url) as store:
        ann_id, _ = save_two(store)
    with keyed(backend_url, K1_OTHER_BYTES) as wrong:
        with pytest.raises(TokenStoreError) as raised:
            wrong.find_token(token("ann@x"))
        message = str(raised.value.error_message)
        assert f"token id '{ann_id}'" in message and "key id 'k1'" in message
        assert "does not open" in message
        assert "does not open the table" in caplog.text  # said at first use
    with keyed(backend_url, K2) as unknown:
        with pytest.raises(TokenStoreError, match="'k1', which is not configured"):
            unknown.find_token_by_id(ann_id)
        with pytest.raises(TokenStoreError, match="k1"):
            unknown.get_tokens()


def test_a_sealed_value_moved_to_another_column_or_row_does_not_open(
    backend_url: str, engine: Engine
) -> None:
    with keyed(backend_url) as store:
        ann_id, solo_id = save_two(store)
        table = store.table
        with engine.begin() as conn:
            [ann_access] = conn.execute(select(table.c.access_token).where(table.c.id == ann_id))
            conn.execute(
                update(table).where(table.c.id == ann_id).values(refresh_token=ann_access[0])
            )
            conn.execute(
                update(table).where(table.c.id == solo_id).values(access_token=ann_access[0])
            )
        with pytest.raises(TokenStoreError, match=f"'{ann_id}': its refresh_token does not open"):
            store.find_token_by_id(ann_id)
        with pytest.raises(TokenStoreError, match=f"'{solo_id}': its access_token does not open"):
            store.find_token_by_id(solo_id)
        with engine.begin() as conn:  # a bit flipped in the ciphertext
            sealed = ann_access[0]
            at = len("zss1:k1:") + 20  # a ciphertext character (not the last, padding bits)
            flipped = sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]
            conn.execute(
                update(table)
                .where(table.c.id == ann_id)
                .values(access_token=flipped, refresh_token=None)
            )
        with pytest.raises(TokenStoreError, match="access_token does not open under key id"):
            store.find_token(token("ann@x"))


def test_imports_seal_and_export_opens(backend_url: str, engine: Engine) -> None:
    from zoho_sa_store import admin
    from zoho_sa_store.importers import SourceRow, import_rows

    source = {"id": "7", "user_name": "imp@x", "client_id": "1000.I", "client_secret": "s-imp",
              "refresh_token": "1000.ref.imp", "access_token": "1000.acc.imp", "grant_token": None,
              "expiry_time": "1700000000000", "redirect_url": None, "api_domain": None}  # fmt: skip
    with keyed(backend_url) as store:
        report = import_rows(store, [SourceRow("row 1", source)])
        assert report.imported == 1
        assert import_rows(store, [SourceRow("row 1", source)]).unchanged == 1
        found = store.find_token(token(refresh="1000.ref.imp", client=("1000.I", "s-imp")))
        assert found is not None and found.get_id() == "7"
        [row] = admin.list_rows(store)
        assert row["access_token"] == "1000.acc.imp"
        assert "1000.acc.imp" not in admin.to_json([row])
        assert '"1000.acc.imp"' in admin.to_json([row], include_secrets=True)
    assert not [r for r in raw_rows(engine) if "1000.acc.imp" in repr(r) or "s-imp" in repr(r)]


MIGRATED = "zss_keys_migration"


def test_migration_up_and_down_with_plain_and_sealed_rows(backend_url: str) -> None:
    from zoho_sa_store import current, upgrade
    from zoho_sa_store.migrate import downgrade

    downgrade(backend_url, "base", table_name=MIGRATED)
    upgrade(backend_url, "0002", table_name=MIGRATED)
    engine = make_engine(backend_url)
    insert = text(
        f"INSERT INTO {MIGRATED} (id, user_name, client_id, client_secret, refresh_token,"
        " access_token, saved_at) VALUES (:id, :user, '1000.A', :secret, :ref, :acc, 1)"
    )
    try:
        with engine.begin() as conn:
            for n in range(3):
                conn.execute(insert, {"id": str(n), "user": f"u{n}@x", "ref": f"1000.r{n}",
                                      "acc": f"1000.a{n}", "secret": "secret-A"})  # fmt: skip
        upgrade(backend_url, table_name=MIGRATED)
        upgrade(backend_url, table_name=MIGRATED)  # again: nothing to do
        assert current(backend_url, table_name=MIGRATED) == "0003"
        store = SQLAlchemyTokenStore(backend_url, table_name=MIGRATED, keys=K1, refresh=False)
        with store:
            found = store.find_token(token(refresh="1000.r1"))
            assert found is not None and found.get_id() == "1"
            assert rotate_keys(store, batch=2).rewritten == 3
            sealed = store.find_token(token(refresh="1000.r2"))
            assert sealed is not None and sealed.get_access_token() == "1000.a2"
            with pytest.raises(RuntimeError, match="rotate-keys --to-plaintext"):
                downgrade(backend_url, "0002", table_name=MIGRATED)
            assert current(backend_url, table_name=MIGRATED) == "0003"
            assert rotate_keys(store, to_plaintext=True).rewritten == 3
        downgrade(backend_url, "0002", table_name=MIGRATED)
        with engine.connect() as conn:
            rows = conn.execute(text(f"SELECT * FROM {MIGRATED} ORDER BY id")).all()
        assert [(r.access_token, r.refresh_token, r.client_secret) for r in rows] == [
            (f"1000.a{n}", f"1000.r{n}", "secret-A") for n in range(3)
        ]
        assert "key_id" not in rows[0]._mapping
        upgrade(backend_url, table_name=MIGRATED)
        with SQLAlchemyTokenStore(backend_url, table_name=MIGRATED, refresh=False) as plain:
            again = plain.find_token(token(refresh="1000.r0"))
            assert again is not None and again.get_access_token() == "1000.a0"
    finally:
        engine.dispose()
        downgrade(backend_url, "base", table_name=MIGRATED, drop_data=True)
