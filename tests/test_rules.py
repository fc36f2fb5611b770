"""The lookup-rule table and the token conversions, without a database."""

from __future__ import annotations

import pytest
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.factories import token
from zoho_sa_store.rules import SAVE_RULES, Lookup, lookup
from zoho_sa_store.tokens import TokenFields, mask, merge_into, new_token, token_fields


def fields(**kw: str) -> TokenFields:
    return TokenFields(**kw)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            fields(user_name="u", client_id="c", access_token="a"),
            Lookup("user", (("user_name", "u"), ("client_id", "c"))),
        ),
        (fields(user_name="u", refresh_token="r"), Lookup("user", (("user_name", "u"),))),
        (fields(access_token="a", refresh_token="r"), Lookup("access", (("access_token", "a"),))),
        (fields(access_token="a", client_id="c"), None),
        (
            fields(client_id="c", client_secret="s", grant_token="g", refresh_token="r"),
            Lookup("grant", (("grant_token", "g"),)),
        ),
        (
            fields(client_id="c", client_secret="s", refresh_token="r"),
            Lookup("refresh", (("refresh_token", "r"),)),
        ),
        (fields(client_id="c", refresh_token="r"), None),
        (fields(id="7"), Lookup("id", (("id", "7"),))),
        (
            fields(id="7", client_id="c", client_secret="s", refresh_token="r"),
            Lookup(
                "id",
                (("id", "7"), ("client_id", "c"), ("client_secret", "s"), ("refresh_token", "r")),
            ),
        ),
        (
            fields(id="7", user_name="bo", access_token="a", expiry_time="1700000000000"),
            Lookup("id", (("id", "7"), ("user_name", "bo"), ("access_token", "a"))),
        ),
        (fields(), None),
    ],
)
def test_first_applicable_rule(given: TokenFields, expected: Lookup | None) -> None:
    assert lookup(given) == expected


def test_save_rules_never_match_by_id_alone() -> None:
    assert lookup(fields(id="7"), SAVE_RULES) is None


def test_blank_strings_are_absent() -> None:
    t = token("  ", refresh="", access="1000.a")
    t.set_client_id("")
    t.set_client_secret(" ")
    got = token_fields(t)
    assert (got.user_name, got.client_id, got.client_secret, got.refresh_token) == (None,) * 4
    assert lookup(got) == Lookup("access", (("access_token", "1000.a"),))


def test_merge_fills_only_none_fields_and_sets_the_user() -> None:
    t = OAuthToken(id="5", access_token="")
    row = fields(
        id="9", user_name="u@x", access_token="1000.a", refresh_token="1000.r", expiry_time="5"
    )
    assert merge_into(t, row) is t
    assert (t.get_id(), t.get_access_token(), t.get_refresh_token(), t.get_expires_in()) == (
        "5",
        "",
        "1000.r",
        "5",
    )
    assert t.get_user_signature().get_name() == "u@x"


def test_new_token_is_built_through_the_constructor() -> None:
    t = new_token(fields(id="9", user_name="u@x", refresh_token="1000.r", expiry_time="12"))
    assert t._OAuthToken__find_user is True
    assert (t.get_id(), t.get_refresh_token(), t.get_expires_in()) == ("9", "1000.r", "12")
    assert t.get_user_signature().get_name() == "u@x"


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        (None, None),
        ("short", "…"),
        ("1000.abcdef0123456789.f3", "1000.ab…f3"),
        ("client-secret-value", "cl…ue"),
    ],
)
def test_mask(secret: str | None, shown: str | None) -> None:
    assert mask(secret) == shown


def test_user_signature_of_wrong_type() -> None:
    t = OAuthToken(user_signature=UserSignature(["not", "a", "str"]))
    with pytest.raises(TypeError, match="must be a str or None, not list"):
        token_fields(t)


def test_leak_detector_finds_a_secret_in_a_message() -> None:
    from tests.leakcheck import find_leaks

    messages = ["save_token failed (IntegrityError 1062)", "token 1000.abcdef123 refreshed"]
    assert find_leaks(messages, ["1000.abcdef123", "1000.other99"]) == [
        ("1000.abcdef123", "token 1000.abcdef123 refreshed")
    ]
