"""The Flask recipe: ``flask db upgrade`` deploys the app and the store, autogenerate sees only
the app's tables, and the real SDK runs through the store (against the offline stand-in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from app import create_app, db, token_store
from sqlalchemy import create_engine, inspect

import zoho_sa_store
from zoho_sa_store.testing import ZohoStandIn

HERE = Path(__file__).parent
CLIENT = {"ZOHO_CLIENT_ID": "1000.FLASKAPP", "ZOHO_CLIENT_SECRET": "flask-app-secret"}


def flask_db_upgrade(database_url: str) -> None:
    """The deploy: one command, run as a deploy script runs it."""
    env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "app"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=HERE, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_flask_db_upgrade_deploys_the_app_and_the_store(database_url: str) -> None:
    flask_db_upgrade(database_url)
    flask_db_upgrade(database_url)  # a second deploy has nothing to do
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert {"note", "alembic_version", "oauthtoken"} <= tables
            assert "zoho_sa_store_alembic_version" in tables
            assert zoho_sa_store.current(conn.engine) is not None

            # `flask db migrate` would find nothing: not the app's table, not the store's
            hook = {"include_name": zoho_sa_store.include_name}
            assert compare_metadata(MigrationContext.configure(conn, opts=hook), db.metadata) == []
            # without the hook it would drop the store's tables
            unhooked = compare_metadata(MigrationContext.configure(conn), db.metadata)
            assert ("remove_table", "oauthtoken") in {(d[0], d[1].name) for d in unhooked}
    finally:
        engine.dispose()


def test_the_sdk_exchanges_the_grant_once_and_a_restarted_app_finds_the_token(
    database_url: str, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    flask_db_upgrade(database_url)
    grant = zoho_stand_in.issue_grant(
        "ann@example.com",
        client_id=CLIENT["ZOHO_CLIENT_ID"],
        client_secret=CLIENT["ZOHO_CLIENT_SECRET"],
    )
    config = {
        **CLIENT,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "ZOHO_GRANT_TOKEN": grant,
        "ZOHO_ENVIRONMENT": zoho_stand_in.environment(),
        "ZOHO_RESOURCE_PATH": str(tmp_path),
    }
    for _process in range(2):  # the first run, then a restart
        from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

        Initializer.initializer = None
        app = create_app(config)
        try:
            with app.test_client() as client:
                assert client.get("/zoho/me").json == {"email": "ann@example.com"}
                assert client.post("/notes", json={"text": "hi"}).status_code == 200
        finally:
            token_store(app).close()
            with app.app_context():
                db.engine.dispose()
    assert zoho_stand_in.count(grant_type="authorization_code") == 1
    assert zoho_stand_in.count(grant_type="refresh_token") == 0
    with zoho_sa_store.SQLAlchemyTokenStore(database_url) as store:
        [token] = store.get_tokens()
        assert token.get_grant_token() == grant
