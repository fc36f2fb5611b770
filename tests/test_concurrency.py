"""Many processes and threads saving the same users at once: one row each, no errors.

Also run through PgBouncer in transaction pooling mode (``pytest.mark.pooled``), where a
worker's consecutive transactions may run on different server connections.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
import traceback
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.refresh import RefreshPolicy

pytestmark = pytest.mark.pooled

USERS = [f"user{i}@example.com" for i in range(8)]
ROUNDS = 5


def save_all(url: str, worker: int, barrier: Any) -> list[str]:
    """Save every user ROUNDS times with this worker's values; return the errors seen."""
    errors: list[str] = []
    store = SQLAlchemyTokenStore(url)
    try:
        barrier.wait(timeout=120)
        for round_ in range(ROUNDS):
            for user in USERS:
                access = f"1000.w{worker}.r{round_}"
                try:
                    store.save_token(
                        token(
                            user,
                            access=access,
                            refresh="1000.ref",
                            expires=f"17{worker:03d}{round_:08d}",
                        )
                    )
                except Exception:
                    errors.append(traceback.format_exc())
    finally:
        store.close()
    return errors


def save_userless(url: str, worker: int, barrier: Any) -> list[str]:
    """Save the same token without a user name (no unique constraint guards it) ROUNDS times."""
    errors: list[str] = []
    with SQLAlchemyTokenStore(url) as store:
        barrier.wait(timeout=120)
        for round_ in range(ROUNDS):
            try:
                store.save_token(
                    token(
                        grant="1000.shared-grant",
                        refresh="1000.shared-refresh",
                        access=f"1000.w{worker}.r{round_}",
                        expires=f"17{worker:03d}{round_:08d}",
                    )
                )
            except Exception:
                errors.append(traceback.format_exc())
    return errors


LOOP_CALLS = 50


def find_and_save(url: str, worker: int, barrier: Any) -> list[str]:
    """LOOP_CALLS saves of this worker's user, each followed by a lookup of it and one of a
    user saved before the start; return the failed calls (errors and wrong answers)."""
    failures: list[str] = []
    user = f"loop{worker}@example.com"
    with SQLAlchemyTokenStore(url) as store:
        barrier.wait(timeout=120)
        for n in range(LOOP_CALLS):
            access = f"1000.w{worker}.n{n}"
            for call in ("save", "find own", "find shared"):
                try:
                    if call == "save":
                        store.save_token(token(user, access=access, refresh="1000.ref"))
                        continue
                    name = user if call == "find own" else "shared@example.com"
                    found = store.find_token(token(name))
                    if found is None or found.get_refresh_token() != "1000.ref":
                        failures.append(f"{call} {n}: found {found!r}")
                    elif call == "find own" and found.get_access_token() != access:
                        failures.append(f"{call} {n}: a stale access token")
                except Exception:
                    failures.append(f"{call} {n}: {traceback.format_exc()}")
    return failures


WORK = {"users": save_all, "userless": save_userless, "loop": find_and_save}


def _process_main(url: str, worker: int, barrier: Any, results: Any, work: str) -> None:
    results.put((worker, WORK[work](url, worker, barrier)))


def assert_one_consistent_row_per_user(url: str) -> None:
    with SQLAlchemyTokenStore(url) as store:
        rows = store.get_tokens()
    assert sorted(r.get_user_signature().get_name() for r in rows) == sorted(USERS)
    for row in rows:
        # access token and expiry always come from the same save
        _, worker, round_ = row.get_access_token().split(".")
        assert row.get_expires_in() == f"17{int(worker[1:]):03d}{int(round_[1:]):08d}"
        assert row.get_refresh_token() == "1000.ref"


def run_processes(url: str, workers: int, work: str) -> dict[int, list[str]]:
    """Start ``workers`` spawned processes running ``WORK[work]``, released together; their
    errors by worker."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_process_main, args=(url, w, barrier, results, work))
        for w in range(workers)
    ]
    for p in processes:
        p.start()
    outcome = dict(results.get(timeout=240) for _ in processes)
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    return outcome


@pytest.mark.slow
def test_processes_saving_the_same_users(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    assert run_processes(backend_url, 8, "users") == {w: [] for w in range(8)}
    assert_one_consistent_row_per_user(backend_url)


def advisory_locks(url: str, *, end_holders: bool = False) -> int:
    """PostgreSQL advisory locks held in the database at ``url`` (0 on other backends).

    ``end_holders``: end the sessions holding them, so that a leak stays in one test.
    """
    if not url.startswith("postgresql"):
        return 0
    holders = """SELECT pid FROM pg_locks WHERE locktype = 'advisory'
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pids = list(conn.scalars(text(holders)))
            for pid in set(pids) if end_holders else ():
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        engine.dispose()
    return len(pids)


@pytest.mark.slow
def test_processes_saving_the_same_token_without_user(
    store: SQLAlchemyTokenStore,
    backend_url: str,
    direct_backend_url: str,
    request: pytest.FixtureRequest,
) -> None:
    request.addfinalizer(functools.partial(advisory_locks, direct_backend_url, end_holders=True))
    errors = run_processes(backend_url, 8, "userless")
    assert {w: len(e) for w, e in errors.items()} == {w: 0 for w in range(8)}, errors
    [row] = store.get_tokens()
    assert row.get_user_signature() is None
    assert row.get_refresh_token() == "1000.shared-refresh"
    _, worker, round_ = row.get_access_token().split(".")
    assert row.get_expires_in() == f"17{int(worker[1:]):03d}{int(round_[1:]):08d}"
    # nothing the race took is still held: none on the server itself (past any pooler),
    # and a save straight on it is not kept waiting
    assert advisory_locks(direct_backend_url) == 0
    with SQLAlchemyTokenStore(direct_backend_url, refresh=RefreshPolicy(lock_timeout=2)) as direct:
        started = time.monotonic()
        direct.save_token(token(grant="1000.shared-grant", access="1000.direct"))
        assert time.monotonic() - started < 2
    [row] = store.get_tokens()
    assert row.get_access_token() == "1000.direct"


@pytest.mark.slow
def test_processes_finding_and_saving(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    """Every call of a find/save loop in 4 processes succeeds: with psycopg 3 through
    PgBouncer, a statement prepared on one server connection is never run on another."""
    store.save_token(token("shared@example.com", access="1000.shared", refresh="1000.ref"))
    failures = run_processes(backend_url, 4, "loop")
    assert {w: len(f) for w, f in failures.items()} == {w: 0 for w in range(4)}, failures
    assert len(store.get_tokens()) == 5


@pytest.mark.slow
def test_threads_saving_the_same_users(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    outcome: dict[int, list[str]] = {}

    def run(w: int) -> None:
        outcome[w] = save_all(backend_url, w, barrier)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert outcome == {w: [] for w in range(workers)}
    assert_one_consistent_row_per_user(backend_url)
