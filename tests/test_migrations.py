"""The Alembic migrations and the schema they make, on every backend."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, current, upgrade
from zoho_sa_store.migrate import alembic_config, downgrade, script_location, version_table
from zoho_sa_store.settings import make_engine

ROOT = Path(__file__).resolve().parents[1]
TABLE = "zss_migration_check"


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_round_trip(backend_url: str) -> None:
    downgrade(backend_url, "base", table_name=TABLE)
    assert current(backend_url, table_name=TABLE) is None
    upgrade(backend_url, table_name=TABLE)
    assert current(backend_url, table_name=TABLE) == "0003"
    assert {TABLE, version_table(TABLE)} <= tables(backend_url)
    engine = make_engine(backend_url)
    try:
        with engine.begin() as conn:
            config = alembic_config(TABLE)
            config.attributes["connection"] = conn
            command.check(config)  # raises on any drift between the model and the database
    finally:
        engine.dispose()
    downgrade(backend_url, "base", table_name=TABLE)
    assert TABLE not in tables(backend_url)
    assert current(backend_url, table_name=TABLE) is None


def test_alembic_command_line(backend_url: str) -> None:
    def alembic(*args: str) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "alembic",
                "-c",
                str(ROOT / "alembic.ini"),
                "-x",
                f"url={backend_url}",
                "-x",
                "table=zss_cli_check",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return done.stdout + done.stderr

    try:
        alembic("upgrade", "head")
        assert "0003 (head)" in alembic("current")
        assert "No new upgrade operations detected" in alembic("check")
    finally:
        alembic("downgrade", "base")
    assert "zss_cli_check" not in tables(backend_url)


def test_an_ini_of_only_script_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No logging sections (a wheel install's ini): the URL from -x url= or the environment."""
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = {script_location()}\n")
    by_x = f"sqlite:///{tmp_path / 'x.db'}"
    command.upgrade(Config(str(ini), cmd_opts=Namespace(x=[f"url={by_x}"])), "head")
    assert current(by_x) == "0003"
    by_env = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("ZOHO_SA_STORE_URL", by_env)
    command.upgrade(Config(str(ini)), "head")
    assert current(by_env) == "0003"


def test_version_table_leaves_the_apps_own_alembic_history_alone(backend_url: str) -> None:
    engine = make_engine(backend_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('app_rev_1')"))
        upgrade(engine)
        assert current(engine) == "0003"
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "app_rev_1"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
        engine.dispose()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.find_token(token("ann@example.com")),
        lambda s: s.find_token_by_id("1"),
        lambda s: s.save_token(token("ann@example.com", access="1000.secret-access")),
        lambda s: s.get_tokens(),
        lambda s: s.delete_token("1"),
        lambda s: s.delete_tokens(),
    ],
)
def test_missing_table_says_to_run_the_migrations(backend_url: str, call) -> None:  # type: ignore[no-untyped-def]
    with (
        SQLAlchemyTokenStore(backend_url, table_name="never_migrated") as store,
        pytest.raises(TokenStoreError) as caught,
    ):
        call(store)
    error = caught.value
    assert "run `zoho-sa-store upgrade`" in str(error)
    assert "never_migrated" in str(error)
    assert error.code == "TOKEN_STORE"
    assert error.cause is error.__cause__ and error.cause is not None
    assert "secret-access" not in str(error)


def test_unreachable_database_raises_token_store_error() -> None:
    store = SQLAlchemyTokenStore(
        "postgresql+psycopg2://nobody:pw-secret@127.0.0.1:1/none",
        connect_args={"connect_timeout": 2},
    )
    with pytest.raises(TokenStoreError) as caught:
        store.find_token(token("ann@example.com"))
    assert "find_token failed (OperationalError)" in str(caught.value)
    assert "pw-secret" not in str(caught.value) and "pw-secret" not in repr(store)
    assert caught.value.__cause__ is caught.value.cause
