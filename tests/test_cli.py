"""The console script, through click's test runner, on every backend."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main
from zoho_sa_store.demo import DEMO_CLIENT, DEMO_USER


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
    assert result.output.strip().endswith("zss_cli_tokens at 0001")
    current = runner.invoke(main, ["current", "--url", backend_url, "--table", "zss_cli_tokens"])
    assert current.output.strip() == "0001"
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
    assert missing.output.startswith("Error: OperationalError: unable to open database file")
    assert len(missing.output.strip().splitlines()) == 1
    bogus = runner.invoke(main, ["--url", "bogus://", "current"])
    assert bogus.exit_code == 1 and bogus.output.startswith("Error: NoSuchModuleError")
    revision = runner.invoke(main, ["--url", f"sqlite:///{tmp_path}/t.db", "upgrade", "nope"])
    assert revision.exit_code == 1 and "Can't locate revision" in revision.output
