"""Encryption keys: where they come from, which one is current, and nothing else.

Keys come from ``SQLAlchemyTokenStore(url, keys=...)``, else ``$ZOHO_SA_STORE_KEYS``: a
comma-separated list of ``KEY_ID:KEY`` entries, each ``KEY`` the urlsafe base64 of exactly
32 random bytes (:func:`new_entry` makes one; ``zoho-sa-store keygen`` prints one). The
first entry is the *current* key, which seals every value written; the others only open
values sealed under them, while a rotation (``zoho-sa-store rotate-keys``) moves their rows
to the current key.

``keys=`` also takes any object with the :class:`Keyring` shape, so keys can come from a
KMS or Vault (see the README's envelope-encryption example). No key ever appears in a
repr, log line, error message or CLI output: errors name the entry's position or key id.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

KEYS_ENV_VAR = "ZOHO_SA_STORE_KEYS"
KEY_BYTES = 32
"""Every key is 32 bytes (AES-256)."""
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")
"""A key id: 1 to 32 letters, digits, ``_`` or ``-`` (it is stored in each sealed value)."""


class KeyringError(ValueError):
    """The keys are malformed; the message names the entry or key id, never a key."""


@runtime_checkable
class Keyring(Protocol):
    """What the store needs of a keyring; implement it to plug in a KMS or Vault.

    ``current_id`` names the key that seals new values; ``ids()`` lists every key id that
    may open values (the current one first); ``key(id)`` returns that key's 32 bytes, or
    None for an id it does not hold. The store reads the ids once, when it is created, and
    asks for each key's bytes once (it derives its sub-keys from them and keeps those).
    """

    @property
    def current_id(self) -> str: ...

    def ids(self) -> Sequence[str]: ...

    def key(self, key_id: str) -> bytes | None: ...


class StaticKeyring:
    """A keyring held in memory, from ``KEY_ID:KEY`` entries or a mapping.

    Args:
        keys: ``{key_id: 32 bytes}`` in order, the current key first.

    Raises:
        KeyringError: no key, a key id that is not 1-32 of ``[A-Za-z0-9_-]``, or a key that
            is not 32 bytes.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise KeyringError("no encryption key given")
        for number, (key_id, key) in enumerate(keys.items(), start=1):
            if not isinstance(key_id, str) or not KEY_ID.match(key_id):
                raise KeyringError(
                    f"key {number}: the key id must be 1 to 32 letters, digits, '_' or '-'"
                )
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r}: a key must be exactly {KEY_BYTES} bytes")
        self._keys = dict(keys)

    @property
    def current_id(self) -> str:
        return next(iter(self._keys))

    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    def __repr__(self) -> str:
        return f"StaticKeyring(ids={self.ids()!r})"


def parse_keys(text: str, source: str = KEYS_ENV_VAR) -> StaticKeyring:
    """A keyring from ``KEY_ID:KEY,KEY_ID:KEY``; the first entry is the current key.

    Args:
        text: the entries; spaces around entries are ignored.
        source: where the text came from, for error messages (``--keys``, the variable).

    Raises:
        KeyringError: an empty list, an entry without ``KEY_ID:``, a bad key id, a key id
            given twice, or a key that is not the urlsafe base64 of exactly 32 bytes. The
            message names the entry's position and key id, never the key.
    """
    if not isinstance(text, str):
        raise TypeError(f"keys must be a str or a Keyring, not {type(text).__name__}")
    entries = [entry.strip() for entry in text.split(",")]
    if not any(entries):
        raise KeyringError(f"{source} holds no key (expected KEY_ID:KEY,...)")
    keys: dict[str, bytes] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{source} entry {number}"
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not key_id:
            raise KeyringError(f"{where} is not KEY_ID:KEY (zoho-sa-store keygen makes one)")
        if not KEY_ID.match(key_id):
            raise KeyringError(f"{where}: the key id must be 1 to 32 letters, digits, '_' or '-'")
        if key_id in keys:
            raise KeyringError(f"{where}: key id {key_id!r} is given twice")
        keys[key_id] = _decode(encoded.strip(), f"{where} (key id {key_id!r})")
    return StaticKeyring(keys)


_URLSAFE = re.compile(r"[A-Za-z0-9_-]*={0,2}\Z")


def _decode(encoded: str, where: str) -> bytes:
    if not _URLSAFE.match(encoded):
        raise KeyringError(f"{where}: the key is not urlsafe base64")
    padded = encoded + "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyringError(f"{where}: the key is not urlsafe base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"{where}: the key must be the urlsafe base64 of exactly {KEY_BYTES} bytes"
        )
    return key


def resolve_keys(keys: str | Keyring | None) -> Keyring | None:
    """The keyring for a store: ``keys`` itself, parsed, or ``$ZOHO_SA_STORE_KEYS``.

    None (and an unset or empty variable): no keys, values are stored in plain text.

    Raises:
        KeyringError: the text is malformed, or the keyring's current id is not among its
            ids or has no key.
        TypeError: ``keys`` is neither a str, a :class:`Keyring` nor None.
    """
    if keys is None:
        text = os.environ.get(KEYS_ENV_VAR, "")
        return parse_keys(text) if text.strip() else None
    if isinstance(keys, str):
        return parse_keys(keys, "keys")
    kind = type(keys)
    if not (hasattr(kind, "current_id") and callable(getattr(kind, "ids", None))):
        raise TypeError(f"keys must be a str or a Keyring, not {kind.__name__}")
    if not callable(getattr(kind, "key", None)):
        raise TypeError(f"keys must be a str or a Keyring, not {kind.__name__}")
    ids = tuple(keys.ids())
    if not ids or keys.current_id != ids[0]:
        raise KeyringError("the keyring's current_id must be the first of its ids()")
    for key_id in ids:
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise KeyringError("a key id must be 1 to 32 letters, digits, '_' or '-'")
    return keys


def new_entry(key_id: str | None = None) -> str:
    """A new ``KEY_ID:KEY`` entry: 32 bytes from :func:`secrets.token_bytes`.

    Args:
        key_id: the id to give it; default ``k`` and the current UTC date and time
            (``k20261129T2105``), unique enough to be told apart in a rotation.

    Raises:
        KeyringError: ``key_id`` is not 1 to 32 letters, digits, ``_`` or ``-``.
    """
    if key_id is None:
        from datetime import datetime, timezone

        key_id = "k" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    if not KEY_ID.match(key_id):
        raise KeyringError("the key id must be 1 to 32 letters, digits, '_' or '-'")
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    return f"{key_id}:{encoded}"
