"""A Flask app with a model of its own and the token store in the same database.

Deploy both schemas with one command, from this folder::

    export DATABASE_URL=postgresql+psycopg2://app@db/app
    flask db upgrade

``migrations/env.py`` runs the app's own revisions, then the store's
(``zoho_sa_store.upgrade(connection)``, in the same transaction), and hides the store's
tables from ``flask db migrate`` (``include_name=zoho_sa_store.include_name``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask, current_app, request
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.dc import USDataCenter
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
from zohocrmsdk.src.com.zoho.crm.api.users import GetUsersParam, UsersOperations

from zoho_sa_store import SQLAlchemyTokenStore

MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class Note(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(db.String(200))


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///app.db")
    app.config["ZOHO_ENVIRONMENT"] = USDataCenter.PRODUCTION()
    app.config["ZOHO_RESOURCE_PATH"] = app.instance_path  # the SDK's field-metadata cache
    for key in ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_GRANT_TOKEN"):
        app.config[key] = os.environ.get(key, "")
    app.config.update(config or {})
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))

    @app.post("/notes")
    def add_note() -> dict[str, Any]:
        note = Note(text=request.get_json()["text"])
        db.session.add(note)
        db.session.commit()
        return {"id": note.id, "text": note.text}

    @app.get("/zoho/me")
    def zoho_me() -> dict[str, Any]:
        """One CRM call: the current Zoho user's email."""
        init_zoho_sdk()
        params = ParameterMap()
        params.add(GetUsersParam.type, "CurrentUser")
        users = UsersOperations().get_users(params).get_object().get_users()
        return {"email": users[0].get_email()}

    return app


_sdk_lock = threading.Lock()


def token_store(app: Flask) -> SQLAlchemyTokenStore:
    """The app's one store, on the app's own database (close it with ``.close()``)."""
    with _sdk_lock:
        if "zoho_sa_store" not in app.extensions:
            # the URL Flask-SQLAlchemy resolved (a relative SQLite path lives in the
            # instance folder, where `flask db upgrade` deployed), not the configured one
            with app.app_context():
                url = db.engine.url.render_as_string(hide_password=False)
            app.extensions["zoho_sa_store"] = SQLAlchemyTokenStore(url)
        store: SQLAlchemyTokenStore = app.extensions["zoho_sa_store"]
        return store


def init_zoho_sdk() -> None:
    """Initialize the SDK once per process, on first use (it calls Zoho Accounts at once).

    The first process exchanges the grant and the store saves the tokens; every later
    process (a restart, another worker) finds them in the store by the same grant.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    store = token_store(app)
    os.makedirs(app.config["ZOHO_RESOURCE_PATH"], exist_ok=True)
    with _sdk_lock:
        if Initializer.get_initializer() is not None:
            return
        token = OAuthToken(
            client_id=app.config["ZOHO_CLIENT_ID"],
            client_secret=app.config["ZOHO_CLIENT_SECRET"],
            grant_token=app.config["ZOHO_GRANT_TOKEN"],
        )
        Initializer.initialize(
            environment=app.config["ZOHO_ENVIRONMENT"],
            token=token,
            store=store,
            resource_path=app.config["ZOHO_RESOURCE_PATH"],
        )
