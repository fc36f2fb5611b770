"""psycopg 3 (``postgresql+psycopg://``): what differs from psycopg2."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import DBAPIError

from zoho_sa_store.errors import driver_code, store_error
from zoho_sa_store.runner import retryable

pytest.importorskip("psycopg")


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
