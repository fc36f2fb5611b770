"""Where apps really run: forked workers, pools of dead connections, dead hosts, poolers."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, event, make_url, text

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError
from zoho_sa_store.settings import connect_args, engine_options, make_engine

CHILDREN = 4
CALLS = 40


def _work(store: SQLAlchemyTokenStore, name: str) -> list[str]:
    """Save and find this worker's own user and the shared one; the mismatches and errors."""
    problems: list[str] = []
    for call in range(CALLS):
        try:
            store.save_token(token(f"{name}@example.com", access=f"1000.{name}.{call}"))
            mine = store.find_token(token(f"{name}@example.com"))
            if mine is None or mine.get_access_token() != f"1000.{name}.{call}":
                problems.append(f"{name} call {call}: found {mine and mine.get_access_token()}")
            shared = store.find_token(token("shared@example.com"))
            if shared is None or shared.get_access_token() != "1000.shared":
                problems.append(f"{name} call {call}: shared user not found")
        except Exception:
            problems.append(traceback.format_exc())
    return problems


def _child(store: SQLAlchemyTokenStore, name: str, start: Any, results: Any) -> None:
    start.wait(timeout=60)
    results.put((name, _work(store, name)))


def test_store_used_before_fork_serves_parent_and_children(backend_url: str) -> None:
    """Celery prefork, gunicorn --preload: the store is built and used, then the process forks."""
    with SQLAlchemyTokenStore(backend_url) as store:
        store.delete_tokens()
        store.save_token(token("shared@example.com", access="1000.shared"))
        assert store.find_token(token("shared@example.com")) is not None  # pooled connection
        ctx = multiprocessing.get_context("fork")
        start, results = ctx.Barrier(CHILDREN + 1), ctx.Queue()
        children = [
            ctx.Process(target=_child, args=(store, f"child{n}", start, results))
            for n in range(CHILDREN)
        ]
        for child in children:
            child.start()
        start.wait(timeout=60)
        parent_problems = _work(store, "parent")
        outcome = dict(results.get(timeout=120) for _ in children)
        for child in children:
            child.join(timeout=30)
            assert child.exitcode == 0
        assert parent_problems == []
        assert outcome == {f"child{n}": [] for n in range(CHILDREN)}
        # the parent's pooled connections are intact after the children exited
        assert store.find_token(token("parent@example.com")).get_access_token() == (
            f"1000.parent.{CALLS - 1}"
        )
        assert len(store.get_tokens()) == CHILDREN + 2


def _server_pids(url: str) -> str:
    return "SELECT pg_backend_pid()" if url.startswith("postgresql") else "SELECT CONNECTION_ID()"


def _kill(url: str, pids: list[int]) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                if url.startswith("postgresql"):
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                else:
                    conn.execute(text(f"KILL {int(pid)}"))
    finally:
        admin.dispose()


@pytest.fixture
def idle_pool_killed(server_url: str) -> Iterator[tuple[SQLAlchemyTokenStore, str]]:
    """A store with five idle pooled connections, all killed by the server, and a stored id."""
    with SQLAlchemyTokenStore(server_url, pool_size=5, max_overflow=0) as store:
        store.delete_tokens()
        saved = token("ann@example.com", access="1000.acc")
        store.save_token(saved)
        held = [store.engine.connect() for _ in range(5)]
        pids = [conn.scalar(text(_server_pids(server_url))) for conn in held]
        for conn in held:
            conn.close()
        assert store.engine.pool.checkedin() == 5
        _kill(server_url, pids)
        time.sleep(0.3)
        yield store, saved.get_id()


