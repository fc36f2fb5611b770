"""Every replica runs the migration at deploy: concurrent upgrades take turns, none fails."""

from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from zoho_sa_store import upgrade
from zoho_sa_store.migrate import check, current

UPGRADES = 3


def _upgrade(url: str, table: str, start: Any, results: Any) -> None:
    start.wait(timeout=60)
    try:
        upgrade(url, table_name=table)
        results.put("")
    except Exception:
        results.put(traceback.format_exc())


def _drop(url: str, table: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = set(inspect(conn).get_table_names())
            for name in (table, f"zoho_sa_store_alembic_version_{table}"):
                if name in names:
                    conn.execute(text(f"DROP TABLE {name}"))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_upgrades_all_succeed(backend_url: str) -> None:
    table = "zss_concurrent_up"
    _drop(backend_url, table)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(UPGRADES), ctx.Queue()
    processes = [
        ctx.Process(target=_upgrade, args=(backend_url, table, start, results))
        for _ in range(UPGRADES)
    ]
    for process in processes:
        process.start()
    failures = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    try:
        assert failures == [""] * UPGRADES
        assert current(backend_url, table_name=table) == "0003"
        assert check(backend_url, table_name=table)
    finally:
        _drop(backend_url, table)
