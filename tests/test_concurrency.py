"""Many processes and threads saving the same users at once: one row each, no errors."""

from __future__ import annotations

import multiprocessing
import threading
import traceback
from typing import Any

import pytest

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore

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
                            user, access=access, refresh="1000.ref", expires=f"17{worker}{round_}"
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
                        expires=f"17{worker}{round_}",
                    )
                )
            except Exception:
                errors.append(traceback.format_exc())
    return errors


def _process_main(url: str, worker: int, barrier: Any, results: Any, userless: bool) -> None:
    work = save_userless if userless else save_all
    results.put((worker, work(url, worker, barrier)))


def assert_one_consistent_row_per_user(url: str) -> None:
    with SQLAlchemyTokenStore(url) as store:
        rows = store.get_tokens()
    assert sorted(r.get_user_signature().get_name() for r in rows) == sorted(USERS)
    for row in rows:
        # access token and expiry always come from the same save
        _, worker, round_ = row.get_access_token().split(".")
        assert row.get_expires_in() == f"17{worker[1:]}{round_[1:]}"
        assert row.get_refresh_token() == "1000.ref"


def run_processes(url: str, workers: int, userless: bool) -> dict[int, list[str]]:
    """Start ``workers`` spawned processes released together; their errors by worker."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_process_main, args=(url, w, barrier, results, userless))
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
    assert run_processes(backend_url, 8, userless=False) == {w: [] for w in range(8)}
    assert_one_consistent_row_per_user(backend_url)


@pytest.mark.slow
def test_processes_saving_the_same_token_without_user(
    store: SQLAlchemyTokenStore, backend_url: str
) -> None:
    assert run_processes(backend_url, 6, userless=True) == {w: [] for w in range(6)}
    [row] = store.get_tokens()
    assert row.get_user_signature() is None
    assert row.get_refresh_token() == "1000.shared-refresh"
    _, worker, round_ = row.get_access_token().split(".")
    assert row.get_expires_in() == f"17{worker[1:]}{round_[1:]}"


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
