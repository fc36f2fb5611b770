"""An application's own Alembic environment sharing the store's database.

The app here has a ``users`` table, its own ``env.py`` and ``versions/`` (built in a temp
dir) and the default version table ``alembic_version``. Its database is its own
(``<test database>_app``), emptied first, so autogenerate sees only the two histories.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, make_url, text

import zoho_sa_store
from tests.conftest import ensure_database
from tests.test_migrations import tables
from zoho_sa_store import current, include_name, make_include_name, upgrade
from zoho_sa_store.alembic_hooks import store_tables
from zoho_sa_store.settings import make_engine

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

import zoho_sa_store
from app_models import metadata

config = context.config
url = config.attributes["url"]


def run_migrations_online():
    options = {}
    if config.attributes.get("store_engine"):  # SQLite: transactional DDL
        engine = zoho_sa_store.make_engine(url, poolclass=NullPool)
        options["transactional_ddl"] = engine.dialect.name != "mysql"
    else:
        engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                include_name=zoho_sa_store.include_name,
                **options,
            )
            with context.begin_transaction():
                if config.attributes.get("store_first"):
                    zoho_sa_store.upgrade(connection)
                context.run_migrations()
                if not config.attributes.get("store_first"):
                    zoho_sa_store.upgrade(connection)
            assert context.get_context().connection is connection  # the app's, still
    finally:
        engine.dispose()


run_migrations_online()
"""

REVISION = """
import sqlalchemy as sa
from alembic import context, op

revision = "app_0001"
down_revision = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    if context.config.attributes.get("fail"):
        raise RuntimeError("the app's migration failed")


def downgrade():
    op.drop_table("users")
"""


def app_metadata() -> MetaData:
    metadata = MetaData()
    Table("users", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))
    return metadata


@pytest.fixture
def app_url(backend_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database for the app and the store on the backend's server."""
    if backend_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    url = make_url(backend_url)
    url = url.set(database=f"{url.database}_app")
    ensure_database(url)
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered)
    try:
        with engine.begin() as conn:
            existing = MetaData()
            existing.reflect(conn)
            existing.drop_all(conn)
    finally:
        engine.dispose()
    yield rendered


@pytest.fixture
def app_config(app_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The app's Alembic Config: its env.py, one revision, its models module."""
    scripts = tmp_path / "app_migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(textwrap.dedent(ENV_PY))
    (scripts / "versions" / "app_0001_users.py").write_text(textwrap.dedent(REVISION))
    (tmp_path / "app_models.py").write_text(
        "from tests.test_app_alembic import app_metadata\nmetadata = app_metadata()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.attributes["url"] = app_url
    return config


def diffs(url: str, **opts: Any) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(MigrationContext.configure(conn, opts=opts), app_metadata())
            )
    finally:
        engine.dispose()


def named(diff: list[Any]) -> set[str]:
    """The table names that autogenerate's differences are about."""
    found = set()
    for entry in diff:
        for item in entry if isinstance(entry, list) else [entry]:
            obj = item[1] if isinstance(item, tuple) else None
            table = getattr(obj, "table", obj)
            found.add(getattr(table, "name", None) or str(item))
    return found


def test_one_alembic_upgrade_of_the_app_deploys_both_histories(
    app_url: str, app_config: Config
) -> None:
    command.upgrade(app_config, "head")
    assert {"users", "alembic_version", "oauthtoken", "zoho_sa_store_alembic_version"} <= tables(
        app_url
    )
    assert current(app_url) == "0003"
    engine = make_engine(app_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "app_0001"
    finally:
        engine.dispose()
    command.upgrade(app_config, "head")  # again: nothing to do for either
    assert current(app_url) == "0003"


def test_the_apps_autogenerate_leaves_the_store_alone(app_url: str, app_config: Config) -> None:
    command.upgrade(app_config, "head")
    command.check(app_config)  # the app's env.py sets include_name: nothing detected
    upgrade(app_url, table_name="crm_tokens")
    engine = make_engine(app_url)
    try:
        with engine.begin() as conn:  # what an adopted table with duplicates leaves
            conn.execute(text("CREATE TABLE oauthtoken_duplicates (id VARCHAR(64))"))
    finally:
        engine.dispose()
    ours = store_tables("oauthtoken", "crm_tokens")
    assert ours == {
        "oauthtoken",
        "oauthtoken_duplicates",
        "zoho_sa_store_alembic_version",
        "crm_tokens",
        "crm_tokens_duplicates",
        "zoho_sa_store_alembic_version_crm_tokens",
    }
    without = named(diffs(app_url))
    assert ours - {"crm_tokens_duplicates"} <= without  # the test can fail: drop them all
    assert named(diffs(app_url, include_name=include_name)) == {
        "crm_tokens",
        "zoho_sa_store_alembic_version_crm_tokens",
    }
    assert diffs(app_url, include_name=make_include_name("oauthtoken", "crm_tokens")) == []


def test_hook_names() -> None:
    assert include_name("users", "table", {}) is True
    assert include_name("oauthtoken", "table", {}) is False
    assert include_name("ix_oauthtoken_grant_token", "index", {"table_name": "oauthtoken"}) is False
    assert include_name("uq_users_name", "unique_constraint", {"table_name": "users"}) is True
    assert include_name("public", "schema", {}) is True
    with pytest.raises(ValueError):
        make_include_name("bad name;")
    assert zoho_sa_store.include_name is include_name


@pytest.mark.transactional_ddl  # MySQL/MariaDB commit each DDL statement
def test_a_failed_app_migration_rolls_back_ours_too(app_url: str, app_config: Config) -> None:
    app_config.attributes.update(store_first=True, fail=True, store_engine=True)
    with pytest.raises(RuntimeError, match="the app's migration failed"):
        command.upgrade(app_config, "head")
    assert not tables(app_url) & {"users", "oauthtoken", "zoho_sa_store_alembic_version"}
    app_config.attributes["fail"] = False
    command.upgrade(app_config, "head")
    assert {"users", "oauthtoken"} <= tables(app_url) and current(app_url) == "0003"


@pytest.mark.transactional_ddl  # MySQL/MariaDB commit each DDL statement
def test_upgrade_on_a_connection_does_not_commit_its_transaction(app_url: str) -> None:
    engine = make_engine(app_url)
    try:
        with engine.connect() as conn:
            conn.begin()
            upgrade(conn)
            assert conn.in_transaction()
            conn.rollback()
        assert "oauthtoken" not in tables(app_url)
        with engine.connect() as conn:
            upgrade(conn)  # no transaction open: one of its own, committed
            assert not conn.in_transaction()
        assert current(app_url) == "0003"
    finally:
        engine.dispose()


def test_only_the_apps_upgrade_runs_the_stores_migrations(app_url: str, app_config: Config) -> None:
    """The app's env.py runs for every command; the store's migrations only under upgrade."""
    app_config.stdout = io.StringIO()
    command.current(app_config)
    command.stamp(app_config, "head")
    command.stamp(app_config, "base")
    assert not {"oauthtoken", "zoho_sa_store_alembic_version"} & tables(app_url)
    command.upgrade(app_config, "head")
    assert {"oauthtoken", "zoho_sa_store_alembic_version"} <= tables(app_url)
