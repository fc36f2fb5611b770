"""What a newcomer meets first: --version, the demo's database and output, read-only
commands on a missing SQLite file, and failures that name their cause."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import URL, make_url

import zoho_sa_store
from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main
from zoho_sa_store.settings import URL_ENV_VAR

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def test_version_is_pyproject_version() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"$', pyproject, re.MULTILINE)
    assert declared is not None
    assert zoho_sa_store.__version__ == declared[1]
    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"zoho-sa-store {declared[1]}\n"


# -- read-only commands never create a SQLite file ---------------------------------------

READING = (("list",), ("show", "some-id"), ("export",), ("current",), ("check",))
WRITING = (("delete", "some-id"), ("delete-all", "--yes"), ("purge",), ("purge", "--dry-run"))


@pytest.mark.parametrize("args", READING + WRITING, ids=lambda a: " ".join(a))
def test_no_database_file_is_created(tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "none.db"
    result = cli(*args, "--url", f"sqlite:///{path}")
    assert result.exit_code == 1 and result.output == f"Error: no database at {path}\n"
    from_env = cli(*args, env={URL_ENV_VAR: f"sqlite:///{path}"})
    assert from_env.exit_code == 1 and from_env.output == f"Error: no database at {path}\n"
    uri = cli("--url", f"sqlite:///file:{path}?mode=rw&uri=true", *args)
    assert uri.exit_code == 1 and uri.output == f"Error: no database at {path}\n"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    assert cli("upgrade", "--url", url).exit_code == 0
    assert cli("list", "--url", url).output == "no tokens\n"
    assert cli("current", "--url", url).output == "0003\n"
    memory = cli("current", "--url", "sqlite://")
    assert memory.exit_code == 0 and memory.output == "\n"


# -- failures name their cause ------------------------------------------------------------

COMMANDS = (
    ("list",),
    ("show", "some-id"),
    ("delete", "some-id"),
    ("delete-all", "--yes"),
    ("purge",),
    ("export",),
    ("export", "--include-secrets"),
    ("upgrade",),
    ("current",),
    ("check",),
)
PASSWORD = "pw-Secret/42"
STORED_SECRET = "1000.refresh-never-printed-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failure(url: URL, *args: str, env_url: bool = False) -> str:
    """The one-line error of ``args`` at ``url`` (given by --url, or by the variable)."""
    shown = url.render_as_string(hide_password=False)
    result = cli(*args, env={URL_ENV_VAR: shown}) if env_url else cli("--url", shown, *args)
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    operation = args[0]
    assert result.output.startswith(f"Error: {operation} failed (OperationalError"), result.output
    for secret in (PASSWORD, quote_plus(PASSWORD), STORED_SECRET):
        assert secret not in result.output
    return result.output


def reasons(server_url: str) -> dict[str, tuple[URL, str]]:
    """Broken variants of the working ``server_url``: name -> (url, what the error says)."""
    url = make_url(server_url)
    port = free_port()
    if url.get_backend_name() == "postgresql":
        return {
            "wrong port": (url.set(port=port, password=PASSWORD), "connection refused"),
            "wrong database": (
                url.set(database="zss_i11n_no_such_db"),
                'database "zss_i11n_no_such_db" does not exist',
            ),
        }
    return {
        "wrong port": (url.set(port=port, password=PASSWORD), "connection refused"),
        "wrong database": (
            url.set(database="zss_i11n_no_such_db"),
            "unknown database 'zss_i11n_no_such_db'",
        ),
        "wrong password": (url.set(password=PASSWORD), "access denied for user"),
    }


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
def test_connection_failures_name_the_reason(server_url: str, args: tuple[str, ...]) -> None:
    store = SQLAlchemyTokenStore(server_url)
    try:
        store.save_token(token("ann@example.com", refresh=STORED_SECRET))
        for name, (url, reason) in reasons(server_url).items():
            output = failure(url, *args)
            assert reason in output.lower(), (name, output)
            assert reason in failure(url, *args, env_url=True).lower(), name
    finally:
        store.delete_tokens()
        store.close()


def test_a_statement_failure_names_no_value(backend_url: str) -> None:
    """A token command's failing statement: its class and code, never the driver's text."""
    result = cli("list", "--url", backend_url, "--table", "zss_i11n_never_migrated")
    assert result.exit_code == 1
    assert result.output == (
        "Error: list failed: table 'zss_i11n_never_migrated' does not exist; "
        "run `zoho-sa-store upgrade` to create it"
        " (or zoho_sa_store.upgrade(); `alembic upgrade head` from a clone)\n"
    )
    export = cli("export", "--url", backend_url, "--table", "zss_i11n_never_migrated")
    assert export.output.startswith("Error: export failed: table 'zss_i11n_never_migrated'")


# -- the demo -----------------------------------------------------------------------------


def test_demo_never_writes_to_the_configured_database(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --url: a throwaway SQLite file, not $ZOHO_SA_STORE_URL, not ./zohooauth.db."""
    monkeypatch.chdir(tmp_path)
    result = cli("demo", env={URL_ENV_VAR: backend_url})
    assert result.exit_code == 0, result.output
    assert store.get_tokens() == []
    assert list(tmp_path.iterdir()) == []
    first, second = result.output.splitlines()[:2]
    match = re.fullmatch(r"database: sqlite:///(.*)/demo\.db", first)
    assert match is not None, first
    assert not Path(match[1]).exists()  # deleted at the end
    assert second == (
        "  a throwaway file, deleted at the end ($ZOHO_SA_STORE_URL is not used; see --url)"
    )
    assert "revoke(" in result.output


def test_demo_output_fits_100_columns(backend_url: str) -> None:
    for args in (("demo",), ("demo", "--url", backend_url)):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert len(lines) > 10
        too_wide = [line for line in lines if len(line) > 100]
        assert not too_wide, too_wide
        expiry = re.search(r"expiry_time=(.*)$", result.output, re.MULTILINE)
        assert expiry is not None
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\dZ", expiry[1]), expiry[1]


def test_a_url_whose_driver_is_missing_says_which_and_how_to_install_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--url", "mysql+mysqldb://root@127.0.0.1:1/none", "upgrade"])
    assert result.exit_code == 1
    assert "'MySQLdb' is not installed" in result.output and "mysql+pymysql://" in result.output
    assert "Traceback" not in result.output
