"""The cipher of sealed values: AES-256-GCM, blind-index digests, HKDF sub-keys.

A value is sealed as ``zss1:<key id>:<base64 of nonce, ciphertext and tag>`` (standard
base64): AES-256-GCM with a random 96-bit nonce, and as associated data the format version,
table, column, row id and key id, so a value copied to another column, row or table fails
to open. Lookups compare HMAC-SHA256 digests (hex) of a token, one per configured key.
Every purpose has its own sub-key derived from the configured key with HKDF-SHA256
(``info`` names the purpose): one for the cipher, one per digest column, one for
``save_key``; the key itself is never used directly. Rows are :mod:`zoho_sa_store.sealing`'s
concern; this module knows values only.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.keyring import KEY_BYTES, KEYS_ENV_VAR, Keyring, KeyringError

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


class Cipher:
    """Seal and open the values of one token table under a keyring's keys.

    Args:
        keyring: the keys (None: no keys; nothing can be sealed or opened).
        table_name: the table, bound into every sealed value.

    Raises:
        KeyringError: the keyring has no 32-byte key for one of its ids.
    """

    def __init__(self, keyring: Keyring | None, table_name: str) -> None:
        self.table_name = table_name
        self.keyring = keyring
        self._keys: dict[str, _SubKeys] = {}
        if keyring is not None:
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
        return f"{type(self).__name__}(table={self.table_name!r}, key_ids={self.key_ids!r})"

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

    def keyed_save_key(self, plain: str, key_id: str) -> str:
        """The plain ``save_key`` keyed under ``key_id``."""
        return hmac.digest(self._keys[key_id].save, plain.encode(), "sha256").hex()
