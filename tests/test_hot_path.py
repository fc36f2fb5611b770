"""The hot path's shape: a first save in one statement, one COMMIT per transaction, SQLite's
per-thread readers. The save rules themselves are pinned in test_store.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import IntegrityError

from tests.factories import CLIENT_A, token
from zoho_sa_store import SQLAlchemyTokenStore, readers

pytestmark = pytest.mark.pooled


def count(store: SQLAlchemyTokenStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(store.table)) or 0)


@pytest.fixture
def statements(store: SQLAlchemyTokenStore) -> Iterator[list[str]]:
    """Every statement the store's engine sends from now on (first word, upper case), after
    the store's first-use key check (one SELECT per store, see keystate.py)."""
    store.find_token_by_id("no-such-row")
    sent: list[str] = []

    def record(conn: Connection, cursor: Any, sql: str, *args: Any) -> None:
        sent.append(sql.split(None, 1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", record)
    yield sent
    event.remove(store.engine, "before_cursor_execute", record)


def test_a_first_save_is_one_insert(store: SQLAlchemyTokenStore, statements: list[str]) -> None:
    new = token("ann@example.com", access="1000.a", refresh="1000.r")
    store.save_token(new)
    assert statements == ["INSERT"]  # no BEGIN, no lookup, no COMMIT: it commits itself
    found = store.find_token_by_id(new.get_id())
    assert found is not None and found.get_refresh_token() == "1000.r"
    assert count(store) == 1


@pytest.mark.parametrize(
    ("stored", "again"),
    [
        # the user rule matches user_name alone when the token has no client id
        (
            {"user": "ann@example.com", "access": "1000.a"},
            {"user": "ann@example.com", "client": None, "access": "1000.b"},
        ),
        ({"client": None, "access": "1000.a"}, {"client": None, "access": "1000.a"}),
        ({"grant": "1000.g", "access": "1000.a"}, {"grant": "1000.g", "access": "1000.b"}),
        ({"refresh": "1000.r", "access": "1000.a"}, {"refresh": "1000.r", "access": "1000.b"}),
    ],
    ids=["user-without-client", "access", "grant", "refresh"],
)
def test_a_save_the_rules_match_updates_and_inserts_nothing(
    store: SQLAlchemyTokenStore, stored: dict[str, Any], again: dict[str, Any]
) -> None:
    first = token(**stored)
    store.save_token(first)
    second = token(**again)
    store.save_token(second)
    assert count(store) == 1
    assert second.get_id() == first.get_id()
    assert store.find_token_by_id(first.get_id()).get_access_token() == again["access"]


def test_the_insert_never_writes_into_an_existing_row(store: SQLAlchemyTokenStore) -> None:
    first = token("ann@example.com", access="1000.a", refresh="1000.r")
    store.save_token(first)
    # the same (user_name, client_id) under another id, unguarded: the unique conflict
    # does nothing (no DO UPDATE into the row, whose values were made for its own id); on
    # MySQL/MariaDB it raises (no IGNORE, which would also truncate too-long values)
    values = {"id": "other", "user_name": "ann@example.com", "client_id": CLIENT_A[0]}
    values |= {"access_token": "1000.x", "saved_at": 1}
    stmt = store._sql.insert_new(tuple(sorted(values)), (("id",),))
    with store.engine.connect() as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            with pytest.raises(IntegrityError):
                store._sql.execute(conn, stmt, values | {"g0_id": "other"})
        else:
            assert store._sql.execute(conn, stmt, values | {"g0_id": "other"}).rowcount == 0
        conn.commit()
    found = store.find_token_by_id(first.get_id())
    assert found is not None and found.get_access_token() == "1000.a"
    assert count(store) == 1


def test_a_lost_insert_race_updates_the_winners_row(
    store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = token("ann@example.com", access="1000.a", refresh="1000.r")
    store.save_token(winner)
    unguarded = store._sql.insert_new
    # as if another worker inserted between our NOT EXISTS and our insert
    monkeypatch.setattr(store._sql, "insert_new", lambda names, guards: unguarded(names, ()))
    loser = token("ann@example.com", access="1000.b")
    store.save_token(loser)
    assert loser.get_id() == winner.get_id()
    assert count(store) == 1
    found = store.find_token_by_id(winner.get_id())
    assert (found.get_access_token(), found.get_refresh_token()) == ("1000.b", "1000.r")


def test_one_commit_per_save_on_mysql(mysql_url: str) -> None:
    """PyMySQL's commit() sends COMMIT itself: the store sends no second one."""
    with SQLAlchemyTokenStore(mysql_url, pool_size=1, max_overflow=0) as store:
        store.delete_tokens()
        store.save_token(token("ann@example.com", access="1000.a"))

        def commits() -> int:
            with store.engine.connect() as conn:
                row = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_commit'").one()
                return int(row[1])

        before = commits()
        store.save_token(token("ann@example.com", client=None, access="1000.b"))  # a transaction
        assert commits() - before == 1
        store.save_token(token("bo@example.com", access="1000.c"))  # one statement: no COMMIT
        assert commits() - before == 1
        assert count(store) == 2


# -- SQLite: lookups on a reader of each thread's own ----------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[SQLAlchemyTokenStore]:
    from zoho_sa_store import upgrade

    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    upgrade(url)
    with SQLAlchemyTokenStore(url, refresh=False) as store:
        yield store


def test_a_reader_sees_saves_of_other_threads(sqlite_store: SQLAlchemyTokenStore) -> None:
    store = sqlite_store
    store.save_token(token("ann@example.com", access="1000.a"))
    assert store.find_token(token("ann@example.com")).get_access_token() == "1000.a"

    def save() -> None:
        store.save_token(token("ann@example.com", access="1000.b"))

    writer = threading.Thread(target=save)
    writer.start()
    writer.join()
    assert store.find_token(token("ann@example.com")).get_access_token() == "1000.b"


def test_readers_hold_no_read_transaction(sqlite_store: SQLAlchemyTokenStore) -> None:
    store = sqlite_store
    store.save_token(token("ann@example.com", access="1000.a"))
    for _ in range(3):
        assert store.find_token(token("ann@example.com")) is not None
    with store.engine.connect() as conn:
        busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    assert busy == 0  # a reader inside a read transaction would keep the WAL busy


def test_readers_are_bounded_and_closed(
    sqlite_store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    monkeypatch.setattr(readers, "MAX_READERS", 2)
    store.save_token(token("ann@example.com", access="1000.a"))
    barrier = threading.Barrier(5)
    found: list[str | None] = []

    def look() -> None:
        barrier.wait()
        found.append(store.find_token(token("ann@example.com")).get_access_token())
        barrier.wait()  # every thread alive at once: three of them use the pool

    threads = [threading.Thread(target=look) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == ["1000.a"] * 5
    kept = store._db._readers
    assert kept is not None and len(kept._open) <= 2
    store.close()
    assert len(kept._open) == 0
    assert store.find_token(token("ann@example.com")) is not None  # opens a new one


def test_a_forked_child_opens_readers_of_its_own(sqlite_store: SQLAlchemyTokenStore) -> None:
    store = sqlite_store
    store.save_token(token("ann@example.com", access="1000.a"))
    assert store.find_token(token("ann@example.com")) is not None  # the parent's reader
    parents = store._db._readers._local.connection  # type: ignore[union-attr]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = store.find_token(token("ann@example.com")) is not None
        mine = store._db._readers._local.connection  # type: ignore[union-attr]
        os.write(write, b"1" if ok and mine is not parents else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert store.find_token(token("ann@example.com")).get_access_token() == "1000.a"
    assert store._db._readers._local.connection is parents  # type: ignore[union-attr]
