"""Keys: parsing, strict errors that never show a key, the Keyring protocol, keygen."""

from __future__ import annotations

import base64
import re

import pytest
from click.testing import CliRunner

from zoho_sa_store.cli import main
from zoho_sa_store.keyring import (
    KEYS_ENV_VAR,
    Keyring,
    KeyringError,
    StaticKeyring,
    new_entry,
    parse_keys,
    resolve_keys,
)

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()
OTHER = base64.urlsafe_b64encode(bytes(range(1, 33))).decode()


def test_first_entry_is_current_and_every_id_opens() -> None:
    ring = parse_keys(f" new:{KEY} , old:{OTHER.rstrip('=')}")
    assert ring.current_id == "new"
    assert ring.ids() == ("new", "old")
    assert ring.key("new") == bytes(range(32))
    assert ring.key("old") == bytes(range(1, 33))  # padding is optional
    assert ring.key("gone") is None
    assert repr(ring) == "StaticKeyring(ids=('new', 'old'))"
    assert isinstance(ring, Keyring)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        (" , ", "holds no key"),
        (KEY, "entry 1 is not KEY_ID:KEY"),
        (f":{KEY}", "entry 1 is not KEY_ID:KEY"),
        (f"k1:{KEY},bad id:{KEY}", "entry 2: the key id must be"),
        (f"k1:{KEY},k1:{OTHER}", "entry 2: key id 'k1' is given twice"),
        (f"k1:{KEY[:-8]}", "exactly 32 bytes"),
        (f"k1:{KEY.rstrip('=')}AAAA", "exactly 32 bytes"),
        (f"k1:{KEY}AAAA", "not urlsafe base64"),
        ("k1:" + "!" * 43, "not urlsafe base64"),
        ("k1:" + KEY.replace("A", "+", 1), "not urlsafe base64"),
        ("k1:é" + KEY[2:], "not urlsafe base64"),
    ],
)
def test_malformed_keys_are_refused_without_showing_the_key(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=re.escape(message)) as raised:
        parse_keys(text)
    assert KEY not in str(raised.value) and KEY[:20] not in str(raised.value)
    assert OTHER[:20] not in str(raised.value)


def test_env_var_and_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEYS_ENV_VAR, raising=False)
    assert resolve_keys(None) is None
    monkeypatch.setenv(KEYS_ENV_VAR, "  ")
    assert resolve_keys(None) is None
    monkeypatch.setenv(KEYS_ENV_VAR, f"e1:{KEY}")
    env = resolve_keys(None)
    assert env is not None and env.current_id == "e1"
    given = resolve_keys(f"a1:{OTHER}")
    assert given is not None and given.current_id == "a1"
    with pytest.raises(KeyringError, match="keys holds no key"):
        resolve_keys("")
    with pytest.raises(TypeError):
        resolve_keys(b"k1:xx")  # type: ignore[arg-type]


class VaultKeyring:
    """A keyring as a KMS-backed one would look: data keys unwrapped at start."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = keys

    @property
    def current_id(self) -> str:
        return next(iter(self._keys))

    def ids(self) -> list[str]:
        return list(self._keys)

    def key(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)


def test_a_keyring_object_plugs_in() -> None:
    ring = VaultKeyring({"v2": bytes(32), "v1": bytes(range(32))})
    assert resolve_keys(ring) is ring
    with pytest.raises(KeyringError, match="current_id must be the first"):
        resolve_keys(VaultKeyring({}))
    with pytest.raises(KeyringError, match="exactly 32 bytes"):
        StaticKeyring({"k": b"short"})


def test_keygen_prints_a_usable_entry() -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["keygen", "--id", "k7"])
    assert done.exit_code == 0
    entry = done.output.strip()
    ring = parse_keys(entry)
    assert ring.current_id == "k7" and len(ring.key("k7") or b"") == 32
    assert runner.invoke(main, ["keygen"]).output != runner.invoke(main, ["keygen"]).output
    assert parse_keys(new_entry()).current_id.startswith("k")
    bad = runner.invoke(main, ["keygen", "--id", "no spaces"])
    assert bad.exit_code == 2 and "key id must be" in bad.output
