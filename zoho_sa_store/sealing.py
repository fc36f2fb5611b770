"""Sealing secrets at the edge of the row: AES-256-GCM values and blind-index digests.

The store calls one :class:`Sealing` where values enter and leave the table: before a
write (:meth:`Sealing.sealed`), to turn a rule's lookup into stored criteria
(:meth:`Sealing.search`), and after a read (:meth:`Sealing.opened`). Without keys it
changes nothing (plain-text mode).

With keys, ``client_secret``, ``refresh_token``, ``access_token`` and ``grant_token`` are
stored sealed as ``zss1:<key id>:<base64 of nonce, ciphertext and tag>``:
AES-256-GCM with a random 96-bit nonce, and as associated data the format version, table,
column, row id and key id, so a value copied to another column, row or table fails to open.
Ids never change (every update is by id), which is what makes the row id bindable.

Lookups by token compare HMAC-SHA256 digests (hex) in ``<column>_digest`` columns, one
digest per configured key (``IN``) while a rotation is under way. Every purpose has its own
sub-key derived from the configured key with HKDF-SHA256 (``info`` names the purpose): one
for the cipher, one per digest column, one for ``save_key``; the key itself is never used
directly. A row's ``key_id`` column names the key that sealed all of its secrets (NULL:
plain): every write either keeps the row under the current key or rewrites all of it.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.keyring import KEYS_ENV_VAR, Keyring
from zoho_sa_store.rules import Lookup, save_key
from zoho_sa_store.tokens import COLUMNS, TokenFields

FORMAT = "zss1"
"""The sealed format's name and version: the prefix of every sealed value."""
NONCE_BYTES = 12
SECRET_COLUMNS = ("client_secret", "refresh_token", "access_token", "grant_token")
DIGEST_COLUMNS = {
    "access_token": "access_token_digest",
    "refresh_token": "refresh_token_digest",
    "grant_token": "grant_token_digest",
}
"""The token columns the rules look rows up by, and their blind-index columns."""

_NOTHING = TokenFields()
Criteria = tuple[tuple[str, "str | tuple[str, ...]"], ...]
"""SQL criteria: (column, value) pairs; a tuple value means ``column IN (values)``."""


