"""A FastAPI app with one token store per process.

Deploy (create or upgrade the token table) with the same URL as the app, before it starts::

    export ZOHO_SA_STORE_URL=postgresql+psycopg2://app@db/app
    zoho-sa-store upgrade
    uvicorn main:app

Settings come from the environment: ``ZOHO_SA_STORE_URL`` (else ``DATABASE_URL``), and
``ZOHO_CLIENT_ID``, ``ZOHO_CLIENT_SECRET``, ``ZOHO_GRANT_TOKEN`` for the SDK.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc import USDataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations

import zoho_sa_store
from zoho_sa_store import SQLAlchemyTokenStore


@dataclass(frozen=True)
class Settings:
    database_url: str
    client_id: str = ""
    client_secret: str = ""
    grant_token: str = ""
    environment: Any = field(default_factory=USDataCenter.PRODUCTION)
    resource_path: str = "."  # the SDK's field-metadata cache

    @classmethod
    def from_env(cls) -> Settings:
        url = os.environ.get("ZOHO_SA_STORE_URL") or os.environ.get("DATABASE_URL")
        if not url:
            raise RuntimeError("set ZOHO_SA_STORE_URL or DATABASE_URL")
        return cls(
            database_url=url,
            client_id=os.environ.get("ZOHO_CLIENT_ID", ""),
            client_secret=os.environ.get("ZOHO_CLIENT_SECRET", ""),
            grant_token=os.environ.get("ZOHO_GRANT_TOKEN", ""),
            resource_path=os.environ.get("ZOHO_RESOURCE_PATH", "."),
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings or Settings.from_env()
        app.state.store = SQLAlchemyTokenStore(app.state.settings.database_url)
        try:
            yield
        finally:
            app.state.store.close()

    app = FastAPI(lifespan=lifespan)
    sdk_lock = threading.Lock()

    @app.get("/health")
    def health(request: Request) -> dict[str, Any]:
        """200 once the token table is deployed at head; 503 with the reason otherwise."""
        ready = zoho_sa_store.check_ready(request.app.state.store.engine)  # never raises
        if not ready:
            raise HTTPException(503, ready.reason)  # names the problem, never a secret
        return {"status": "ok"}

    @app.get("/zoho/me")
    def zoho_me(request: Request) -> dict[str, Any]:
        """One CRM call through the SDK (sync: FastAPI runs it in its thread pool)."""
        settings: Settings = request.app.state.settings
        with sdk_lock:  # initialize once per process; it calls Zoho Accounts at once
            if Initializer.get_initializer() is None:
                Initializer.initialize(
                    environment=settings.environment,
                    token=OAuthToken(
                        client_id=settings.client_id,
                        client_secret=settings.client_secret,
                        grant_token=settings.grant_token,
                    ),
                    store=request.app.state.store,
                    resource_path=settings.resource_path,
                )
        params = ParameterMap()
        params.add(GetUsersParam.type, "CurrentUser")
        users = UsersOperations().get_users(params).get_object().get_users()
        return {"email": users[0].get_email()}

    return app


app = create_app()
