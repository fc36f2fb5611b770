"""psycopg 3 (``postgresql+psycopg://``): what differs from psycopg2.

psycopg 3 prepares a statement on the server once it has run 5 times on a connection;
through PgBouncer in transaction mode its next run may reach a server connection that never
prepared it. The store's engines prepare nothing unless asked (tests/test_concurrency.py
runs through PgBouncer with both drivers).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import DBAPIError

from zoho_sa_store.errors import driver_code, store_error
from zoho_sa_store.runner import retryable
from zoho_sa_store.settings import make_engine

pytest.importorskip("psycopg")


@pytest.mark.parametrize(
    ("options", "threshold"),
    [
        ({}, None),
        ({"connect_args": {"prepare_threshold": 5}}, 5),  # opted in, on a direct connection
        ({"connect_args": {"connect_timeout": 3}}, None),  # the caller's args join ours
    ],
)
def test_prepare_threshold(
    postgres_url: str, options: dict[str, Any], threshold: int | None
) -> None:
    engine = make_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"), **options)
    try:
        raw = engine.raw_connection()
        try:
            assert raw.driver_connection.prepare_threshold == threshold  # type: ignore[union-attr]
            timeout = options.get("connect_args", {}).get("connect_timeout")
            if timeout is not None:
                assert f"connect_timeout={timeout}" in raw.driver_connection.info.dsn  # type: ignore[union-attr]
        finally:
            raw.close()
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", ["postgresql+psycopg2", "postgresql+psycopg"])
def test_a_deadlock_is_known_as_one(postgres_url: str, driver: str) -> None:
    """The SQLSTATE is read from either driver's errors (psycopg 3: ``sqlstate``), so a
    deadlock is retried and a failure's message names its code."""
    engine = create_engine(make_url(postgres_url).set(drivername=driver))
    deadlock = "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$"
    try:
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.exec_driver_sql(deadlock)
    finally:
        engine.dispose()
    assert driver_code(caught.value) == "40P01"
    assert retryable(caught.value)
    assert "40P01" in str(store_error("save_token", caught.value))
