"""Sealing secrets at the edge of the row: the store's one place for encrypted values.

The store calls one :class:`Sealing` where values enter and leave the table: before a
write (:meth:`Sealing.sealed`), to turn a rule's lookup into stored criteria
(:meth:`Sealing.search`), and after a read (:meth:`Sealing.opened`). Without keys it
changes nothing (plain-text mode). The cipher itself is :mod:`zoho_sa_store.cipher`.

With keys, ``client_secret``, ``refresh_token``, ``access_token`` and ``grant_token`` are
stored sealed, and lookups by token compare the ``<column>_digest`` columns, one digest per
configured key (``IN``) while a rotation is under way. A row's ``key_id`` column names the
key that sealed all of its secrets (NULL: plain): every write either keeps the row under the
current key or rewrites all of it. Ids never change (every update is by id), which is what
makes the row id bindable into each sealed value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from zoho_sa_store.cipher import DIGEST_COLUMNS, FORMAT, SECRET_COLUMNS, Cipher
from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.rules import Lookup, save_key
from zoho_sa_store.tokens import COLUMNS, TokenFields

__all__ = ["DIGEST_COLUMNS", "SECRET_COLUMNS", "Criteria", "Sealing", "Search"]

_NOTHING = TokenFields()
Criteria = tuple[tuple[str, "str | tuple[str, ...]"], ...]
"""SQL criteria: (column, value) pairs; a tuple value means ``column IN (values)``."""


class Search(NamedTuple):
    """A rule's lookup as stored criteria.

    Attributes:
        criteria: what the SELECT compares (digests instead of tokens when keyed).
        fallback: criteria for a plain row (not yet converted) when ``criteria`` finds
            nothing; None when the first lookup covers plain rows too.
        check: (column, value) pairs compared with the opened row in Python (the id
            rule's narrowing on secrets, which have no digest or are not looked up by it).
    """

    criteria: Criteria
    fallback: Criteria | None = None
    check: tuple[tuple[str, str], ...] = ()

    def matches(self, row: TokenFields) -> bool:
        """True when the opened row holds every value of :attr:`check`."""
        return all(getattr(row, column) == value for column, value in self.check)


class Sealing(Cipher):
    """The sealing edge of one token table (a :class:`~zoho_sa_store.cipher.Cipher`).

    Args:
        keyring: the keys (None: plain-text mode, nothing is sealed).
        table_name: the table, bound into every sealed value.

    Raises:
        KeyringError: the keyring has no 32-byte key for one of its ids.
    """

    # -- rows ---------------------------------------------------------------------------

    def sealed(
        self, row_id: str, values: Mapping[str, Any], *, plain: bool = False
    ) -> dict[str, Any]:
        """The values to write into row ``row_id``: secrets sealed, digests, ``key_id``.

        Without keys: ``values`` as given. ``plain`` (a rotation back to plain text):
        secrets as given, with the digests of the token columns in ``values`` and
        ``key_id`` set to None. A secret given as None stays None, and so does its digest.
        """
        out = dict(values)
        if not self.keyed:
            return out
        if plain:
            out.update({DIGEST_COLUMNS[c]: None for c in DIGEST_COLUMNS if c in values})
            out["key_id"] = None
            return out
        for column in SECRET_COLUMNS:
            value = values.get(column)
            if column in values and value is not None:
                out[column] = self.seal_value(column, row_id, value)
            if column in DIGEST_COLUMNS and column in values:
                digest = None if value is None else self.digest(column, value)
                out[DIGEST_COLUMNS[column]] = digest
        out["key_id"] = self.current_id
        return out

    def opened(
        self, row: TokenFields, key_id: str | None, known: TokenFields | None = None
    ) -> TokenFields:
        """The row with its secrets opened; a row with ``key_id`` None is plain already.

        ``known``: the caller's own values (``find_token``'s token). A secret it holds is
        not decrypted: its value stands in for the row's, as the merge into that token
        keeps the token's own values anyway (a stored None stays None).

        Raises:
            TokenStoreError: see :meth:`open_value`.
        """
        if key_id is None:
            sealed = [name for name in SECRET_COLUMNS if _looks_sealed(getattr(row, name))]
            if sealed:  # a sealed table copied without key_id, a hand-edited row
                raise TokenStoreError(
                    f"token id {row.id!r} holds an encrypted {sealed[0]} but no key id:"
                    " its row was copied or edited outside the store; it is not handed out"
                )
            return row
        row_id = row.id
        assert row_id is not None
        keys = self._keys.get(key_id)
        if keys is None:
            raise self._not_configured(row_id, key_id)
        tail, open_, given = f"{row_id}\x00{key_id}".encode(), self._open, known or _NOTHING
        secret, refresh, access, grant = (
            row.client_secret,
            row.refresh_token,
            row.access_token,
            row.grant_token,
        )
        # a secret the caller holds stands in for the row's (the merge keeps the caller's)
        if secret is not None:
            secret = given.client_secret or open_(keys, "client_secret", tail, key_id, secret)
        if refresh is not None:
            refresh = given.refresh_token or open_(keys, "refresh_token", tail, key_id, refresh)
        if access is not None:
            access = given.access_token or open_(keys, "access_token", tail, key_id, access)
        if grant is not None:
            grant = given.grant_token or open_(keys, "grant_token", tail, key_id, grant)
        return TokenFields(
            row_id,
            row.user_name,
            row.client_id,
            secret,
            refresh,
            access,
            grant,
            row.expiry_time,
            row.redirect_url,
            row.api_domain,
        )

    def open_row(self, mapping: Any) -> TokenFields:
        """A row read with the SDK's columns and ``key_id``, opened (``client_id`` "": None)."""
        row = TokenFields(**{name: (mapping[name] or None) for name in COLUMNS})
        return self.opened(row, mapping["key_id"])

    # -- lookups ------------------------------------------------------------------------

    def search(self, found: Lookup) -> Search:
        """A rule's criteria as the table stores them.

        Plain-text mode: the criteria as they are. Keyed: a token looked up by the access,
        grant or refresh rule is compared by its digests (under every configured key), with
        a second lookup by the raw token for plain rows, only when the first finds nothing.
        The id rule's secrets are compared after the row is opened.
        """
        if not self.keyed or found.rule == "user":  # the user rule compares no secret
            return Search(found.criteria)
        if found.rule != "id" and len(found.criteria) == 1:  # access, grant or refresh
            column, value = found.criteria[0]
            if column in DIGEST_COLUMNS:
                digests = self.digests(column, value)
                stored = digests[0] if len(digests) == 1 else digests
                return Search(((DIGEST_COLUMNS[column], stored),), found.criteria)
        criteria: list[tuple[str, str | tuple[str, ...]]] = []
        check: list[tuple[str, str]] = []
        digested = False
        for column, value in found.criteria:
            if column in SECRET_COLUMNS and (found.rule == "id" or column not in DIGEST_COLUMNS):
                check.append((column, value))
            elif column in DIGEST_COLUMNS:
                digests = self.digests(column, value)
                criteria.append(
                    (DIGEST_COLUMNS[column], digests[0] if len(digests) == 1 else digests)
                )
                digested = True
            else:
                criteria.append((column, value))
        return Search(tuple(criteria), found.criteria if digested else None, tuple(check))

    def save_key(self, found: Lookup) -> str | None:
        """The ``save_key`` an insert writes: :func:`~zoho_sa_store.rules.save_key`,
        keyed (HMAC-SHA256 under the current key's ``save_key`` sub-key) when keyed."""
        plain = save_key(found)
        if plain is None or self.current_id is None:
            return plain
        return self.keyed_save_key(plain, self.current_id)

    def save_keys(self, found: Lookup) -> str | tuple[str, ...] | None:
        """Every ``save_key`` a row of this token may carry: under each configured key and
        unkeyed (a plain row), for the lookup of the row the token inserted."""
        plain = save_key(found)
        if plain is None or not self.keyed:
            return plain
        return (*(self.keyed_save_key(plain, key_id) for key_id in self.key_ids), plain)


_SEALED_PREFIX = FORMAT + ":"


def _looks_sealed(value: str | None) -> bool:
    """True for a value in the sealed format (``zss1:``...), which no Zoho token has."""
    return value is not None and value.startswith(_SEALED_PREFIX)
