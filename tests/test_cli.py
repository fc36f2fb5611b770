"""The console script, through click's test runner, on every backend."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import Engine

from tests.factories import token
from tests.test_import_dbstore import DB_ROWS, fill, source
from tests.test_importers import SECRETS, sdk_filestore, sdk_tokens
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main
from zoho_sa_store.demo import DEMO_CLIENT, DEMO_USER
from zoho_sa_store.model import SDK_COLUMNS
from zoho_sa_store.tokens import SECRET_FIELDS

__all__ = ["source"]  # the fixture, shared with tests/test_importers.py
SUMMARY = "read {}, imported {}, unchanged {}, conflicts {}, invalid {}\n"


def test_demo_runs_the_whole_lifecycle(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    result = CliRunner().invoke(main, ["demo", "--url", backend_url])
    assert result.exit_code == 0, result.output
    out = result.output
    assert re.search(r"1\. grant 1000\.\w\w…\w\w exchanged and saved as id [0-9a-f-]{36}", out)
    assert f"CRM says the current user is {DEMO_USER}" in out
    assert "2. restarted process found the token: 1 grant exchange(s) in all" in out
    assert "3. expired access token refreshed (1 refresh request)" in out
    assert f"CRM user {DEMO_USER}" in out
    assert re.search(r"5\. revoke\('[0-9a-f-]{36}'\) -> True", out)
    [row] = store.get_tokens()
    assert f"user_name={DEMO_USER}:" in out and f"id={row.get_id()}" in out
    for secret in (
        row.get_access_token(),
        row.get_refresh_token(),
        row.get_grant_token(),
        DEMO_CLIENT["client_secret"],
    ):
        assert secret and secret not in out


def test_demo_global_url_and_rerun(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["--url", backend_url, "demo"])
        assert result.exit_code == 0, result.output
    assert len(store.get_tokens()) == 1


def test_upgrade_and_current(backend_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--url", backend_url, "--table", "zss_cli_tokens", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("zss_cli_tokens at 0003")
    current = runner.invoke(main, ["current", "--url", backend_url, "--table", "zss_cli_tokens"])
    assert current.output.strip() == "0003"
    from zoho_sa_store.migrate import downgrade

    downgrade(backend_url, "base", table_name="zss_cli_tokens")
    current = runner.invoke(main, ["current", "--url", backend_url, "--table", "zss_cli_tokens"])
    assert current.exit_code == 0 and current.output.strip() == ""


def test_invalid_table_name_is_a_usage_error(backend_url: str) -> None:
    result = CliRunner().invoke(main, ["current", "--url", backend_url, "--table", "bad;name"])
    assert result.exit_code == 2
    assert "Invalid value for --table: invalid table name 'bad;name'" in result.output


def test_database_failures_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["--url", f"sqlite:///{tmp_path}/no/such/dir/t.db", "upgrade"])
    assert missing.exit_code == 1
    assert missing.output.startswith(
        "Error: upgrade failed (OperationalError SQLITE_CANTOPEN): unable to open database file"
    )
    assert len(missing.output.strip().splitlines()) == 1
    bogus = runner.invoke(main, ["--url", "bogus://", "current"])
    assert bogus.exit_code == 1
    assert bogus.output.startswith("Error: current failed (NoSuchModuleError): Can't load plugin")
    revision = runner.invoke(main, ["--url", f"sqlite:///{tmp_path}/t.db", "upgrade", "nope"])
    assert revision.exit_code == 1 and "Can't locate revision" in revision.output


# -- the token commands -----------------------------------------------------------------

NOW_MS = int(time.time() * 1000)
DAY_MS = 86_400_000
CLI_CLIENT = ("1000.CLICLIENT", "cli-client-secret-0123456789")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def seed(store: SQLAlchemyTokenStore) -> dict[str, str]:
    """Four tokens: name -> id. ``old``: no refresh token, expired 40 days ago."""
    specs: dict[str, dict[str, str | None]] = {
        "ann": {"refresh": "1000.refresh-cli-ann-0123456789", "access": "1000.access-cli-ann-0123"},
        "old": {"access": "1000.access-cli-old-0123456789", "expires": str(NOW_MS - 40 * DAY_MS)},
        "new": {"access": "1000.access-cli-new-0123456789", "expires": str(NOW_MS - DAY_MS)},
        "grant": {"grant": "1000.grant-cli-0123456789"},
    }
    ids = {}
    for name, spec in specs.items():
        t = token(f"{name}@example.com", client=CLI_CLIENT, **spec)
        store.save_token(t)
        ids[name] = str(t.get_id())
    return ids


def secrets(store: SQLAlchemyTokenStore) -> set[str]:
    found = {CLI_CLIENT[1]}
    for t in store.get_tokens():
        for value in (t.get_access_token(), t.get_refresh_token(), t.get_grant_token()):
            if value:
                found.add(value)
    return found


def no_secret_in(output: str, store_secrets: set[str]) -> None:
    leaked = [s[:8] for s in store_secrets if s in output]
    assert not leaked, f"secrets printed: {leaked}"


def test_check(backend_url: str) -> None:
    result = cli("check", "--url", backend_url)
    assert result.exit_code == 0
    assert result.output.startswith("oauthtoken: at head (0003)\nencryption: ")
    other = cli("--url", backend_url, "--table", "zss_cli_unmigrated", "check")
    assert other.exit_code == 3
    assert other.output == "zss_cli_unmigrated: at no revision, head is 0003: run upgrade\n"


def test_list_and_show_mask_secrets(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    assert cli("list", "--url", backend_url).output == "no tokens\n"
    assert cli("list", "--json", "--url", backend_url).output == "[]\n"
    ids = seed(store)
    every = secrets(store)
    table = cli("list", "--url", backend_url)
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split()[:3] == ["ID", "USER_NAME", "CLIENT_ID"]
    assert "1000.re…89" in table.output and "(expired)" in table.output
    listed = cli("--url", backend_url, "list", "--json")
    rows = json.loads(listed.output)
    assert [row["id"] for row in rows] == sorted(ids.values())
    assert all(list(row) == list(SDK_COLUMNS) for row in rows)
    ann = next(row for row in rows if row["id"] == ids["ann"])
    assert ann["client_secret"] == "cl…89" and ann["refresh_token"] == "1000.re…89"
    assert ann["user_name"] == "ann@example.com" and ann["grant_token"] is None
    shown = cli("show", ids["ann"], "--url", backend_url)
    assert shown.exit_code == 0 and f"id:            {ids['ann']}\n" in shown.output
    assert "refresh_token: 1000.re…89\n" in shown.output
    as_json = cli("show", ids["ann"], "--json", "--url", backend_url)
    assert json.loads(as_json.output) == ann
    for result in (table, listed, shown, as_json):
        no_secret_in(result.output, every)
    missing = cli("show", "no-such-id", "--url", backend_url)
    assert missing.exit_code == 1 and missing.output == "Error: no token with id 'no-such-id'\n"
    too_long = cli("show", "x" * 65, "--url", backend_url)
    assert too_long.exit_code == 2 and "longer than 64 characters" in too_long.output


def test_delete_and_delete_all(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    ids = seed(store)
    deleted = cli("delete", ids["ann"], "--url", backend_url)
    assert deleted.exit_code == 0 and deleted.output == f"deleted token {ids['ann']!r}\n"
    assert store.find_token_by_id(ids["ann"]) is None
    again = cli("delete", ids["ann"], "--url", backend_url)
    assert again.exit_code == 1 and "no token with id" in again.output
    refused = cli("delete-all", "--url", backend_url)
    assert (
        refused.exit_code == 2 and "refusing to delete every token without --yes" in refused.output
    )
    assert len(store.get_tokens()) == 3
    done = cli("--url", backend_url, "delete-all", "--yes")
    assert done.exit_code == 0 and done.output == "deleted 3 token(s)\n"
    assert store.get_tokens() == []


def test_purge(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    ids = seed(store)
    dry = cli("purge", "--dry-run", "--url", backend_url)
    assert dry.exit_code == 0
    assert dry.output.startswith(f"{ids['old']}  old@example.com  {CLI_CLIENT[0]}  ")
    assert dry.output.endswith("(expired)\nwould delete 1 token(s)\n")
    assert len(store.get_tokens()) == 4
    done = cli("purge", "--url", backend_url)
    assert done.exit_code == 0 and done.output.endswith("\ndeleted 1 token(s)\n")
    assert store.find_token_by_id(ids["old"]) is None
    assert cli("purge", "--older-than", "12h", "--url", backend_url).output.endswith(
        "deleted 1 token(s)\n"
    )
    assert sorted(t.get_id() for t in store.get_tokens()) == sorted([ids["ann"], ids["grant"]])
    bad = cli("purge", "--older-than", "soon", "--url", backend_url)
    assert bad.exit_code == 2 and "'soon' is not a duration" in bad.output


def test_export(store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path) -> None:
    seed(store)
    every = secrets(store)
    masked = cli("export", "--url", backend_url)
    assert masked.exit_code == 0 and len(json.loads(masked.output)) == 4
    no_secret_in(masked.output, every)
    full = cli("export", "--include-secrets", "--url", backend_url)
    assert {v for row in json.loads(full.output) for v in row.values()} >= every
    out = tmp_path / "tokens.json"
    to_file = cli("export", "--include-secrets", "-o", str(out), "--url", backend_url)
    assert to_file.exit_code == 0 and to_file.stdout == ""
    assert to_file.stderr == f"exported 4 token(s) to {out}\n"
    assert json.loads(out.read_text()) == json.loads(full.output)
    if os.name == "posix":
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
    unwritable = cli("export", "-o", str(tmp_path), "--url", backend_url)
    assert unwritable.exit_code == 1 and unwritable.output.startswith("Error: cannot write")


def test_import_filestore(store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path) -> None:
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    dry = cli("import-filestore", str(path), "--dry-run", "--url", backend_url)
    assert dry.exit_code == 0 and store.get_tokens() == []
    assert dry.output == "dry run, nothing written: " + SUMMARY.format(3, 3, 0, 0, 0)
    first = cli("--url", backend_url, "import-filestore", str(path))
    assert first.exit_code == 0 and first.output == SUMMARY.format(3, 3, 0, 0, 0)
    again = cli("--url", backend_url, "import-filestore", str(path))
    assert again.exit_code == 0 and again.output == SUMMARY.format(3, 0, 3, 0, 0)
    with path.open("a") as file:
        file.write("1,someone@example.com,1000.X,x,1000.refresh-x-0123456789,,,,,\n")
        file.write("5,,1000.X,x,,,,,,\n")
    partial = cli("--url", backend_url, "import-filestore", str(path))
    assert partial.exit_code == 3
    assert partial.stderr == (
        "conflict: line 5: stored row '1' differs in user_name, client_id, client_secret, "
        "refresh_token, access_token, expiry_time, api_domain\n"
        "invalid: line 6: no access, refresh or grant token\n"
    )
    assert partial.stdout == SUMMARY.format(5, 0, 3, 1, 1)
    for result in (dry, first, again, partial):
        no_secret_in(result.output, set(SECRETS))
    missing = cli("import-filestore", str(tmp_path / "none.txt"), "--url", backend_url)
    assert missing.exit_code == 1 and "Error: cannot read" in missing.output
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    other = cli("import-filestore", str(tmp_path / "other.csv"), "--url", backend_url)
    assert other.exit_code == 1 and "Error: not a FileStore file" in other.output


def test_import_dbstore(store: SQLAlchemyTokenStore, backend_url: str, source: Engine) -> None:
    fill(source, "sdk_dbstore_old", DB_ROWS)
    args = ("import-dbstore", backend_url, "--table", "sdk_dbstore_old", "--url", backend_url)
    first = cli(*args)
    assert first.exit_code == 0 and first.output == SUMMARY.format(3, 3, 0, 0, 0)
    again = cli(*args)
    assert again.exit_code == 0 and again.output == SUMMARY.format(3, 0, 3, 0, 0)
    db_secrets = {v for row in DB_ROWS for k, v in row.items() if k in SECRET_FIELDS and v}
    no_secret_in(first.output + again.output, db_secrets)
    missing = cli("import-dbstore", backend_url, "--url", backend_url, "--table", "sdk_nope")
    assert missing.exit_code == 1 and "Error: no table 'sdk_nope'" in missing.output
    bad = cli("import-dbstore", backend_url, "--table", "bad;name")
    assert bad.exit_code == 2 and "invalid table name" in bad.output
    other_target = cli(*args, "--target-table", "zss_cli_unmigrated")
    assert other_target.exit_code == 1 and "zss_cli_unmigrated" in other_target.output
    assert "does not exist" in other_target.output