def _derive(key: bytes, purpose: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(key)


class _SubKeys:
    """The sub-keys of one configured key, each derived for one purpose only."""

    __slots__ = ("aead", "digest", "prefix", "save")

    def __init__(self, key_id: str, key: bytes) -> None:
        self.prefix = f"{FORMAT}:{key_id}:"
        self.aead = AESGCM(_derive(key, f"zoho-sa-store/{FORMAT}/aes-256-gcm"))
        self.digest = {  # keyed once: each digest copies its column's HMAC state
            column: hmac.new(
                _derive(key, f"zoho-sa-store/{FORMAT}/digest/{column}"), digestmod=hashlib.sha256
            )
            for column in DIGEST_COLUMNS
        }
        self.save = _derive(key, f"zoho-sa-store/{FORMAT}/save_key")

    def __repr__(self) -> str:
        return "_SubKeys(...)"


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


class Sealing:
    """The sealing edge of one token table.

    Args:
        keyring: the keys (None: plain-text mode, nothing is sealed).
        table_name: the table, bound into every sealed value.

    Raises:
        KeyringError: the keyring has no 32-byte key for one of its ids.
    """

    def __init__(self, keyring: Keyring | None, table_name: str) -> None:
        self.table_name = table_name
        self.keyring = keyring
        self._keys: dict[str, _SubKeys] = {}
        if keyring is not None:
            from zoho_sa_store.keyring import KEY_BYTES, KeyringError

            for key_id in keyring.ids():
                key = keyring.key(key_id)
                if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                    raise KeyringError(f"key id {key_id!r}: the keyring has no 32-byte key")
                self._keys[key_id] = _SubKeys(key_id, key)
        self._aad_heads = {
            column: f"{FORMAT}\x00{table_name}\x00{column}\x00".encode()
            for column in SECRET_COLUMNS
        }
        self._macs = {
            column: tuple(keys.digest[column] for keys in self._keys.values())
            for column in DIGEST_COLUMNS
        }
        self.key_ids: tuple[str, ...] = tuple(self._keys)
        self.current_id: str | None = self.key_ids[0] if self.key_ids else None

    @property
    def keyed(self) -> bool:
        """True when values are sealed (keys are configured)."""
        return self.current_id is not None

    def __repr__(self) -> str:
        return f"Sealing(table={self.table_name!r}, key_ids={self.key_ids!r})"

    # -- values -------------------------------------------------------------------------

    def _aad(self, column: str, row_id: str, key_id: str) -> bytes:
        """The associated data: format, table, column, row id and key id, NUL-separated."""
        return self._aad_heads[column] + f"{row_id}\x00{key_id}".encode()

    def seal_value(self, column: str, row_id: str, value: str) -> str:
        """``value`` sealed under the current key for ``column`` of row ``row_id``."""
        key_id = self.current_id
        assert key_id is not None, "seal_value needs keys"
        nonce = os.urandom(NONCE_BYTES)
        data = self._keys[key_id].aead.encrypt(
            nonce, value.encode("utf-8"), self._aad(column, row_id, key_id)
        )
        body = binascii.b2a_base64(nonce + data, newline=False).decode("ascii")
        return f"{FORMAT}:{key_id}:{body}"

    def open_value(self, column: str, row_id: str, key_id: str, value: str) -> str:
        """The plain text of a value sealed for ``column`` of row ``row_id`` under ``key_id``.

        Raises:
            TokenStoreError: the key id is not configured, or the value is not a sealed
                value of that key, column and row (a wrong key under that id, an altered
                value, or one copied from elsewhere). Names the key id and row id only.
        """
        keys = self._keys.get(key_id)
        if keys is None:
            raise self._not_configured(row_id, key_id)
        return self._open(keys, column, f"{row_id}\x00{key_id}".encode(), key_id, value)

    def _open(self, keys: _SubKeys, column: str, tail: bytes, key_id: str, value: str) -> str:
        prefix = keys.prefix
        try:
            if not value.startswith(prefix):
                raise ValueError("not sealed under the row's key")
            # a stray character is dropped here, and then fails the tag check
            raw = binascii.a2b_base64(value[len(prefix) :])
            if len(raw) < NONCE_BYTES + 16:
                raise ValueError("too short")
            aad = self._aad_heads[column] + tail
            return keys.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):  # UnicodeError is a ValueError
            row_id = tail.decode().partition("\x00")[0]
            raise TokenStoreError(
                f"token id {row_id!r}: its {column} does not open under key id {key_id!r}"
                " (a wrong key under that id, or a value altered or copied from another row"
                " or column)"
            ) from None

    def _not_configured(self, row_id: str, key_id: str) -> TokenStoreError:
        if not self._keys:
            return TokenStoreError(
                f"token id {row_id!r} is encrypted under key id {key_id!r} and this store"
                f" has no keys: configure them ({KEYS_ENV_VAR}, keys= or --keys)"
            )
        return TokenStoreError(
            f"token id {row_id!r} is encrypted under key id {key_id!r}, which is not"
            f" configured (configured: {', '.join(self.key_ids)})"
        )

    def digest(self, column: str, value: str, key_id: str | None = None) -> str:
        """The blind-index digest (hex HMAC-SHA256) of a token for ``column``."""
        mac = self._keys[key_id or self.current_id or ""].digest[column].copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()

    def digests(self, column: str, value: str) -> tuple[str, ...]:
        """The value's digest under every configured key, the current key's first."""
        data = value.encode("utf-8")
        out = []
        for base in self._macs[column]:
            mac = base.copy()
            mac.update(data)
            out.append(mac.hexdigest())
        return tuple(out)

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

    def keyed_save_key(self, plain: str, key_id: str) -> str:
        """The plain ``save_key`` keyed under ``key_id``."""
        return hmac.digest(self._keys[key_id].save, plain.encode(), "sha256").hex()

    def save_keys(self, found: Lookup) -> str | tuple[str, ...] | None:
        """Every ``save_key`` a row of this token may carry: under each configured key and
        unkeyed (a plain row), for the lookup of the row the token inserted."""
        plain = save_key(found)
        if plain is None or not self.keyed:
            return plain
        return (*(self.keyed_save_key(plain, key_id) for key_id in self.key_ids), plain)
