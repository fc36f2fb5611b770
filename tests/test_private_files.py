"""Files that hold tokens are their owner's alone: SQLite's files, deleted rows, exports."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, event

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.cli import main
from zoho_sa_store.private_files import NotARegularFile, private_output, write_private
from zoho_sa_store.settings import make_engine

ACCESS, REFRESH = "1000.linger-access-5f3e9d2c71", "1000.linger-refresh-a84b06e1d9"


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_sqlite_files_are_created_0600_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    path = tmp_path / "tokens.db"
    with umask(mask):
        with SQLAlchemyTokenStore(f"sqlite:///{path}") as store:
            upgrade(store.engine)
            store.save_token(token("ann@example.com", access=ACCESS, refresh=REFRESH))
            with store.engine.connect() as conn:  # WAL: -wal and -shm live while connected
                conn.exec_driver_sql("SELECT count(*) FROM oauthtoken").scalar()
                for name in ("tokens.db", "tokens.db-wal", "tokens.db-shm"):
                    assert mode(tmp_path / name) == 0o600, name
        # a rollback journal (journal_mode=DELETE) takes the database file's mode too
        raw = sqlite3.connect(path, isolation_level=None)
        try:
            raw.execute("PRAGMA journal_mode=DELETE")
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("DELETE FROM oauthtoken")
            assert mode(tmp_path / "tokens.db-journal") == 0o600
            raw.execute("ROLLBACK")
        finally:
            raw.close()
        upgraded = tmp_path / "cli.db"  # the command line's upgrade creates it the same way
        result = CliRunner().invoke(main, ["--url", f"sqlite:///{upgraded}", "upgrade"])
        assert result.exit_code == 0, result.output
        assert mode(upgraded) == 0o600


def test_a_plain_sqlite_connection_would_have_made_it_readable(tmp_path: Path) -> None:
    """The control: under umask 022 SQLite alone creates the file 0644."""
    with umask(0o022):
        sqlite3.connect(tmp_path / "plain.db").execute("CREATE TABLE t (x)").connection.close()
    assert mode(tmp_path / "plain.db") == 0o644


def test_an_existing_shared_file_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "shared.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="zoho_sa_store.files"):
        for _ in range(2):  # two engines, several connections: one warning
            engine = make_engine(f"sqlite:///{path}")
            with engine.connect(), engine.connect():
                pass
            engine.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "zoho_sa_store.files"]
    # the -wal and -shm files SQLite made meanwhile took the database file's mode
    assert warnings == [
        f"{path}{suffix} holds tokens and other local users may read or write it (mode 0644); "
        "restrict it with chmod 600 (the store does not change it)"
        for suffix in ("", "-wal", "-shm")
    ]
    assert mode(path) == 0o644  # left as it was


def test_a_read_only_uri_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    engine = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(Exception, match="unable to open"), engine.connect():
        pass
    engine.dispose()
    assert not path.exists()


def _secure_delete_off(engine: Engine) -> None:
    """Play a SQLite built without SQLITE_SECURE_DELETE (Debian's has it on by default):
    turned off before any other connect listener runs."""

    def off(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA secure_delete=OFF")

    event.listen(engine, "connect", off, insert=True)


def _file_bytes_after_delete(engine: Engine, path: Path) -> bytes:
    upgrade(engine)
    with SQLAlchemyTokenStore(engine=engine) as store:
        kept = token("bo@example.com", access="1000.kept-access-0000", refresh="1000.kept-r-000")
        store.save_token(kept)
        doomed = token("ann@example.com", access=ACCESS, refresh=REFRESH)
        store.save_token(doomed)
        store.delete_token(doomed.get_id())
        assert store.find_token_by_id(kept.get_id()) is not None
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = Path(f"{path}-wal")
        data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    engine.dispose()
    return data


def test_deleted_tokens_do_not_linger_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.db"
    engine = make_engine(f"sqlite:///{path}")
    _secure_delete_off(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    data = _file_bytes_after_delete(engine, path)
    assert b"1000.kept-access-0000" in data  # the file is readable as bytes at all
    assert ACCESS.encode() not in data and REFRESH.encode() not in data

    control = tmp_path / "control.db"  # without the pragma, the deleted tokens stay
    plain = create_engine(f"sqlite:///{control}", hide_parameters=True)
    _secure_delete_off(plain)
    assert ACCESS.encode() in _file_bytes_after_delete(plain, control)


# -- export -o FILE ---------------------------------------------------------------------


def test_export_writes_a_new_private_file(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path
) -> None:
    store.save_token(token("ann@example.com", access=ACCESS, refresh=REFRESH))
    out = tmp_path / "out.json"
    out.write_text("old")
    out.chmod(0o644)
    other_name = tmp_path / "hard-link"
    os.link(out, other_name)  # the old file's inode is not rewritten nor chmod-ed
    with umask(0o000):
        result = CliRunner().invoke(
            main, ["export", "--include-secrets", "-o", str(out), "--url", backend_url]
        )
    assert result.exit_code == 0, result.output
    assert REFRESH in out.read_text() and mode(out) == 0o600
    assert other_name.read_text() == "old" and mode(other_name) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard-link", "out.json"]  # no temp


def test_export_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    target.chmod(0o644)
    link = tmp_path / "out.json"
    link.symlink_to(target)
    write_private(link, "[]\n")
    assert not link.is_symlink() and link.read_text() == "[]\n" and mode(link) == 0o600
    assert target.read_text() == "keep me" and mode(target) == 0o644
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere" / "file")
    write_private(dangling, "[]\n")
    assert not dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_export_never_opens_a_device_or_directory(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path
) -> None:
    store.save_token(token("ann@example.com", access=ACCESS, refresh=REFRESH))
    null_before = os.stat("/dev/null")
    result = CliRunner().invoke(main, ["export", "-o", "/dev/null", "--url", backend_url])
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot write /dev/null: it is a character device, not a regular file; left alone\n"
    )
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_rdev, after.st_ino) == (
        null_before.st_mode,
        null_before.st_rdev,
        null_before.st_ino,
    )
    assert not [name for name in os.listdir("/dev") if name.startswith(".null.")]

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # opening it for writing would block: it is never opened
    for special, kind in ((fifo, "a named pipe"), (tmp_path, "a directory")):
        with pytest.raises(NotARegularFile, match=f"it is {kind}"):
            write_private(special, "[]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_failed_export_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), private_output(out) as file:
        file.write("partial")
        raise RuntimeError("stop")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
