"""The FastAPI recipe: ``zoho-sa-store upgrade`` deploys, the lifespan opens and closes the one
store, and the real SDK runs through it (against the offline stand-in)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from main import Settings, create_app
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer

from zoho_sa_store import SQLAlchemyTokenStore
from zoho_sa_store.cli import main as zoho_sa_store_cli
from zoho_sa_store.testing import ZohoStandIn

CLIENT = {"client_id": "1000.FASTAPIAPP", "client_secret": "fastapi-app-secret"}


def deploy(database_url: str) -> None:
    """The deploy: ``ZOHO_SA_STORE_URL=... zoho-sa-store upgrade``."""
    result = CliRunner().invoke(
        zoho_sa_store_cli, ["upgrade"], env={"ZOHO_SA_STORE_URL": database_url}
    )
    assert result.exit_code == 0, result.output


def test_health_says_whether_the_store_is_deployed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZOHO_SA_STORE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)  # the settings' fallback
    with TestClient(create_app()) as client:
        before = client.get("/health")
        assert before.status_code == 503 and "upgrade" in before.json()["detail"]
        deploy(database_url)
        answer = client.get("/health")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        pool = client.app.state.store.engine.pool
        assert pool.checkedin() > 0
    assert client.app.state.store.engine.pool.checkedin() == 0  # closed at shutdown


def test_the_sdk_exchanges_the_grant_once_and_a_restarted_app_finds_the_token(
    database_url: str, zoho_stand_in: ZohoStandIn, tmp_path: Path
) -> None:
    deploy(database_url)
    grant = zoho_stand_in.issue_grant("ann@example.com", **CLIENT)
    settings = Settings(
        database_url=database_url,
        grant_token=grant,
        environment=zoho_stand_in.environment(),
        resource_path=str(tmp_path),
        **CLIENT,
    )
    for _process in range(2):  # the first run, then a restart
        Initializer.initializer = None
        with TestClient(create_app(settings)) as client:
            assert client.get("/zoho/me").json() == {"email": "ann@example.com"}
    assert zoho_stand_in.count(grant_type="authorization_code") == 1
    assert zoho_stand_in.count(grant_type="refresh_token") == 0
    with SQLAlchemyTokenStore(database_url) as store:
        [token] = store.get_tokens()
        assert token.get_grant_token() == grant
