"""Fixtures: one store fixture parametrized over SQLite, PostgreSQL and MySQL/MariaDB.

Server URLs come from ``ZOHO_SA_STORE_TEST_POSTGRES_URL`` and
``ZOHO_SA_STORE_TEST_MYSQL_URL`` (local defaults below; the databases are created when
missing). An unreachable server skips its tests, unless ``ZOHO_SA_STORE_REQUIRE_BACKENDS``
is set (CI sets it): then it fails them.

Modules marked ``pytest.mark.pooled`` also run through PgBouncer in transaction pooling
mode (``ZOHO_SA_STORE_TEST_PGBOUNCER_URL``, started by ``.ci/pgbouncer``), where one
client's consecutive transactions may run on different server connections: backend
"pgbouncer" with psycopg2, "pgbouncer-psycopg" with psycopg 3. Their database is their
own (``zoho_sa_store_test_pgbouncer``, so they never meet the "postgresql" backend's rows
or locks), on the server of the "postgresql" backend: there it is created, and reached
directly by :func:`direct_url`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, create_engine, make_url, text

from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.sdk import DISTRIBUTIONS, installed

SERVER_URLS = {
    "postgresql": (
        "ZOHO_SA_STORE_TEST_POSTGRES_URL",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/zoho_sa_store_test",
    ),
    "mysql": (
        "ZOHO_SA_STORE_TEST_MYSQL_URL",
        "mysql+pymysql://root@127.0.0.1:3306/zoho_sa_store_test",
    ),
    "pgbouncer": (
        "ZOHO_SA_STORE_TEST_PGBOUNCER_URL",
        "postgresql+psycopg2://postgres@127.0.0.1:6432/zoho_sa_store_test_pgbouncer",
    ),
}
REQUIRE_VAR = "ZOHO_SA_STORE_REQUIRE_BACKENDS"
SDK_VAR = "ZOHO_SA_STORE_TEST_SDK"
"""The SDK distribution a CI leg installed (``zohocrmsdk7_0``, ...); unset: any."""
pytest_plugins = ["tests.leakcheck", "tests.pgcluster"]
BACKENDS = ("sqlite", "postgresql", "mysql")
POOLED = {"pgbouncer": "postgresql+psycopg2", "pgbouncer-psycopg": "postgresql+psycopg"}
"""The backends (and their drivers) that modules marked ``pytest.mark.pooled`` also run on."""


def configured_url(backend: str) -> URL:
    if backend in POOLED:
        variable, default = SERVER_URLS["pgbouncer"]
        return make_url(os.environ.get(variable) or default).set(drivername=POOLED[backend])
    variable, default = SERVER_URLS[backend]
    return make_url(os.environ.get(variable) or default)


def direct_url(backend: str) -> URL:
    """The URL of ``backend``'s database on the server itself (for PgBouncer: past it)."""
    if backend in POOLED:
        database = configured_url(backend).database
        return configured_url("postgresql").set(database=database)
    return configured_url(backend)


def ensure_database(url: URL) -> None:
    """Create the test database on its server if it is missing (raises if unreachable)."""
    if url.get_backend_name() == "postgresql":
        admin = url.set(database="postgres")
        exists_sql = "SELECT 1 FROM pg_database WHERE datname = :name"
    else:
        admin = url.set(database="information_schema")
        exists_sql = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.scalar(text(exists_sql), {"name": url.database}) is None:
                quoted = conn.dialect.identifier_preparer.quote(str(url.database))
                conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        engine.dispose()