def test_no_lookup_fails_on_dead_idle_connections(
    idle_pool_killed: tuple[SQLAlchemyTokenStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, row_id = idle_pool_killed
    caplog.set_level(logging.INFO, logger="zoho_sa_store")
    for _ in range(5):  # were: 2 of the first 4 failed
        assert store.find_token(token("ann@example.com")).get_id() == row_id
        assert store.find_token_by_id(row_id).get_access_token() == "1000.acc"
    retries = [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert len(retries) == 1  # the first call found the pool dead; no other call noticed


def test_no_save_fails_on_dead_idle_connections(
    idle_pool_killed: tuple[SQLAlchemyTokenStore, str],
) -> None:
    store, row_id = idle_pool_killed
    for n in range(5):
        store.save_token(token("ann@example.com", access=f"1000.acc{n}"))
        store.save_token(token(id=row_id, access=f"1000.byid{n}"))
        store.save_token(token(grant="1000.g", refresh="1000.r", access=f"1000.anon{n}"))
    assert store.find_token_by_id(row_id).get_access_token() == "1000.byid4"


def test_threads_recover_from_a_pool_of_dead_connections(server_url: str) -> None:
    with SQLAlchemyTokenStore(server_url, pool_size=8, max_overflow=0) as store:
        store.delete_tokens()
        store.save_token(token("ann@example.com", access="1000.acc"))
        held = [store.engine.connect() for _ in range(8)]
        pids = [conn.scalar(text(_server_pids(server_url))) for conn in held]
        for conn in held:
            conn.close()
        _kill(server_url, pids)
        time.sleep(0.3)
        errors: list[str] = []
        start = threading.Barrier(8)

        def lookups() -> None:
            start.wait(timeout=30)
            for _ in range(10):
                try:
                    assert store.find_token(token("ann@example.com")) is not None
                except Exception:
                    errors.append(traceback.format_exc())

        threads = [threading.Thread(target=lookups) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []


_SESSION_STATE = re.compile(r"advisory|GET_LOCK|RELEASE_LOCK|IS_FREE_LOCK", re.IGNORECASE)


def test_no_lock_outlives_its_transaction(backend_url: str) -> None:
    """Every statement the store sends, for every kind of save: no session-level lock."""
    sent: list[str] = []
    with SQLAlchemyTokenStore(backend_url) as store:
        store.delete_tokens()

        @event.listens_for(store.engine, "before_cursor_execute")
        def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            sent.append(statement)

        store.save_token(token(grant="1000.g", refresh="1000.r", access="1000.a"))
        store.save_token(token(grant="1000.g", refresh="1000.r", access="1000.b"))
        store.save_token(token(access="1000.only"))
        store.save_token(token("ann@example.com", access="1000.c"))
        assert len(store.get_tokens()) == 3
    assert sent and not [s for s in sent if _SESSION_STATE.search(s)]
    if backend_url.startswith("postgresql"):
        assert not [s for s in sent if re.match(r"\s*SET\s+(?!LOCAL)", s, re.IGNORECASE)]


def test_userless_save_after_the_token_changed_updates_its_row(
    store: SQLAlchemyTokenStore,
) -> None:
    """The row a token without a user name inserted is found by its save key, not duplicated."""
    first = token(grant="1000.g", refresh="1000.r", access="1000.a")
    store.save_token(first)
    store.save_token(token(id=first.get_id(), access="1000.b"))
    store.save_token(token(grant="1000.g", refresh="1000.r2", access="1000.c"))
    (row,) = store.get_tokens()
    assert (row.get_id(), row.get_access_token()) == (first.get_id(), "1000.c")


def test_connection_defaults() -> None:
    pg = connect_args(make_url("postgresql+psycopg2://u@h/db"))
    assert pg == {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    assert connect_args(make_url("postgresql+psycopg://u@h/db"))["prepare_threshold"] is None
    assert connect_args(make_url("mysql+pymysql://u@h/db")) == {
        "connect_timeout": 10,
        "read_timeout": 60,
        "write_timeout": 60,
    }
    # the URL's own query wins, and so do the caller's connect_args, key by key
    assert "connect_timeout" not in connect_args(make_url("postgresql://u@h/db?connect_timeout=3"))
    assert engine_options(make_url("sqlite:///x.db"))["connect_args"] == {"timeout": 30.0}
    engine = make_engine("sqlite:///:memory:", connect_args={"uri": False})
    try:
        assert engine.pool._creator is not None  # built with merged arguments, no error
    finally:
        engine.dispose()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a host that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize("scheme", ["postgresql+psycopg2", "mysql+pymysql"])
def test_a_silent_host_fails_fast(silent_server: int, scheme: str) -> None:
    if scheme.startswith("mysql"):
        pytest.importorskip("pymysql")
    url = f"{scheme}://u@127.0.0.1:{silent_server}/db"
    # libpq's connect_timeout covers the server's greeting; PyMySQL reads it under read_timeout
    timeouts = {"connect_timeout": 2} | ({"read_timeout": 2} if "mysql" in scheme else {})
    with SQLAlchemyTokenStore(url, connect_args=timeouts) as store:
        began = time.monotonic()
        with pytest.raises(TokenStoreError):
            store.find_token(token("ann@example.com"))
        assert time.monotonic() - began < 8


def test_engine_of_the_callers_own_gets_a_new_pool_in_children(backend_url: str) -> None:
    engine = make_engine(backend_url)
    store = SQLAlchemyTokenStore(engine=engine)
    try:
        store.find_token(token("nobody@example.com"))
        before = engine.pool
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, b"1" if engine.pool is not before else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        assert engine.pool is before
        assert store.find_token(token("nobody@example.com")) is None
    finally:
        engine.dispose()


def test_write_timeout_bounds_a_wait_for_sqlites_write_lock(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    from zoho_sa_store import upgrade

    upgrade(url)
    with SQLAlchemyTokenStore(url, write_timeout=1) as store:
        saved = token("ann@example.com", access="1000.a")
        store.save_token(saved)
        blocker = create_engine(url, isolation_level=None)
        with blocker.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            for stale in (token("ann@example.com", access="1000.b"), token(id=saved.get_id())):
                stale.set_access_token("1000.b")
                began = time.monotonic()
                with pytest.raises(TokenStoreError, match="SQLITE_BUSY"):
                    store.save_token(stale)
                assert 0.8 < time.monotonic() - began < 5
            conn.exec_driver_sql("ROLLBACK")
        blocker.dispose()
        store.save_token(token("ann@example.com", access="1000.c"))  # the default is back
        assert store.find_token_by_id(saved.get_id()).get_access_token() == "1000.c"


@pytest.mark.parametrize("value", [0, -1, True, "5", 10**6])
def test_write_timeout_rejects_bad_values(value: Any) -> None:
    with pytest.raises(ValueError, match="write_timeout"):
        SQLAlchemyTokenStore("sqlite:///:memory:", write_timeout=value)
