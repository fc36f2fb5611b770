"""No token on an exception: ``TokenStoreError``, its ``cause`` and everything its chain reaches.

Every object reachable from the raised error (attributes, ``args``, ``__cause__``,
``__context__``, SQLAlchemy's ``orig``, the driver's own attributes such as psycopg2's
``cursor``, psycopg 3's ``pgconn``/``pgresult`` and ``diag``) is searched for the secrets
of the failed call; traceback frames are not (any Python exception's frames hold the
call's local variables). Cases: a unique violation, a save whose retries ran out, a value
too long for its column, a connection lost twice; with psycopg2, psycopg 3, PyMySQL and
sqlite3 where each applies.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, make_url, text
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.conftest import backend_or_skip
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, migrate

ACCESS = "1000.chain-access-7d41c0e95b"
REFRESH = "1000.chain-refresh-2f8a6b13c4"
GRANT = "1000.chain-grant-90e3d5a7f1"
SECRET = "chain-client-secret-4c2e8f"
SECRETS = (ACCESS, REFRESH, GRANT, SECRET)
SKIPPED = (
    types.TracebackType,
    types.FrameType,
    types.ModuleType,
    types.CodeType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    type,
)
DRIVERS = {
    "sqlite": "sqlite",
    "psycopg2": "postgresql",
    "psycopg": "postgresql",
    "pymysql": "mysql",
}


def reachable_text(root: object, limit: int = 50_000) -> list[tuple[str, str]]:
    """(path, text) for every str or bytes reachable from ``root``, frames excluded."""
    return walk(root, limit)[0]


def walk(root: object, limit: int = 50_000) -> tuple[list[tuple[str, str]], set[int]]:
    """What :func:`reachable_text` returns, and the ids of every object reached."""
    found: list[tuple[str, str]] = []
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(root, "error")]
    while stack and len(seen) < limit:
        obj, path = stack.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            found.append((path, obj))
        elif isinstance(obj, (bytes, bytearray, memoryview)):
            found.append((path, bytes(obj).decode("utf-8", "replace")))
        elif isinstance(obj, (int, float, complex, *SKIPPED)):
            continue
        elif isinstance(obj, dict):
            stack += [(v, f"{path}[{k!r}]") for k, v in obj.items()]
            stack += [(k, f"{path}.keys()") for k in obj]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        else:
            names = set(vars(obj)) if hasattr(obj, "__dict__") else set()
            names |= {n for n in dir(obj) if not n.startswith("__")}
            if isinstance(obj, BaseException):
                names |= {"args", "__cause__", "__context__"}
                found.append((f"str({path})", str(obj)))
            found.append((f"repr({path})", repr(obj)))
            for name in names:
                try:
                    value = getattr(obj, name)
                except Exception:
                    continue
                if callable(value) and not isinstance(value, BaseException):
                    continue
                stack.append((value, f"{path}.{name}"))
    return found, seen


def assert_no_secret(error: TokenStoreError) -> None:
    reached, seen = walk(error)
    leaks = [(path, s) for path, value in reached for s in SECRETS if s in value]
    assert leaks == []
    orig = getattr(error.cause, "orig", None)  # the walk went down to the driver's error
    assert orig is not None and id(error.cause) in seen and id(orig) in seen


@pytest.fixture(params=list(DRIVERS))  # tests of the servers alone parametrize it themselves
def driver_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    backend = DRIVERS[request.param]
    url = backend_or_skip(backend, tmp_path_factory.mktemp(request.param))
    if request.param == "psycopg":
        pytest.importorskip("psycopg")
        url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    return url


@pytest.fixture
def table_store(driver_url: str) -> Iterator[Callable[[str], SQLAlchemyTokenStore]]:
    """Stores on tables of their own (created, then dropped with their version tables)."""
    made: list[tuple[str, SQLAlchemyTokenStore]] = []

    def make(name: str) -> SQLAlchemyTokenStore:
        migrate.downgrade(driver_url, "base", table_name=name, drop_data=True)
        migrate.upgrade(driver_url, table_name=name)
        store = SQLAlchemyTokenStore(driver_url, table_name=name, refresh=False)
        made.append((name, store))
        return store

    yield make
    for name, store in made:
        store.close()
        migrate.downgrade(driver_url, "base", table_name=name, drop_data=True)


def secret_token(user: str, **extra: Any) -> OAuthToken:
    return OAuthToken(
        client_id="1000.CHAIN",
        client_secret=SECRET,
        access_token=ACCESS,
        refresh_token=REFRESH,
        grant_token=GRANT,
        user_signature=UserSignature(user),
        **extra,
    )


def test_unique_violation(table_store: Callable[[str], SQLAlchemyTokenStore]) -> None:
    store = table_store("zss_chain_unique")
    other = OAuthToken(client_id="1000.CHAIN", access_token="1000.other-access")
    other.set_user_signature(UserSignature("bo@example.com"))
    store.save_token(other)
    mine = OAuthToken(client_id="1000.CHAIN", access_token="1000.mine-access")
    mine.set_user_signature(UserSignature("ann@example.com"))
    store.save_token(mine)
    clash = secret_token("bo@example.com", id=mine.get_id())  # ann's row, bo's user name
    with pytest.raises(TokenStoreError, match="another row has this token") as caught:
        store.save_token(clash)
    assert_no_secret(caught.value)


def test_retries_exhausted(
    table_store: Callable[[str], SQLAlchemyTokenStore], driver_url: str
) -> None:
    store = table_store("zss_chain_retry")
    prefix = "(100)" if store.engine.dialect.name == "mysql" else ""
    with store.engine.begin() as conn:  # every insert of this redirect_url now fails
        conn.execute(
            text(f"CREATE UNIQUE INDEX uq_chain_redirect ON zss_chain_retry (redirect_url{prefix})")
        )
    first = OAuthToken(client_id="1000.CHAIN", access_token="1000.first", redirect_url="https://cb")
    first.set_user_signature(UserSignature("bo@example.com"))
    store.save_token(first)
    with pytest.raises(TokenStoreError, match=r"\(3 attempts\)") as caught:
        store.save_token(secret_token("ann@example.com", redirect_url="https://cb"))
    assert_no_secret(caught.value)


SERVERS = pytest.mark.parametrize("driver_url", ["psycopg2", "psycopg", "pymysql"], indirect=True)
"""Where columns have lengths and connections can be lost: not SQLite (a file; any length)."""


@SERVERS
def test_value_too_long(
    table_store: Callable[[str], SQLAlchemyTokenStore], driver_url: str
) -> None:
    store = table_store("zss_chain_long")
    alter = {
        "postgresql": "ALTER TABLE zss_chain_long ALTER COLUMN client_secret TYPE varchar(8)",
        "mysql": "ALTER TABLE zss_chain_long MODIFY client_secret varchar(8) COLLATE utf8mb4_bin",
    }[store.engine.dialect.name]
    with store.engine.begin() as conn:
        conn.execute(text(alter))
    failed = r"save_token failed \(DataError (22001|1406)\)"
    with pytest.raises(TokenStoreError, match=failed) as caught:
        store.save_token(secret_token("ann@example.com"))
    assert_no_secret(caught.value)


@SERVERS
def test_lost_connection(
    table_store: Callable[[str], SQLAlchemyTokenStore], driver_url: str
) -> None:
    """Every INSERT's connection is killed by the server just before it runs: the store's
    one retry on a new connection meets the same, and the save fails."""
    backend = make_url(driver_url).get_backend_name()
    store = table_store("zss_chain_lost")
    admin = create_engine(driver_url, isolation_level="AUTOCOMMIT")
    kills = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def kill(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("INSERT"):
            return
        dbapi = conn.connection.dbapi_connection
        with admin.connect() as other:
            if backend == "postgresql":
                pid = dbapi.info.backend_pid
                other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            else:
                other.exec_driver_sql(f"KILL CONNECTION {int(dbapi.thread_id())}")
        kills.append(statement)

    try:
        with pytest.raises(TokenStoreError, match="save_token failed") as caught:
            store.save_token(secret_token("ann@example.com"))
    finally:
        admin.dispose()
    assert len(kills) == 2  # the first attempt and its one retry
    assert caught.value.cause is not None
    assert getattr(caught.value.cause, "connection_invalidated", False)
    assert_no_secret(caught.value)


def test_the_walk_finds_a_psycopg2_cursor_query(tmp_path: Path) -> None:
    """The search itself: an unscrubbed psycopg2 error exposes the inlined statement."""
    psycopg2 = pytest.importorskip("psycopg2")
    url = make_url(backend_or_skip("postgresql", tmp_path))
    connection = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, dbname=url.database
    )
    try:
        with pytest.raises(psycopg2.Error) as caught:
            connection.cursor().execute("SELECT 1/0 WHERE %s = ''", (ACCESS,))
    finally:
        connection.close()
    assert ("error.cursor.query", f"SELECT 1/0 WHERE '{ACCESS}' = ''") in reachable_text(
        caught.value
    )
