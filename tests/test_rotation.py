"""rotate-keys while workers run, and after a kill -9 halfway, on every backend."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from tests.factories import token
from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main
from zoho_sa_store.keyring import new_entry
from zoho_sa_store.keystate import encryption_state
from zoho_sa_store.rotation import rotate_keys

K1 = new_entry("k1")
K2 = new_entry("k2")
WORKERS = 4
ROUNDS = 60


@pytest.fixture
def empty(backend_url: str) -> Iterator[str]:
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        plain.delete_tokens()
    yield backend_url
    with SQLAlchemyTokenStore(backend_url, refresh=False) as plain:
        plain.delete_tokens()


def _worker(url: str, keys: str, worker: int, barrier: Any, results: Any) -> None:
    """Find and save this worker's user in a loop; report failures and the last save."""
    failures: list[str] = []
    last = None
    with SQLAlchemyTokenStore(url, keys=keys, refresh=False) as store:
        barrier.wait()
        for round_ in range(ROUNDS):
            try:
                found = store.find_token(token(f"w{worker}@x"))
                if found is None or (last and found.get_access_token() != last):
                    failures.append(f"round {round_}: found {found and found.get_access_token()}")
                saved = f"1000.acc.w{worker}.{round_}"
                store.save_token(token(f"w{worker}@x", access=saved, refresh=f"1000.ref.w{worker}"))
                last = saved
                by_refresh = store.find_token(token(refresh=f"1000.ref.w{worker}"))
                if by_refresh is None or by_refresh.get_access_token() != saved:
                    failures.append(f"round {round_}: by refresh token")
            except Exception:
                failures.append(traceback.format_exc(limit=3))
    results.put((worker, failures, last))


def _fill(url: str, rows: int) -> None:
    """Rows under k1 and plain rows, written straight as the stores would write them."""
    with SQLAlchemyTokenStore(url, keys=K1, refresh=False) as old:
        values = [
            {"id": f"f{n:05d}", "user_name": f"filler{n}@x", "client_id": "1000.A",
             "client_secret": "secret-A", "refresh_token": f"1000.ref.f{n}",
             "access_token": f"1000.acc.f{n}", "grant_token": None, "saved_at": 1}
            for n in range(rows)
        ]  # fmt: skip
        sealed = [old.sealing.sealed(v["id"], v) for v in values[: rows // 2]]
        with old.engine.begin() as conn:
            conn.execute(insert(old.table), sealed)
            conn.execute(insert(old.table), values[rows // 2 :])


def _assert_fillers(store: SQLAlchemyTokenStore, rows: int) -> None:
    found = {
        t.get_id(): t
        for t in store.get_tokens()
        if t.get_user_signature().get_name().startswith("filler")
    }
    assert len(found) == rows
    for n in range(rows):
        assert found[f"f{n:05d}"].get_access_token() == f"1000.acc.f{n}"
        assert found[f"f{n:05d}"].get_refresh_token() == f"1000.ref.f{n}"


@pytest.mark.slow
def test_rotation_under_four_workers_loses_nothing(empty: str) -> None:
    _fill(empty, 200)
    with SQLAlchemyTokenStore(empty, keys=K1, refresh=False) as old:
        for w in range(WORKERS):
            old.save_token(token(f"w{w}@x", access="1000.acc.start", refresh=f"1000.ref.w{w}"))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS + 1), ctx.Queue()
    processes = [
        ctx.Process(target=_worker, args=(empty, f"{K2},{K1}", w, barrier, results))
        for w in range(WORKERS)
    ]
    for p in processes:
        p.start()
    passes = 0
    with SQLAlchemyTokenStore(empty, keys=f"{K2},{K1}", refresh=False) as store:
        barrier.wait(timeout=120)
        while any(p.is_alive() for p in processes) and passes < 200:
            rotate_keys(store, batch=7)
            passes += 1
        outcome = {w: (f, last) for w, f, last in (results.get(timeout=120) for _ in processes)}
        for p in processes:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert {w: f for w, (f, _) in outcome.items()} == {w: [] for w in range(WORKERS)}
        final = rotate_keys(store)
        assert final.complete and not final.unreadable
        state = encryption_state(store)
        assert (state.plain, state.by_key) == (0, {"k2": 200 + WORKERS})
        assert passes >= 1
    with SQLAlchemyTokenStore(empty, keys=K2, refresh=False) as new:  # k1 can go now
        _assert_fillers(new, 200)
        for w, (_, last) in outcome.items():
            found = new.find_token(token(f"w{w}@x"))
            assert found is not None and found.get_access_token() == last == f"1000.acc.w{w}.59"
        assert len(new.get_tokens()) == 200 + WORKERS


@pytest.mark.slow
def test_rotate_keys_killed_halfway_completes_when_run_again(empty: str) -> None:
    rows = 600
    _fill(empty, rows)
    command = [sys.executable, "-c", "from zoho_sa_store.cli import main; main()"]
    command += ["--url", empty, "rotate-keys", "--batch", "1"]
    env = {**os.environ, "ZOHO_SA_STORE_KEYS": f"{K2},{K1}"}
    with SQLAlchemyTokenStore(empty, keys=f"{K2},{K1}", refresh=False) as store:
        c = store.table.c
        moved = select(func.count()).select_from(store.table).where(c.key_id == "k2")
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            done = 0
            while done < 20 and time.monotonic() < deadline:
                time.sleep(0.005)
                with store.engine.connect() as conn:
                    done = conn.execute(moved).scalar_one()
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        with store.engine.connect() as conn:
            at_kill = conn.execute(moved).scalar_one()
        assert 20 <= at_kill < rows, "the kill came after the end: nothing was interrupted"
        again = CliRunner().invoke(
            main, ["--url", empty, "rotate-keys"], env={"ZOHO_SA_STORE_KEYS": f"{K2},{K1}"}
        )
        assert again.exit_code == 0, again.output
        assert f"{rows - at_kill} rows to move to key k2: rewrote {rows - at_kill}," in again.output
        state = encryption_state(store)
        assert (state.plain, state.by_key) == (0, {"k2": rows})
        third = CliRunner().invoke(
            main, ["--url", empty, "rotate-keys"], env={"ZOHO_SA_STORE_KEYS": f"{K2},{K1}"}
        )
        assert "0 rows to move to key k2: rewrote 0," in third.output
    with SQLAlchemyTokenStore(empty, keys=K2, refresh=False) as new:
        _assert_fillers(new, rows)
