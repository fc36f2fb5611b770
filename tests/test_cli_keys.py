"""The command line with keys: check's encryption state, rotate-keys, --keys, masking."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main
from zoho_sa_store.keyring import new_entry

K1 = new_entry("k1")
K2 = new_entry("k2")
ACCESS = "1000.access-cli-keys-0123456789"


def cli(*args: str, keys: str | None = None) -> Result:
    env = {"ZOHO_SA_STORE_KEYS": keys or ""}
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def url(backend_url: str) -> Iterator[str]:
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        plain.delete_tokens()
        plain.save_token(token("plain@x", access="1000.access-plain-0123456789"))
    with SQLAlchemyTokenStore(backend_url, keys=K1, refresh=False) as store:
        store.save_token(token("ann@x", access=ACCESS, refresh="1000.refresh-cli-keys-0123"))
    yield backend_url
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        plain.delete_tokens()


def test_check_reports_the_encryption_state(url: str) -> None:
    mixed = cli("check", "--url", url, keys=K1)
    assert mixed.exit_code == 0
    assert mixed.output.splitlines()[1:] == [
        "encryption: mixed (2 rows)",
        "  plain text: 1 rows",
        "  key k1: 1 rows (current key)",
        "  1 rows not under the current key: run rotate-keys",
    ]
    unknown = cli("check", "--url", url, "--keys", K2)
    assert unknown.exit_code == 3
    assert "  key k1: 1 rows (NOT CONFIGURED: these rows cannot be read)" in unknown.output
    none = cli("check", "--url", url)
    assert none.exit_code == 3 and "no keys configured" in none.output
    for result in (mixed, unknown, none):
        assert K1.split(":")[1] not in result.output and K2.split(":")[1] not in result.output


def test_rotate_keys_from_the_command_line(url: str) -> None:
    assert cli("rotate-keys", "--url", url).exit_code == 2  # no keys: a usage error
    dry = cli("rotate-keys", "--url", url, "--dry-run", keys=f"{K2},{K1}")
    assert dry.exit_code == 0
    assert dry.output == (
        "dry run, nothing written: 2 rows to move to key k2: would rewrite 2,"
        " changed meanwhile 0, unreadable 0\n"
    )
    cut_off = cli("rotate-keys", "--url", url, keys=K2)  # k1 not configured: reported
    assert cut_off.exit_code == 3
    assert "unreadable: token id" in cut_off.output and "key id 'k1'" in cut_off.output
    done = cli("rotate-keys", "--url", url, keys=f"{K2},{K1}")
    assert done.exit_code == 0 and "rewrote 1," in done.output  # the plain one went above
    state = cli("check", "--url", url, keys=K2)
    assert state.output.splitlines()[1:] == ["encryption: encrypted (2 rows)",
                                             "  key k2: 2 rows (current key)"]  # fmt: skip
    back = cli("rotate-keys", "--url", url, "--to-plaintext", keys=K2)
    assert back.exit_code == 0 and "2 rows to move to plain text: rewrote 2," in back.output
    assert "encryption: plain (2 rows)" in cli("check", "--url", url).output


def test_list_show_export_with_keys(url: str) -> None:
    listed = cli("list", "--json", "--url", url, keys=K1)
    assert listed.exit_code == 0
    rows = {row["user_name"]: row for row in json.loads(listed.output)}
    assert rows["ann@x"]["access_token"] == "1000.ac…89"  # opened, then masked
    assert ACCESS not in listed.output and "zss1" not in listed.output
    full = cli("export", "--include-secrets", "--url", url, keys=K1)
    assert {row["access_token"] for row in json.loads(full.output)} >= {ACCESS}
    masked = cli("export", "--url", url, keys=K1)
    assert ACCESS not in masked.output
    keyless = cli("list", "--url", url)
    assert keyless.exit_code == 1 and "encrypted under key id 'k1'" in keyless.output


@pytest.mark.parametrize(
    ("keys", "message"),
    [("k1", "is not KEY_ID:KEY"), ("k1:c2hvcnQ", "exactly 32 bytes"), ("bad id:x", "key id")],
)
def test_bad_keys_are_a_usage_error_that_shows_no_key(url: str, keys: str, message: str) -> None:
    by_option = cli("list", "--url", url, "--keys", keys)
    by_env = cli("list", "--url", url, keys=keys)
    for result in (by_option, by_env):
        assert result.exit_code == 2 and message in result.output
        assert "c2hvcnQ" not in result.output
