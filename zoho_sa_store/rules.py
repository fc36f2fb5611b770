"""The SDK's lookup rules for ``find_token`` and ``save_token``, as a table.

Read off ``zohocrmsdk/src/com/zoho/api/authenticator/store/db_store.py`` and
``file_store.py`` (the SDK's own stores), with the faults listed in the project's
token-store contract fixed. The FIRST rule whose condition holds decides the lookup; blank
strings count as absent (see :func:`zoho_sa_store.tokens.token_fields`).

=====  =====================================================  ===============================
 rule   the given token has                                    the row where
=====  =====================================================  ===============================
 id     an id                                                  id = it, and every identifying
                                                               value the token has (user
                                                               name, client id and secret,
                                                               refresh, access, grant token)
                                                               equals the row's
 user   a user_signature with a non-blank name                 user_name = name (and
                                                               client_id = it, when given);
                                                               newest saved first
 access an access_token, and neither client_id nor secret      access_token = it
 grant  client_id and client_secret, and a grant_token         grant_token = it
 refresh client_id and client_secret, and a refresh_token      refresh_token = it
=====  =====================================================  ===============================

A token with an id is looked up by that id, as the SDK's ``OAuthToken.get_token`` does
(``find_token_by_id`` whenever the token has an id). Its other values only narrow the match:
a token with one row's id and another row's user name or secrets finds nothing, so
``find_token`` never hands out one row's id carrying another row's secrets (which the
caller's ``delete_token(id)`` would then apply to the wrong row).

No rule: no lookup at all (never "the first row of the table").
Nothing here does I/O: :func:`lookup` maps a token's fields to column = value criteria.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from zoho_sa_store.tokens import TokenFields


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: when it applies, and the columns it matches on."""

    name: str
    applies: Callable[[TokenFields], bool]
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()
    """Columns matched too when the token has a value for them."""


def _has_client(t: TokenFields) -> bool:
    return t.client_id is not None and t.client_secret is not None


IDENTIFYING = (
    "user_name",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "grant_token",
)
"""The values a token with an id must share with that row to match it."""

RULES: tuple[Rule, ...] = (
    Rule("id", lambda t: t.id is not None, ("id",), optional=IDENTIFYING),
    Rule("user", lambda t: t.user_name is not None, ("user_name",), optional=("client_id",)),
    Rule(
        "access",
        lambda t: t.access_token is not None and t.client_id is None and t.client_secret is None,
        ("access_token",),
    ),
    Rule("grant", lambda t: _has_client(t) and t.grant_token is not None, ("grant_token",)),
    Rule("refresh", lambda t: _has_client(t) and t.refresh_token is not None, ("refresh_token",)),
)


@dataclass(frozen=True, slots=True)
class Lookup:
    """The rule that applies and its criteria, as (column name, exact value) pairs."""

    rule: str
    criteria: tuple[tuple[str, str], ...]


def lookup(token: TokenFields, rules: tuple[Rule, ...] = RULES) -> Lookup | None:
    """The first rule that applies to ``token``, with its criteria; None when none applies."""
    for rule in rules:
        if rule.applies(token):
            names = rule.columns
            if rule.optional:
                names += tuple([c for c in rule.optional if getattr(token, c) is not None])
            return Lookup(rule.name, tuple([(c, getattr(token, c)) for c in names]))
    return None


SAVE_RULES = tuple(rule for rule in RULES if rule.name != "id")
"""``save_token`` updates the row with the token's id first (by id alone: the SDK's save
after a refresh), then looks a row up by the rules without the id rule."""


def save_key(found: Lookup) -> str | None:
    """The ``save_key`` of a row inserted for a token the save rules looked up by ``found``.

    None for the user rule: ``(user_name, client_id)`` is unique already. Otherwise the
    SHA-256 (hex) of the rule's criteria, so two workers inserting the same token without a
    user name compute the same key and the table's unique constraint admits one row.
    """
    if found.rule == "user":
        return None
    return hashlib.sha256(repr(found.criteria).encode()).hexdigest()
