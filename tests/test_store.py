"""The token-store contract and the reference stores' known faults, on every backend."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.factories import CLIENT_A, CLIENT_B, token, values
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError

pytestmark = pytest.mark.pooled


def row_count(store: SQLAlchemyTokenStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(store.table)) or 0)


CLIENT = {"client_id": CLIENT_A[0], "client_secret": CLIENT_A[1]}


def saved(store: SQLAlchemyTokenStore, user: str = "ann@example.com", **kw: object) -> OAuthToken:
    t = token(
        user,
        access=kw.pop("access", "1000.acc"),
        refresh=kw.pop("refresh", "1000.ref"),
        expires=kw.pop("expires", "1700000000000"),
        **kw,
    )  # type: ignore[arg-type]
    store.save_token(t)
    return t


# -- find_token: the rules, in order ---------------------------------------------------


def test_rule_user_fills_the_given_object(store: SQLAlchemyTokenStore) -> None:
    stored = saved(store, api_domain="https://www.zohoapis.eu")
    query = token("ann@example.com", client=None)
    found = store.find_token(query)
    assert found is query
    assert values(found) == {
        "id": stored.get_id(),
        "user_name": "ann@example.com",
        "client_id": CLIENT_A[0],
        "client_secret": CLIENT_A[1],
        "refresh_token": "1000.ref",
        "access_token": "1000.acc",
        "grant_token": None,
        "expiry_time": "1700000000000",
        "api_domain": "https://www.zohoapis.eu",
    }


def test_the_callers_values_win_in_the_merge(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    query = token("ann@example.com", refresh="1000.mine")
    store.find_token(query)
    assert query.get_refresh_token() == "1000.mine"
    assert query.get_access_token() == "1000.acc"


def test_rule_access_token_alone(store: SQLAlchemyTokenStore) -> None:
    stored = saved(store)
    found = store.find_token(token(client=None, access="1000.acc"))
    assert found is not None and found.get_id() == stored.get_id()
    assert found.get_user_signature().get_name() == "ann@example.com"


def test_rule_access_token_not_used_with_client_credentials(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    assert store.find_token(token(access="1000.acc")) is None


def test_rule_grant_then_refresh(store: SQLAlchemyTokenStore) -> None:
    by_grant = saved(
        store, "g@example.com", grant="1000.grant", refresh="1000.r1", access="1000.a1"
    )
    by_refresh = saved(store, "r@example.com", refresh="1000.r2", access="1000.a2")
    found = store.find_token(token(grant="1000.grant", refresh="1000.r2"))
    assert found is not None and found.get_id() == by_grant.get_id()
    found = store.find_token(token(refresh="1000.r2"))
    assert found is not None and found.get_id() == by_refresh.get_id()


def test_rule_grant_needs_both_client_id_and_secret(store: SQLAlchemyTokenStore) -> None:
    saved(store, grant="1000.grant")
    half = token(grant="1000.grant")
    half.set_client_secret(None)
    assert store.find_token(half) is None


def test_no_rule_returns_none_not_the_first_row(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    nothing = token(grant="x")
    nothing.set_grant_token(None)
    assert store.find_token(nothing) is None


def test_no_match_leaves_the_object_untouched(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    query = token("bob@example.com")
    before = values(query)
    assert store.find_token(query) is None
    assert values(query) == before


def test_several_rows_of_one_user_return_the_newest(store: SQLAlchemyTokenStore) -> None:
    saved(store, client=CLIENT_A, access="1000.old", refresh="1000.rA")
    newest = saved(store, client=CLIENT_B, access="1000.new", refresh="1000.rB")
    found = store.find_token(token("ann@example.com", client=None))
    assert found is not None and found.get_id() == newest.get_id()
    saved(store, client=CLIENT_A, access="1000.newer", refresh="1000.rA")
    found = store.find_token(token("ann@example.com", client=None))
    assert found is not None and found.get_access_token() == "1000.newer"


# -- the known faults of the reference stores -----------------------------------------


def test_eleventh_generated_id_does_not_collide(store: SQLAlchemyTokenStore) -> None:
    ids = {saved(store, f"user{i}@example.com", refresh=f"1000.r{i}").get_id() for i in range(12)}
    assert len(ids) == 12 and None not in ids
    assert row_count(store) == 12


def test_id_only_lookup_returns_that_row_never_another_users(store: SQLAlchemyTokenStore) -> None:
    saved(store, "first@example.com", refresh="1000.first")
    second = saved(store, "second@example.com", refresh="1000.second")
    query = OAuthToken(id=second.get_id())
    assert store.find_token(query) is query
    assert query.get_refresh_token() == "1000.second"
    assert query.get_user_signature().get_name() == "second@example.com"
    assert store.find_token(OAuthToken(id="no-such-id")) is None


def test_a_token_with_an_id_never_comes_back_mixed_with_another_row(
    store: SQLAlchemyTokenStore,
) -> None:
    """An id names one row: the lookup is by id, and a token whose other values are another
    row's matches nothing (before: ann's id carrying bo's secrets, and delete_token of that
    id then deleted ann's row)."""
    ann = saved(store, "ann@example.com", refresh="1000.ann", access="1000.acc-ann")
    bo = saved(store, "bo@example.com", refresh="1000.bo", access="1000.acc-bo")
    mixed = OAuthToken(id=ann.get_id(), user_signature=UserSignature("bo@example.com"))
    assert store.find_token(mixed) is None
    assert (mixed.get_refresh_token(), mixed.get_access_token()) == (None, None)
    mixed = OAuthToken(id=ann.get_id(), refresh_token="1000.bo", **CLIENT)
    assert store.find_token(mixed) is None and mixed.get_access_token() is None
    mixed = OAuthToken(id=bo.get_id(), access_token="1000.acc-ann")
    assert store.find_token(mixed) is None and mixed.get_refresh_token() is None
    # values that agree with the id's row: that row, merged as ever
    agreeing = OAuthToken(id=ann.get_id(), user_signature=UserSignature("ann@example.com"))
    assert store.find_token(agreeing) is agreeing
    assert (agreeing.get_refresh_token(), agreeing.get_access_token()) == (
        "1000.ann",
        "1000.acc-ann",
    )
    agreeing = OAuthToken(id=bo.get_id(), refresh_token="1000.bo", **CLIENT)
    assert store.find_token(agreeing) is agreeing and agreeing.get_access_token() == "1000.acc-bo"
    # the SDK's revoke path: an id alone
    only_id = OAuthToken(id=bo.get_id())
    assert store.find_token(only_id) is only_id and only_id.get_refresh_token() == "1000.bo"
    # nothing found, so nothing of ann's can be deleted by mistake through a mixed token
    assert row_count(store) == 2


