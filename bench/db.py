"""Raw driver connections from SQLAlchemy URLs, database creation and server versions."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import URL, make_url

DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/zss_bench",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/zss_bench",
}
SERVER = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "psycopg": "postgresql",
    "mariadb": "mariadb",
}
"""The database each backend reaches: ``psycopg`` is PostgreSQL through psycopg 3 (the same
server, database and tables as ``postgresql``, which is psycopg2)."""


def psycopg_url(postgres_url: str) -> str:
    """``postgres_url`` with the psycopg 3 driver (``postgresql+psycopg://``)."""
    return make_url(postgres_url).set(drivername="postgresql+psycopg").render_as_string(False)


def table_name(rows: int) -> str:
    """One token table per row count, so every size is filled once and kept."""
    return f"oauthtoken_{rows}"


def dbstore_table(rows: int) -> str:
    """The SDK's DBStore table of a row count, in the same MariaDB database as ours."""
    return f"dbstore_{rows}"


def sqlite_url(path: str) -> str:
    return f"sqlite:///{path}"


def sqlite_connect(path: str) -> sqlite3.Connection:
    """An autocommit connection with the store's own pragmas (WAL, synchronous=NORMAL)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def pg_connect(url: str | URL, database: str | None = None) -> Any:
    import psycopg2

    u = make_url(url)
    conn = psycopg2.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=database or u.database,
    )
    conn.autocommit = True
    return conn


def pg3_connect(url: str | URL) -> Any:
    """A psycopg 3 autocommit connection (the floor's on the ``psycopg`` backend)."""
    import psycopg

    u = make_url(url)
    return psycopg.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        user=u.username,
        password=u.password,
        dbname=u.database,
        autocommit=True,
    )


def mysql_params(url: str | URL, database: str | None = None) -> dict[str, Any]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 3306,
        "user": u.username,
        "password": u.password or "",
        "database": database if database is not None else u.database,
    }


def my_connect(url: str | URL, database: str | None = None, **options: Any) -> Any:
    import pymysql

    params = mysql_params(url, database)
    if not params["database"]:
        params.pop("database")
    return pymysql.connect(autocommit=True, charset="utf8mb4", **params, **options)


def ensure_database(backend: str, url: str, name: str | None = None) -> None:
    """Create the URL's database (or ``name`` on the URL's server) when it is missing."""
    name = name or make_url(url).database
    assert name and name.replace("_", "").isalnum(), name
    if SERVER[backend] == "postgresql":
        conn = pg_connect(url, database="postgres")
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
    else:
        conn = my_connect(url, database="")
        try:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()


def server_version(backend: str, url: str) -> str:
    if backend == "sqlite":
        return sqlite3.sqlite_version
    conn = pg_connect(url) if SERVER[backend] == "postgresql" else my_connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT version()")
        return str(cur.fetchone()[0])
    finally:
        conn.close()
