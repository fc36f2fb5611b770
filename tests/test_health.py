"""check_ready() and ``zoho-sa-store check --quick``, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, event, text

from zoho_sa_store import Readiness, check_ready
from zoho_sa_store.cli import main
from zoho_sa_store.migrate import upgrade, version_table
from zoho_sa_store.settings import make_engine

UNREACHABLE = "postgresql+psycopg2://nobody:pw-secret@127.0.0.1:1/none?connect_timeout=2"


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    made = make_engine(backend_url)
    yield made
    made.dispose()


def drop(engine: Engine, *tables: str) -> None:
    with engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def statements(engine: Engine, table_name: str) -> tuple[Readiness, list[str]]:
    """check_ready() on a warm engine, with the statements it sent."""
    check_ready(engine, table_name=table_name)  # the first connection's dialect setup
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        return check_ready(engine, table_name=table_name), sent
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_ready_at_head_in_two_statements(engine: Engine) -> None:
    ready, sent = statements(engine, "oauthtoken")
    assert ready.ok and bool(ready) and not ready.database_failed
    assert ready.reason == "oauthtoken: ready (at 0003)"
    assert len(sent) <= 2, sent


def test_a_database_without_the_table(engine: Engine) -> None:
    ready, sent = statements(engine, "zss_never_migrated")
    assert not ready and not ready.database_failed
    assert ready.reason == "zss_never_migrated: not migrated (no version table): run upgrade"
    assert len(sent) == 1, sent


def test_not_at_head_and_a_dropped_table(engine: Engine) -> None:
    table = "zss_health_tokens"
    drop(engine, table, version_table(table))
    upgrade(engine, "0001", table_name=table)
    ready, sent = statements(engine, table)
    assert not ready.ok and not ready.database_failed and len(sent) == 1
    assert ready.reason == f"{table}: at 0001, head is 0003: run upgrade"
    upgrade(engine, table_name=table)
    assert check_ready(engine, table_name=table).ok
    drop(engine, table)
    ready, sent = statements(engine, table)
    assert not ready.ok and not ready.database_failed and len(sent) <= 2
    assert ready.reason.startswith(f"{table}: missing, though its version row is at head")
    drop(engine, version_table(table))


def test_an_unreachable_database() -> None:
    ready = check_ready(UNREACHABLE)
    assert not ready.ok and ready.database_failed
    assert ready.reason.startswith("database failed (OperationalError")
    assert "pw-secret" not in ready.reason and "nobody" not in ready.reason


def test_check_quick_exit_codes(backend_url: str) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["--url", backend_url, "check", "--quick"])
    assert ok.exit_code == 0 and ok.output == "oauthtoken: ready (at 0003)\n"
    missing = runner.invoke(main, ["check", "--quick", "--url", backend_url, "--table", "zss_no"])
    assert missing.exit_code == 3
    assert missing.output == "zss_no: not migrated (no version table): run upgrade\n"
    failed = runner.invoke(main, ["check", "--quick", "--url", UNREACHABLE])
    # like every other command: the command, and the driver's reason for a failed connect
    assert failed.exit_code == 1 and failed.output.startswith("Error: check failed (")
    assert "refused" in failed.output.lower()
    assert "pw-secret" not in failed.output


def test_a_probe_creates_no_database_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    ready = check_ready(f"sqlite:///{missing}")
    assert (ready.ok, ready.database_failed, ready.reason) == (
        False,
        True,
        f"no database at {missing}",
    )
    assert not missing.exists()