def test_blank_user_name_never_returns_a_row(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    assert store.find_token(OAuthToken(user_signature=UserSignature(""))) is None
    assert store.find_token(OAuthToken(user_signature=UserSignature("   "))) is None


def test_resaving_an_unchanged_token_keeps_one_row_and_its_id(store: SQLAlchemyTokenStore) -> None:
    t = saved(store)
    first_id = t.get_id()
    store.save_token(t)
    store.save_token(t)
    assert row_count(store) == 1 and t.get_id() == first_id
    assert [x.get_id() for x in store.get_tokens()] == [first_id]


def test_save_with_existing_id_updates_that_row_only(store: SQLAlchemyTokenStore) -> None:
    t = saved(store, api_domain="https://www.zohoapis.com")
    store.save_token(OAuthToken(id=t.get_id(), access_token="1000.new"))
    assert row_count(store) == 1
    row = store.find_token_by_id(t.get_id())
    assert values(row) == {**values(t), "access_token": "1000.new"}  # type: ignore[dict-item]


def test_update_never_blanks_stored_fields(store: SQLAlchemyTokenStore) -> None:
    t = saved(store, api_domain="https://www.zohoapis.com")
    refreshed = token("ann@example.com", access="1000.fresh", expires="1800000000000")
    store.save_token(refreshed)
    assert refreshed.get_id() == t.get_id()
    row = store.find_token_by_id(t.get_id())
    assert row is not None
    assert (row.get_refresh_token(), row.get_api_domain()) == (
        "1000.ref",
        "https://www.zohoapis.com",
    )
    assert (row.get_access_token(), row.get_expires_in()) == ("1000.fresh", "1800000000000")


@pytest.mark.parametrize("name", ["o'neil@example.com", 'quote"d@example.com', "back\\slash@x.com"])
def test_quotes_in_user_names_are_data(store: SQLAlchemyTokenStore, name: str) -> None:
    t = saved(store, name)
    found = store.find_token(token(name, client=None))
    assert found is not None and found.get_id() == t.get_id()


def test_sql_in_a_user_name_finds_nothing(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    for attack in ["x' OR '1'='1", "x' OR 1=1 --", "%", "_", "*"]:
        assert store.find_token(token(attack, client=None)) is None
    assert row_count(store) == 1


def test_refresh_token_matching_is_exact(store: SQLAlchemyTokenStore) -> None:
    t = saved(store, refresh="1000.AbC%_d")
    found = store.find_token(token(refresh="1000.AbC%_d"))
    assert found is not None and found.get_id() == t.get_id()
    for other in ["1000.abc%_d", "1000.AbC%", "1000.AbCx_d", "1000.AbC%_d ", " 1000.AbC%_d"]:
        assert store.find_token(token(refresh=other)) is None, other


def test_user_name_matching_is_exact(store: SQLAlchemyTokenStore) -> None:
    saved(store, "Ann@Example.com")
    for other in ["ann@example.com", "Ann@Example.com ", "ANN@EXAMPLE.COM", "Ann@Example.co_"]:
        assert store.find_token(token(other, client=None)) is None, other
    saved(store, "Ann@Example.com ", refresh="1000.other")
    assert row_count(store) == 2


def test_two_client_apps_keep_two_rows(store: SQLAlchemyTokenStore) -> None:
    a = saved(store, client=CLIENT_A, access="1000.accA", refresh="1000.refA")
    b = saved(store, client=CLIENT_B, access="1000.accB", refresh="1000.refB")
    assert row_count(store) == 2 and a.get_id() != b.get_id()
    found = store.find_token(token("ann@example.com", client=CLIENT_A))
    assert found is not None and found.get_access_token() == "1000.accA"
    found = store.find_token(token("ann@example.com", client=CLIENT_B))
    assert found is not None and found.get_access_token() == "1000.accB"


def test_token_without_user_name_found_three_ways_and_updated_in_place(
    store: SQLAlchemyTokenStore,
) -> None:
    t = token(grant="1000.grant", refresh="1000.ref", access="1000.acc", expires="1700000000001")
    store.save_token(t)
    for query in (
        token(refresh="1000.ref"),
        token(grant="1000.grant"),
        token(client=None, access="1000.acc"),
    ):
        found = store.find_token(query)
        assert found is not None and found.get_id() == t.get_id()
        assert found.get_user_signature() is None
    again = token(grant="1000.grant", access="1000.acc2", expires="1700000000002")
    store.save_token(again)
    assert again.get_id() == t.get_id() and row_count(store) == 1
    assert store.find_token_by_id(t.get_id()).get_access_token() == "1000.acc2"


def test_handed_out_tokens_are_complete(store: SQLAlchemyTokenStore) -> None:
    t = saved(store)
    for handed in (store.get_tokens()[0], store.find_token_by_id(t.get_id())):
        assert isinstance(handed, OAuthToken)
        # every attribute the SDK's constructor sets (6_0 and newer: the find-user flag)
        assert vars(handed).keys() == vars(OAuthToken(id="any")).keys()
        assert getattr(handed, "_OAuthToken__find_user", True) is True
        assert values(handed) == values(t)


# -- the rest of the contract -----------------------------------------------------------


@pytest.mark.parametrize("expires", ["1700000000123", "1000000000000", "9999999999999", None])
def test_expires_in_round_trips_as_the_same_str(
    store: SQLAlchemyTokenStore, expires: str | None
) -> None:
    t = saved(store, expires=expires)
    assert store.find_token_by_id(t.get_id()).get_expires_in() == expires


@pytest.mark.parametrize(
    "expires", ["0", "1", "999999999999", "10000000000000", "1700000000000000"]
)
def test_expires_in_outside_epoch_ms_is_refused(store: SQLAlchemyTokenStore, expires: str) -> None:
    """Only 13-digit epoch ms (years 2001..2286) are saved: a 16-digit epoch-µs value would
    read as an expiry centuries away, and the token would never be refreshed."""
    kept = saved(store)
    with pytest.raises(ValueError, match="13 digits"):
        store.save_token(token("bo@example.com", access="1000.b", expires=expires))
    with pytest.raises(ValueError, match="13 digits"):
        store.save_token(token(id=kept.get_id(), access="1000.b", expires=expires))
    [row] = store.get_tokens()
    assert values(row) == values(kept)


def test_find_token_by_id_unknown_and_blank(store: SQLAlchemyTokenStore) -> None:
    saved(store)
    assert store.find_token_by_id("unknown") is None
    assert store.find_token_by_id("") is None


def test_save_keeps_a_given_new_id(store: SQLAlchemyTokenStore) -> None:
    t = saved(store, id="my-id")
    assert t.get_id() == "my-id"
    assert store.find_token_by_id("my-id").get_access_token() == "1000.acc"


def test_save_refuses_a_token_with_nothing_to_store(store: SQLAlchemyTokenStore) -> None:
    with pytest.raises(ValueError, match="nothing to store"):
        store.save_token(OAuthToken(user_signature=UserSignature("ann@example.com")))
    with pytest.raises(ValueError, match="nothing to store"):
        store.save_token(OAuthToken(id="x", access_token=""))
    assert row_count(store) == 0


def test_delete_token_and_delete_tokens(store: SQLAlchemyTokenStore) -> None:
    a = saved(store, "a@example.com", refresh="1000.a")
    b = saved(store, "b@example.com", refresh="1000.b")
    store.delete_token("unknown")
    store.delete_token(a.get_id())
    assert [t.get_id() for t in store.get_tokens()] == [b.get_id()]
    saved(store, "c@example.com", refresh="1000.c")
    store.delete_tokens()
    assert store.get_tokens() == []


def test_long_tokens_are_stored_whole(store: SQLAlchemyTokenStore) -> None:
    long_refresh = "1000." + "r" * 2500 + "Z"
    long_access = "1000." + "a" * 4000 + "Y"
    t = saved(store, refresh=long_refresh, access=long_access)
    found = store.find_token(token(refresh=long_refresh))
    assert found is not None and found.get_id() == t.get_id()
    assert found.get_access_token() == long_access
    assert store.find_token(token(refresh=long_refresh[:-1] + "z")) is None


def test_unicode_values_round_trip(store: SQLAlchemyTokenStore) -> None:
    t = saved(store, "zoë+测试@example.com", refresh="1000.ré😀")
    found = store.find_token(token(refresh="1000.ré😀"))
    assert found is not None and found.get_id() == t.get_id()
    assert found.get_user_signature().get_name() == "zoë+测试@example.com"


def test_custom_table_name(backend_url: str) -> None:
    from zoho_sa_store.migrate import downgrade, upgrade

    upgrade(backend_url, table_name="crm_tokens")
    try:
        with SQLAlchemyTokenStore(backend_url, table_name="crm_tokens") as custom:
            custom.delete_tokens()
            t = saved(custom)
            assert custom.find_token_by_id(t.get_id()) is not None
            assert custom.table.name == "crm_tokens"
    finally:
        downgrade(backend_url, "base", table_name="crm_tokens", drop_data=True)


def test_memory_database_works() -> None:
    from zoho_sa_store import upgrade

    with SQLAlchemyTokenStore("sqlite:///:memory:") as memory:
        upgrade(memory.engine)
        t = saved(memory)
        assert memory.find_token_by_id(t.get_id()).get_access_token() == "1000.acc"


def test_save_with_an_unknown_id_takes_the_found_rows_id(store: SQLAlchemyTokenStore) -> None:
    t = saved(store)
    again = token("ann@example.com", access="1000.acc2", id="no-such-row")
    store.save_token(again)
    assert again.get_id() == t.get_id() and row_count(store) == 1


def test_update_that_would_duplicate_a_user_is_refused(store: SQLAlchemyTokenStore) -> None:
    saved(store, "ann@example.com", refresh="1000.ann")
    bob = saved(store, "bob@example.com", refresh="1000.bob")
    moved = OAuthToken(id=bob.get_id(), user_signature=UserSignature("ann@example.com"))
    moved.set_client_id(CLIENT_A[0])
    moved.set_access_token("1000.x")
    with pytest.raises(TokenStoreError, match=r"another row has this token's \(user_name"):
        store.save_token(moved)
    assert row_count(store) == 2
    assert store.find_token_by_id(bob.get_id()).get_user_signature().get_name() == "bob@example.com"


def test_memory_database_from_many_threads() -> None:
    from zoho_sa_store import upgrade

    errors: list[BaseException] = []
    with SQLAlchemyTokenStore("sqlite:///:memory:") as memory:
        upgrade(memory.engine)

        def work(w: int) -> None:
            try:
                for n in range(20):
                    memory.save_token(token(f"u{w}@example.com", access=f"1000.{w}.{n}"))
                    assert memory.find_token(token(f"u{w}@example.com")) is not None
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == []
        assert row_count(memory) == 8


def test_rows_never_reach_the_sql_debug_log(
    store: SQLAlchemyTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sqlalchemy.engine"):
        fresh = SQLAlchemyTokenStore(store.engine.url)  # engine logging is decided at creation
        fresh.save_token(token("ann@example.com", access="1000.logged-access", refresh="1000.r"))
        assert fresh.find_token(token("ann@example.com")) is not None
        assert len(fresh.get_tokens()) == 1  # read through SQLAlchemy's result rows
        fresh.close()
    assert "rows of the token table are never logged" in caplog.text
    assert "1000.logged-access" not in caplog.text and CLIENT_A[1] not in caplog.text


def test_an_engine_that_shows_parameters_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sqlalchemy import create_engine

    engine = create_engine("sqlite://")
    with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
        SQLAlchemyTokenStore(engine=engine)
    assert "does not hide parameters" in caplog.text
    engine.dispose()


def test_table_name_length_limit(backend_url: str) -> None:
    from zoho_sa_store.migrate import downgrade, upgrade

    longest = "t" * 29
    upgrade(backend_url, table_name=longest)
    try:
        with SQLAlchemyTokenStore(backend_url, table_name=longest) as custom:
            assert saved(custom).get_id() is not None
    finally:
        downgrade(backend_url, "base", table_name=longest, drop_data=True)
    with pytest.raises(ValueError, match="at most 29"):
        SQLAlchemyTokenStore(backend_url, table_name="t" * 30)


def test_iter_tokens_streams_every_row_in_batches(store: SQLAlchemyTokenStore) -> None:
    ids = {saved(store, f"user{i}@example.com", refresh=f"1000.r{i}").get_id() for i in range(7)}
    streamed = list(store.iter_tokens(batch=3))
    assert [t.get_id() for t in streamed] == sorted(ids)
    assert [values(t) for t in streamed] == [values(t) for t in store.get_tokens()]
    with pytest.raises(ValueError, match="positive int"):
        next(store.iter_tokens(batch=0))


def test_an_engine_of_the_callers_own(backend_url: str) -> None:
    """A plain engine (the driver's own transactions): saves are committed all the same."""
    from sqlalchemy import create_engine

    engine = create_engine(backend_url, hide_parameters=True)
    try:
        with SQLAlchemyTokenStore(engine=engine) as own:
            own.delete_tokens()
            t = saved(own)
            own.save_token(OAuthToken(id=t.get_id(), access_token="1000.by-id"))
        with SQLAlchemyTokenStore(backend_url) as other:
            found = other.find_token_by_id(t.get_id())
            assert found is not None and found.get_access_token() == "1000.by-id"
    finally:
        engine.dispose()
