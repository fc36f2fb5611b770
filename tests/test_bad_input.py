"""Bad input to every public method: a clear TypeError/ValueError, and the table unchanged."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.refresh import RefreshPolicy

MB = "x" * 1_000_000


def with_field(setter: str, value: object, **kw: Any) -> OAuthToken:
    """A valid token, then one field set to ``value`` through the SDK's own setter."""
    t = token("ann@example.com", access="1000.a", refresh="1000.r", **kw)
    getattr(t, setter)(value)
    return t


def signature(name: object) -> OAuthToken:
    return OAuthToken(user_signature=UserSignature(name), access_token="1000.a")


Call = Callable[[SQLAlchemyTokenStore], object]
CORPUS: list[tuple[str, Call, type[Exception], str]] = [
    # find_token
    (
        "find_token(dict)",
        lambda s: s.find_token({"user_name": "ann"}),
        TypeError,
        "expected an OAuthToken",
    ),
    ("find_token(None)", lambda s: s.find_token(None), TypeError, "expected an OAuthToken"),
    ("find_token(str)", lambda s: s.find_token("1000.a"), TypeError, "expected an OAuthToken"),
    ("find_token(int)", lambda s: s.find_token(7), TypeError, "expected an OAuthToken"),
    ("find_token(bytes)", lambda s: s.find_token(b"1000.a"), TypeError, "expected an OAuthToken"),
    (
        "signature name int",
        lambda s: s.find_token(signature(42)),
        TypeError,
        "user_signature name must be a str",
    ),
    (
        "signature name bytes",
        lambda s: s.find_token(signature(b"ann")),
        TypeError,
        "user_signature name must be a str",
    ),
    (
        "signature name list",
        lambda s: s.find_token(signature(["a"])),
        TypeError,
        "user_signature name must be a str",
    ),
    (
        "signature not a UserSignature",
        lambda s: s.find_token(with_field("set_user_signature", "ann")),
        TypeError,
        "must be a UserSignature",
    ),
    (
        "refresh bytes",
        lambda s: s.find_token(with_field("set_refresh_token", b"1000.r")),
        TypeError,
        "refresh_token must be a str",
    ),
    (
        "client_id int",
        lambda s: s.find_token(with_field("set_client_id", 1000)),
        TypeError,
        "client_id must be a str",
    ),
    (
        "access dict",
        lambda s: s.find_token(with_field("set_access_token", {"a": 1})),
        TypeError,
        "access_token must be a str",
    ),
    ("id int", lambda s: s.find_token(with_field("set_id", 5)), TypeError, "id must be a str"),
    (
        "expires int",
        lambda s: s.find_token(with_field("set_expires_in", 1700000000000)),
        TypeError,
        "expires_in must be a str",
    ),
    ("NUL in user name", lambda s: s.find_token(signature("ann\x00@x.com")), ValueError, "NUL"),
    ("NUL in refresh", lambda s: s.find_token(token(refresh="1000.\x00r")), ValueError, "NUL"),
    (
        "lone surrogate in user",
        lambda s: s.find_token(signature("ann\udcff")),
        ValueError,
        "surrogate",
    ),
    (
        "lone surrogate in grant",
        lambda s: s.find_token(token(grant="1000.\ud800")),
        ValueError,
        "surrogate",
    ),
    ("1 MB user name", lambda s: s.find_token(signature(MB)), ValueError, "longer than 255"),
    (
        "1 MB refresh token",
        lambda s: s.find_token(token(refresh=MB)),
        ValueError,
        "longer than 8192",
    ),
    (
        "1 MB client id",
        lambda s: s.find_token(token(refresh="1000.r", client=(MB, "s"))),
        ValueError,
        "longer than 255",
    ),
    # find_token_by_id / delete_token
    ("find_token_by_id(int)", lambda s: s.find_token_by_id(5), TypeError, "id must be a str"),
    ("find_token_by_id(None)", lambda s: s.find_token_by_id(None), TypeError, "id must be a str"),
    ("find_token_by_id(bytes)", lambda s: s.find_token_by_id(b"5"), TypeError, "id must be a str"),
    ("find_token_by_id(NUL)", lambda s: s.find_token_by_id("5\x00"), ValueError, "NUL"),
    ("find_token_by_id(1 MB)", lambda s: s.find_token_by_id(MB), ValueError, "longer than 64"),
    (
        "find_token_by_id(surrogate)",
        lambda s: s.find_token_by_id("\ud800"),
        ValueError,
        "surrogate",
    ),
    ("delete_token(int)", lambda s: s.delete_token(5), TypeError, "id must be a str"),
    ("delete_token(None)", lambda s: s.delete_token(None), TypeError, "id must be a str"),
    ("delete_token(list)", lambda s: s.delete_token(["5"]), TypeError, "id must be a str"),
    ("delete_token(NUL)", lambda s: s.delete_token("\x00"), ValueError, "NUL"),
    ("delete_token(1 MB)", lambda s: s.delete_token(MB), ValueError, "longer than 64"),
    # save_token
    (
        "save_token(dict)",
        lambda s: s.save_token({"access_token": "1000.a"}),
        TypeError,
        "expected an OAuthToken",
    ),
    ("save_token(None)", lambda s: s.save_token(None), TypeError, "expected an OAuthToken"),
    ("save_token(str)", lambda s: s.save_token("1000.a"), TypeError, "expected an OAuthToken"),
    (
        "save nothing to store",
        lambda s: s.save_token(OAuthToken(user_signature=UserSignature("ann"))),
        ValueError,
        "nothing to store",
    ),
    (
        "save blank tokens only",
        lambda s: s.save_token(OAuthToken(id="x", access_token="   ")),
        ValueError,
        "nothing to store",
    ),
    (
        "save 1 MB access token",
        lambda s: s.save_token(token("ann@example.com", access=MB)),
        ValueError,
        "longer than 8192",
    ),
    (
        "save 9000-char access",
        lambda s: s.save_token(token("a@b.c", access="1000." + "x" * 9000)),
        ValueError,
        "longer than 8192",
    ),
    (
        "save NUL in access",
        lambda s: s.save_token(token("ann@example.com", access="1000.\x00")),
        ValueError,
        "NUL",
    ),
    (
        "save NUL in secret",
        lambda s: s.save_token(token("ann@example.com", access="1000.a", client=("c", "s\x00"))),
        ValueError,
        "NUL",
    ),
    (
        "save surrogate in user",
        lambda s: s.save_token(token("\udc80@x.com", access="1000.a")),
        ValueError,
        "surrogate",
    ),
    (
        "save expires not digits",
        lambda s: s.save_token(token("a@b.c", access="1", expires="soon")),
        ValueError,
        "digits",
    ),
    (
        "save expires negative",
        lambda s: s.save_token(token("a@b.c", access="1", expires="-5")),
        ValueError,
        "digits",
    ),
    (
        "save expires SQL",
        lambda s: s.save_token(token("a@b.c", access="1", expires="1; DROP TABLE x")),
        ValueError,
        "digits",
    ),
    (
        "save expires too long",
        lambda s: s.save_token(token("a@b.c", access="1", expires="9" * 21)),
        ValueError,
        "longer than 20",
    ),
    (
        "save expires epoch microseconds",
        lambda s: s.save_token(token("a@b.c", access="1", expires="1700000000000000")),
        ValueError,
        "13 digits",
    ),
    (
        "save expires epoch seconds",
        lambda s: s.save_token(token("a@b.c", access="1", expires="1700000000")),
        ValueError,
        "13 digits",
    ),
    (
        "save expires zero",
        lambda s: s.save_token(token("a@b.c", access="1", expires="0")),
        ValueError,
        "13 digits",
    ),
    (
        "save expires 10**13",
        lambda s: s.save_token(token("a@b.c", access="1", expires=str(10**13))),
        ValueError,
        "13 digits",
    ),
    (
        "save expires just below 10**12",
        lambda s: s.save_token(token("a@b.c", access="1", expires=str(10**12 - 1))),
        ValueError,
        "13 digits",
    ),
    (
        "save by id expires microseconds",
        lambda s: s.save_token(with_field("set_expires_in", "1700000000000000", id="x1")),
        ValueError,
        "13 digits",
    ),
    (
        "save 1 MB redirect url",
        lambda s: s.save_token(with_field("set_redirect_url", MB)),
        ValueError,
        "longer than 1024",
    ),
    (
        "save 1 MB api_domain",
        lambda s: s.save_token(with_field("set_api_domain", MB)),
        ValueError,
        "longer than 255",
    ),
    (
        "save id float",
        lambda s: s.save_token(with_field("set_id", 1.5)),
        TypeError,
        "id must be a str",
    ),
    (
        "save signature name None-like object",
        lambda s: s.save_token(with_field("set_user_signature", UserSignature(object()))),
        TypeError,
        "user_signature name must be a str",
    ),
    # constructor and migrations
    (
        "table name with SQL",
        lambda s: SQLAlchemyTokenStore(s.engine.url, table_name="tok; drop table x"),
        ValueError,
        "invalid table name",
    ),
    (
        "table name blank",
        lambda s: SQLAlchemyTokenStore(s.engine.url, table_name=""),
        ValueError,
        "invalid table name",
    ),
    (
        "table name int",
        lambda s: SQLAlchemyTokenStore(s.engine.url, table_name=5),
        TypeError,
        "table_name must be a str",
    ),
    ("url int", lambda s: SQLAlchemyTokenStore(5), TypeError, "url must be a str"),
    ("url bytes", lambda s: SQLAlchemyTokenStore(b"sqlite://"), TypeError, "url must be a str"),
    (
        "engine and url",
        lambda s: SQLAlchemyTokenStore("sqlite://", engine=s.engine),
        TypeError,
        "not both",
    ),
    (
        "engine not an Engine",
        lambda s: SQLAlchemyTokenStore(engine="sqlite://"),
        TypeError,
        "must be a sqlalchemy Engine",
    ),
    (
        "refresh policy str",
        lambda s: SQLAlchemyTokenStore(s.engine.url, refresh="yes"),
        TypeError,
        "refresh must be a bool",
    ),
    (
        "refresh window negative",
        lambda s: SQLAlchemyTokenStore(s.engine.url, refresh=RefreshPolicy(window=-1)),
        ValueError,
        "seconds >= 0",
    ),
    (
        "refresh window an hour",
        lambda s: SQLAlchemyTokenStore(s.engine.url, refresh=RefreshPolicy(window=3600)),
        ValueError,
        "at most 1800 seconds",
    ),
    (
        "upgrade table name",
        lambda s: upgrade(s.engine, table_name="x-y"),
        ValueError,
        "invalid table name",
    ),
    ("upgrade url int", lambda s: upgrade(42), TypeError, "url must be a str"),
]


def digest(store: SQLAlchemyTokenStore) -> str:
    """A digest of every row and column of the token table."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(store.table).order_by(store.table.c.id)).all()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


def test_corpus_size() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize(("name", "call", "error", "message"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_is_refused_and_changes_nothing(
    store: SQLAlchemyTokenStore, name: str, call: Call, error: type[Exception], message: str
) -> None:
    for i, user in enumerate(["ann@example.com", "o'neil@example.com", "x' OR '1'='1"]):
        store.save_token(
            token(user, access=f"1000.a{i}", refresh=f"1000.r{i}", expires="1700000000000")
        )
    before = digest(store)
    with pytest.raises(error, match=message):
        call(store)
    assert digest(store) == before
