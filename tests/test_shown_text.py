"""What the store prints or logs: URLs without passwords, stored values escaped, engines
that would log tokens warned about, undecodable values never quoted, the duplicates side
table looked after like the token table."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, inspect, make_url, text
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.test_adopt import TABLE, dbstore_table
from tests.test_secret_errors import reachable_text
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, upgrade
from zoho_sa_store.cli import _passwords, main
from zoho_sa_store.demo import rows
from zoho_sa_store.hygiene import printable, printable_json, safe_url
from zoho_sa_store.migrate import downgrade
from zoho_sa_store.settings import make_engine

__all__ = ["dbstore_table"]  # the fixture, shared with tests/test_adopt.py
PASSWORD = "pw-secret-q7"  # also caught by the session's leak check (tests/leakcheck.py)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# -- ?password= -------------------------------------------------------------------------


def test_safe_url_masks_every_password() -> None:
    assert safe_url("postgresql+psycopg2://app:pw@db/app?password=q&sslmode=require") == (
        "postgresql+psycopg2://app:***@db/app?password=***&sslmode=require"
    )
    assert safe_url("mysql+pymysql://root@db/app?PASSWORD=q&passwd=r&charset=utf8mb4") == (
        "mysql+pymysql://root@db/app?PASSWORD=***&charset=utf8mb4&passwd=***"
    )
    assert safe_url("postgresql://db/app?sslpassword=k&password=a&password=b") == (
        "postgresql://db/app?password=***&sslpassword=***"
    )
    assert safe_url("not a url: pw") == "<not a database URL>"
    assert _passwords(["postgresql://u:a%2Fb@db/x?password=c%26d", None]) == {
        "a/b",
        "a%2Fb",
        "c&d",
        "c%26d",
    }


def test_a_url_that_does_not_parse_is_a_clear_error() -> None:
    code, output = cli("--url", f"postgresql+psycopg2://u:{PASSWORD}@db:notaport/x", "list")
    assert (code, output) == (
        1,
        "Error: list failed (ArgumentError): Could not parse SQLAlchemy URL from given URL "
        "string\n",
    )


def with_password(url: str) -> str:
    return url + ("&" if "?" in url else "?") + f"password={PASSWORD}"


def test_a_query_password_is_masked_everywhere(
    backend_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = with_password(backend_url)
    backend = make_url(url).get_backend_name()
    shown = []
    with caplog.at_level(logging.DEBUG):
        if backend != "sqlite":  # a SQLite URL takes no query password: refused below
            store = SQLAlchemyTokenStore(url, table_name="zss_masked")
            shown = [repr(store), repr(store.engine), str(store.engine.url)]
            assert ":***@" in repr(store)  # moved to the userinfo, which SQLAlchemy masks
            assert ":***@" in repr(store.engine)
            store.close()
        code, output = cli("--url", url, "--table", "zss_masked", "upgrade")
        imported = cli("--url", backend_url, "import-dbstore", url, "--table", "no_such_table")
    for text_ in [*shown, output, imported[1], caplog.text]:
        assert PASSWORD not in text_
    if backend == "postgresql":  # trust authentication: the password is not needed
        assert code == 0 and output.startswith(safe_url(url)) and "password=***" in output
        assert imported[0] == 1 and "no table 'no_such_table' in " in imported[1]
        assert "password=***" in imported[1]
        downgrade(backend_url, "base", table_name="zss_masked")
    else:  # SQLite takes no password; MariaDB's root has none: both fail, masked
        assert code == 1 and output.startswith("Error: upgrade failed")


# -- stored values on the terminal ------------------------------------------------------

HOSTILE = {
    "user": "ann@example.com\r\x1b[2K\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "client": "1000.C\nFORGED-ROW  bo@example.com  1000.X",
    "api_domain": "https://www.zohoapis.com\u202etxt.exe\u2066",
    "redirect": "https://app/cb\x9b31m\x7f\u200b",
}


def raw_controls(output: str) -> list[str]:
    """The characters a terminal would act on, anywhere but the line ends."""
    return [c for c in output.replace("\n", "") if not c.isprintable()]


def test_the_cli_escapes_control_characters(store: SQLAlchemyTokenStore, backend_url: str) -> None:
    hostile = OAuthToken(
        client_id=HOSTILE["client"],
        client_secret="s",
        access_token="1000.hostile-access",
        redirect_url=HOSTILE["redirect"],
        api_domain=HOSTILE["api_domain"],
        user_signature=UserSignature(HOSTILE["user"]),
    )
    hostile.set_expires_in("1000000000000")  # long expired, no refresh token: purge's
    store.save_token(hostile)
    row_id = str(hostile.get_id())
    outputs = {
        "list": cli("list", "--url", backend_url),
        "show": cli("show", row_id, "--url", backend_url),
        "json": cli("list", "--json", "--url", backend_url),
        "show-json": cli("show", row_id, "--json", "--url", backend_url),
        "purge": cli("purge", "--dry-run", "--url", backend_url),
    }
    for name, (code, output) in outputs.items():
        assert code == 0, (name, output)
        assert raw_controls(output) == [], name
    assert len(outputs["list"][1].splitlines()) == 2  # the header and one row: none forged
    assert printable(HOSTILE["user"]) in outputs["list"][1]
    assert (
        "ann@example.com\\r\\x1b[2K\\x1b]8;;https://evil.example/\\x1b\\click"
        in (outputs["show"][1])
    )
    assert "1000.C\\nFORGED-ROW" in outputs["show"][1]
    assert "\\u202etxt.exe\\u2066" in outputs["show"][1]
    assert "https://app/cb\\x9b31m\\x7f\\u200b" in outputs["show"][1]
    assert len(outputs["purge"][1].splitlines()) == 2
    assert json.loads(outputs["json"][1])[0]["api_domain"] == HOSTILE["api_domain"]
    assert json.loads(outputs["show-json"][1])["user_name"] == HOSTILE["user"]
    demo_lines = rows(store)  # the demo's listing of a database named with --url
    assert len(demo_lines) == 3 and raw_controls("".join(demo_lines)) == []


def test_printable_json_keeps_the_value() -> None:
    value = {"a": "x\u202ey\x9b\U000e0001\n"}
    shown = printable_json(json.dumps(value, ensure_ascii=False, indent=2))
    assert shown.isascii() and json.loads(shown) == value


# -- engines that log tokens ------------------------------------------------------------


def warnings_for(caplog: pytest.LogCaptureFixture, engine: Engine) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zoho_sa_store"):
        SQLAlchemyTokenStore(engine=engine)
    engine.dispose()
    return [r.getMessage() for r in caplog.records if r.name == "zoho_sa_store.store"]


@pytest.fixture
def quiet_sqlalchemy() -> Iterator[None]:
    """SQLAlchemy's loggers at WARNING (the session's leak check logs them at DEBUG), and
    as they were afterwards."""
    names = ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.engine.Engine.mine")
    levels = {name: logging.getLogger(name).level for name in names}
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_an_engine_that_logs_tokens_is_warned_about(
    backend_url: str, caplog: pytest.LogCaptureFixture, quiet_sqlalchemy: None
) -> None:
    params = "secrets will reach the log: the engine logs bound parameters (tokens) to"
    rows = "secrets will reach the log: the engine logs result rows (stored tokens) to"
    hidden = "the engine does not hide parameters: its errors may show token values"

    def kinds(engine: Engine) -> list[str]:
        found = warnings_for(caplog, engine)
        return [k for k, text_ in (("hidden", hidden), ("params", params), ("rows", rows))
                if any(w.startswith(text_) for w in found)]  # fmt: skip

    assert kinds(make_engine(backend_url)) == []
    assert kinds(make_engine(backend_url, echo=True)) == []  # statements only, values hidden
    assert kinds(make_engine(backend_url, echo="debug")) == []  # rows hidden by its filter
    assert kinds(create_engine(backend_url)) == ["hidden"]
    assert kinds(create_engine(backend_url, echo=True)) == ["hidden", "params"]
    assert kinds(create_engine(backend_url, echo="debug")) == ["hidden", "params", "rows"]
    assert kinds(make_engine(backend_url, hide_parameters=False, echo=True)) == [
        "hidden",
        "params",
    ]
    assert kinds(make_engine(backend_url, logging_name="mine", echo="debug")) == ["rows"]
    logging.getLogger("sqlalchemy.engine.Engine.mine").setLevel(logging.DEBUG)
    assert kinds(create_engine(backend_url, hide_parameters=True, logging_name="mine")) == ["rows"]
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    assert kinds(create_engine(backend_url)) == ["hidden", "params"]
    assert kinds(make_engine(backend_url)) == []
    found = warnings_for(caplog, create_engine(backend_url, echo="debug"))
    assert any("'sqlalchemy.engine.Engine'" in w for w in found)  # the logger is named


# -- a stored value that is not UTF-8 (SQLite: written by another program) --------------

BAD = b"1000.undecodable-" + b"\xff" + b"tail-7c1e"


def _write_bad_value(path: Path, table: str, column: str, where: str) -> None:
    raw = sqlite3.connect(path)
    try:
        raw.execute(f"UPDATE {table} SET {column} = CAST(? AS TEXT) WHERE {where}", (BAD,))
        raw.commit()
    finally:
        raw.close()


def test_an_undecodable_value_is_never_quoted(tmp_path: Path) -> None:
    """Only SQLite stores bytes that are not UTF-8 in a text column (PostgreSQL and
    MariaDB refuse them on write)."""
    path = tmp_path / "tokens.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    with SQLAlchemyTokenStore(url, refresh=False) as store:
        t = OAuthToken(client_id="1000.A", access_token="1000.fine")
        t.set_user_signature(UserSignature("ann@example.com"))
        store.save_token(t)
        _write_bad_value(path, "oauthtoken", "access_token", "1 = 1")
        for call in (lambda: store.find_token_by_id(str(t.get_id())), store.get_tokens):
            with pytest.raises(TokenStoreError) as caught:
                call()
            shown = [value for _, value in reachable_text(caught.value)]
            assert not [s for s in shown if "undecodable" in s or "tail-7c1e" in s]
            assert "a stored text value is not valid UTF-8" in str(caught.value.cause)
    for args in (["list"], ["show", str(t.get_id())], ["export"]):
        code, output = cli(*args, "--url", url)
        assert code == 1 and "undecodable" not in output and "tail" not in output
        assert "not valid UTF-8 (byte 17 of 27); its text is not shown" in output

    source = tmp_path / "dbstore.db"  # import-dbstore reads another program's table
    raw = sqlite3.connect(source)
    raw.execute(
        "CREATE TABLE oauthtoken (id varchar(10), user_name varchar(255), client_id "
        "varchar(255), client_secret varchar(255), refresh_token varchar(255), access_token "
        "varchar(255), grant_token varchar(255), expiry_time varchar(20), redirect_url "
        "varchar(255), api_domain varchar(255))"
    )
    raw.execute("INSERT INTO oauthtoken (id, user_name, refresh_token) VALUES ('1', 'bo', 'x')")
    raw.commit()
    raw.close()
    _write_bad_value(source, "oauthtoken", "client_secret", "id = '1'")
    code, output = cli("--url", url, "import-dbstore", f"sqlite:///{source}")
    assert code == 1 and "undecodable" not in output and "tail" not in output
    assert "its text is not shown" in output


# -- the duplicates side table ----------------------------------------------------------


def side_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id FROM {TABLE}_duplicates")).scalars().all()
    return sorted(str(r) for r in rows)


def test_the_duplicates_side_table_is_covered(dbstore_table: str) -> None:
    url = dbstore_table
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # one more duplicate: no refresh token, long expired
            conn.execute(
                text(
                    f"INSERT INTO {TABLE} (id, user_name, client_id, client_secret, access_token,"
                    " expiry_time) VALUES ('17', 'dup@example.com', '1000.A', 'secret',"
                    " '1000.adup17', '1500000000000')"
                )
            )
        upgrade(url, table_name=TABLE)
        assert side_ids(engine) == ["12", "14", "17"]
        where = ["--url", url, "--table", TABLE]
        code, output = cli("purge", "--dry-run", *where)
        assert code == 0 and side_ids(engine) == ["12", "14", "17"]
        assert output.splitlines() == [
            f"17  dup@example.com  1000.A  2017-07-14 02:40Z (expired)  ({TABLE}_duplicates)",
            "would delete 1 token(s)",
        ]
        assert cli("purge", *where) == (0, output.replace("would delete", "deleted"))
        assert side_ids(engine) == ["12", "14"]

        with SQLAlchemyTokenStore(url, table_name=TABLE) as store:
            store.delete_tokens()  # the token table alone: the side table still holds two
        with pytest.raises(RuntimeError, match=f"drop '{TABLE}_duplicates' with its 2 tokens"):
            downgrade(url, "base", table_name=TABLE)
        assert cli("delete-all", "--yes", *where) == (0, "deleted 2 token(s)\n")
        assert side_ids(engine) == []
        downgrade(url, "base", table_name=TABLE)
        assert not inspect(engine).has_table(f"{TABLE}_duplicates")
        assert not inspect(engine).has_table(TABLE)
    finally:
        engine.dispose()
