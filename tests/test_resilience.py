"""Killed connections and database restarts: the store recovers on its own."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError

EPOCH_MS = 1_700_000_000_000
"""Save n stores expires_in EPOCH_MS + n: epoch milliseconds, as a save requires."""
RESTARTS_VAR = "ZOHO_SA_STORE_TEST_RESTARTS"


def server_backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "mysql"


def kill_connections_of(url: str, store: SQLAlchemyTokenStore) -> None:
    """Kill the server connection of the store's one-connection pool."""
    backend = server_backend(url)
    with store.engine.connect() as conn:
        own = conn.scalar(
            text("SELECT pg_backend_pid()" if backend == "postgresql" else "SELECT CONNECTION_ID()")
        )
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(:p)"
                    if backend == "postgresql"
                    else f"KILL {int(own)}"
                ),
                {"p": own},
            )
    finally:
        admin.dispose()


@pytest.mark.parametrize("pre_ping", [True, False])
def test_killed_connection_is_replaced(
    server_url: str, pre_ping: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zoho_sa_store")
    with SQLAlchemyTokenStore(
        server_url, pool_size=1, max_overflow=0, pool_pre_ping=pre_ping
    ) as store:
        store.delete_tokens()
        saved = token("ann@example.com", access="1000.acc", refresh="1000.ref")
        store.save_token(saved)
        kill_connections_of(server_url, store)
        time.sleep(0.2)
        found = store.find_token(token("ann@example.com"))  # pre-ping, or one retry, recovers
        assert found is not None and found.get_id() == saved.get_id()
        kill_connections_of(server_url, store)
        time.sleep(0.2)
        store.save_token(token("ann@example.com", access="1000.acc2"))
        assert store.find_token_by_id(saved.get_id()).get_access_token() == "1000.acc2"
    retries = [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert len(retries) == (0 if pre_ping else 2)


def restart_server(backend: str) -> None:
    """Restart the local PostgreSQL or MariaDB server (as CI's machine runs them)."""
    if backend == "postgresql":
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                version,
                "main",
                "restart",
                "-m",
                "fast",
            ],
            check=True,
        )
        ready = ["pg_isready", "-h", "127.0.0.1", "-p", "5432"]
    else:
        subprocess.run(["mysqladmin", "-h", "127.0.0.1", "-u", "root", "shutdown"], check=True)
        for _ in range(100):
            if subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(
            [
                "start-stop-daemon",
                "--start",
                "--oknodo",
                "--background",
                "--exec",
                "/usr/sbin/mariadbd",
            ],
            check=True,
        )
        ready = ["mysqladmin", "-h", "127.0.0.1", "-u", "root", "ping"]
    for _ in range(120):
        if subprocess.run(ready, capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{backend} did not come back")


@pytest.mark.slow
def test_workers_survive_a_database_restart(server_url: str) -> None:
    store = SQLAlchemyTokenStore(server_url)
    store.delete_tokens()
    backend = server_backend(server_url)
    if not os.environ.get(RESTARTS_VAR):
        pytest.skip(f"restarts the local {backend} server: set {RESTARTS_VAR}=1 (CI does)")
    if not shutil.which("pg_ctlcluster" if backend == "postgresql" else "mysqladmin"):
        pytest.fail("this test needs the machine's own PostgreSQL and MariaDB servers")
    workers, stop = 4, threading.Event()
    calls = [0] * workers
    failures: list[list[str]] = [[] for _ in range(workers)]
    last_ok: list[int] = [-1] * workers

    def loop(w: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                store.save_token(
                    token(
                        f"w{w}@example.com",
                        access=f"1000.w{w}.n{n}",
                        refresh=f"1000.r{w}",
                        expires=str(EPOCH_MS + n),
                    )
                )
                found = store.find_token(token(f"w{w}@example.com"))
                assert found is not None
                last_ok[w] = n
            except TokenStoreError as error:
                failures[w].append(f"{time.monotonic():.3f} {error}")
            calls[w] += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    down = time.monotonic()
    restart_server(backend)
    up = time.monotonic()
    time.sleep(2.0)  # the store must be back to normal without being rebuilt
    recovered = list(last_ok)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    failed = sum(len(f) for f in failures)
    print(f"{backend}: {sum(calls)} calls, {failed} failed across the restart")
    assert all(last_ok[w] > recovered[w] for w in range(workers)), "a worker did not recover"
    # calls fail only while the server is away (and the ones in flight when it went)
    when = [float(f.split()[0]) for worker in failures for f in worker]
    assert all(down - 0.5 <= t <= up + 0.5 for t in when), failures
    for w in range(workers):
        row = store.find_token(token(f"w{w}@example.com"))
        assert row is not None
        # never torn: access token and expiry come from the same save
        assert row.get_access_token() == f"1000.w{w}.n{int(row.get_expires_in()) - EPOCH_MS}"
        assert int(row.get_expires_in()) - EPOCH_MS >= last_ok[w]


def test_save_after_a_concurrent_delete_is_not_lost(server_url: str) -> None:
    """The row is deleted between the save's SELECT and UPDATE: the save inserts it again."""
    with SQLAlchemyTokenStore(server_url) as store:
        store.delete_tokens()
        store.save_token(token("ann@example.com", access="1000.old", refresh="1000.r"))
        deleter = create_engine(server_url)
        try:
            with deleter.connect() as conn:
                conn.execute(text("DELETE FROM oauthtoken WHERE user_name = 'ann@example.com'"))
                saver = threading.Thread(
                    target=store.save_token,
                    args=(token("ann@example.com", access="1000.new", refresh="1000.r"),),
                )
                saver.start()
                time.sleep(0.5)  # the save has read the row and waits on the delete's row lock
                conn.commit()
                saver.join(timeout=30)
        finally:
            deleter.dispose()
        [row] = store.get_tokens()
        assert row.get_access_token() == "1000.new"
