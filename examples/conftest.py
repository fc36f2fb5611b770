"""Fixtures of the example apps' tests.

``database_url``: an empty database for each test, on SQLite (a file in the test's tmp dir),
PostgreSQL and MySQL/MariaDB. The servers are the test servers of ``tests/conftest.py``
(same variables, same skip-or-fail rule); the examples get their own database there,
``<test database>_examples``, emptied before each test. In your own app's tests a
``sqlite:///{tmp_path}/app.db`` URL is all you need.

``fresh_sdk`` (autouse): the SDK's process-wide ``Initializer`` is reset around each test,
as in a new process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

from tests.conftest import configured_url, ensure_database, require_server


def _empty_server_database(backend: str) -> str:
    url = configured_url(backend)
    url = url.set(database=f"{url.database}_examples")
    require_server(f"{backend} (examples)", lambda: ensure_database(url))
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = MetaData()
            tables.reflect(conn)
            tables.drop_all(conn)
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database (see above)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return _empty_server_database(request.param)


@pytest.fixture(autouse=True)
def fresh_sdk() -> Iterator[None]:
    Initializer.initializer = None
    Initializer.LOCAL.init = None
    yield
    Initializer.initializer = None
    Initializer.LOCAL.init = None