def answers(url: URL) -> None:
    """Run ``SELECT 1`` at ``url`` (raises if it cannot be reached)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


_unavailable: dict[str, str] = {}
"""Per server (or database): "" once prepared, else why it cannot be had."""


def require_server(key: str, prepare: Callable[[], object]) -> None:
    """Run ``prepare`` once per ``key``; when it failed, skip the test (fail it when
    ``ZOHO_SA_STORE_REQUIRE_BACKENDS`` is set)."""
    if key not in _unavailable:
        try:
            prepare()
            _unavailable[key] = ""
        except Exception as error:  # any driver's "cannot connect"
            _unavailable[key] = f"{type(error).__name__}: {error}"
    if _unavailable[key]:
        message = f"{key} test server unavailable ({_unavailable[key]})"
        if os.environ.get(REQUIRE_VAR):
            pytest.fail(f"{message}; {REQUIRE_VAR} is set", pytrace=False)
        pytest.skip(message)


def sdk_or_skip(package: str) -> None:
    """Skip the calling test module unless the import package ``package`` (``"zcrmsdk"``,
    ``"zohocrmsdk"``) is installed, naming the ``.ci/run`` legs that run it; fail instead when
    ``ZOHO_SA_STORE_TEST_SDK`` names a distribution of that package (a leg for it)."""
    if package in {DISTRIBUTIONS[name] for name in installed()}:
        return
    legs = ", ".join(name for name, pkg in DISTRIBUTIONS.items() if pkg == package)
    message = f"needs {package}, not installed here: run by .ci/run's legs for {legs}"
    if DISTRIBUTIONS.get(os.environ.get(SDK_VAR, "")) == package:
        pytest.fail(f"{message}; {SDK_VAR} says it is", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def backend_or_skip(backend: str, tmp_dir: Path) -> str:
    """The URL of a ready test database for ``backend``; skip/fail when it cannot be had."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / 'tokens.db'}"
    url = configured_url(backend)

    def prepare() -> None:
        ensure_database(direct_url(backend))
        if backend in POOLED:
            answers(url)

    require_server(backend, prepare)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def fresh_sdk() -> Iterator[None]:
    """The test starts with no SDK initializer, and leaves none behind."""
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

    Initializer.initializer = None
    Initializer.LOCAL.init = None
    yield
    Initializer.initializer = None
    Initializer.LOCAL.init = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend_url`` (and so ``store``) runs on every backend; on PgBouncer too when marked
    ``pooled``; only where DDL is transactional (not MySQL/MariaDB) when marked
    ``transactional_ddl``."""
    if "backend_url" in metafunc.fixturenames:
        pooled = metafunc.definition.get_closest_marker("pooled") is not None
        backends = BACKENDS + tuple(POOLED) if pooled else BACKENDS
        if metafunc.definition.get_closest_marker("transactional_ddl") is not None:
            backends = tuple(b for b in backends if b != "mysql")
        metafunc.parametrize("backend_url", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated test database on each backend (its URL); see pytest_generate_tests."""
    url = backend_or_skip(request.param, tmp_path_factory.mktemp(request.param))
    upgrade(url)
    return url


@pytest.fixture(scope="session", params=BACKENDS[1:])
def server_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated test database on each database server (PostgreSQL, MySQL/MariaDB)."""
    url = backend_or_skip(request.param, tmp_path_factory.mktemp(request.param))
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The migrated PostgreSQL test database alone (reached directly), for what only runs there."""
    url = backend_or_skip("postgresql", tmp_path_factory.mktemp("postgresql"))
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def mysql_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The migrated MySQL/MariaDB test database alone, for what only runs there."""
    url = backend_or_skip("mysql", tmp_path_factory.mktemp("mysql"))
    upgrade(url)
    return url


@pytest.fixture
def direct_backend_url(request: pytest.FixtureRequest, backend_url: str) -> str:
    """``backend_url``'s database reached directly: past PgBouncer for the pooled backends."""
    backend = request.node.callspec.params["backend_url"]
    if backend not in POOLED:
        return backend_url
    return direct_url(backend).render_as_string(hide_password=False)


@pytest.fixture
def store(backend_url: str) -> Iterator[SQLAlchemyTokenStore]:
    """A store on an empty token table, on each backend."""
    token_store = SQLAlchemyTokenStore(backend_url)
    token_store.delete_tokens()
    yield token_store
    token_store.close()
