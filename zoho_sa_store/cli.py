"""The ``zoho-sa-store`` console script.

Commands: ``upgrade`` and ``current`` (the migrations), ``demo`` (the real SDK through a
whole token lifecycle against the offline stand-in). The database URL: ``--url`` (before or
after the command), else ``$ZOHO_SA_STORE_URL``, else ``sqlite:///zohooauth.db``.
Exit codes: 0 success, 1 a database or SDK failure, 2 a usage error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from zoho_sa_store import migrate
from zoho_sa_store.errors import TokenStoreError
from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.settings import URL_ENV_VAR, check_table_name, resolve_url

F = TypeVar("F", bound=Callable[..., Any])


def failures_as_messages(command: F) -> F:
    """Turn database and migration failures into a one-line error and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TokenStoreError as error:
            raise click.ClickException(str(error)) from error
        except (SQLAlchemyError, CommandError) as error:
            text = " ".join(str(getattr(error, "orig", None) or error).split())
            raise click.ClickException(f"{type(error).__name__}: {text[:300]}") from error

    return wrapper  # type: ignore[return-value]


def connection_options(command: F) -> F:
    """``--url`` and ``--table``, accepted on the group and on each command."""
    command = click.option(
        "--url",
        default=None,
        help=f"Database URL (default: ${URL_ENV_VAR}, else sqlite:///zohooauth.db).",
    )(command)
    return click.option("--table", "table_name", default=None, help="Token table name.")(command)


class Settings:
    """The URL and table name in force for one command."""

    def __init__(self, url: str | None, table_name: str | None) -> None:
        self.url = url
        self.table_name = table_name or DEFAULT_TABLE_NAME

    def merged(self, url: str | None, table_name: str | None) -> Settings:
        return Settings(url or self.url, table_name or self.table_name)


@click.group()
@connection_options
@click.pass_context
def main(ctx: click.Context, url: str | None, table_name: str | None) -> None:
    """Persist the Zoho CRM SDK's OAuth tokens in SQLite, PostgreSQL or MySQL/MariaDB."""
    ctx.obj = Settings(url, table_name)


def _settings(url: str | None, table_name: str | None) -> Settings:
    settings: Settings = click.get_current_context().find_object(Settings) or Settings(None, None)
    merged = settings.merged(url, table_name)
    try:
        check_table_name(merged.table_name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--table") from None
    return merged


@main.command()
@connection_options
@click.argument("revision", default="head")
@failures_as_messages
def upgrade(url: str | None, table_name: str | None, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    s = _settings(url, table_name)
    migrate.upgrade(s.url, revision, table_name=s.table_name)
    shown = resolve_url(s.url).render_as_string(hide_password=True)
    click.echo(f"{shown}: {s.table_name} at {migrate.current(s.url, table_name=s.table_name)}")


@main.command()
@connection_options
@failures_as_messages
def current(url: str | None, table_name: str | None) -> None:
    """Print the schema's current revision (nothing before the first upgrade)."""
    s = _settings(url, table_name)
    click.echo(migrate.current(s.url, table_name=s.table_name) or "")


@main.command()
@connection_options
@failures_as_messages
def demo(url: str | None, table_name: str | None) -> None:
    """Run the real SDK through a token lifecycle against an offline Zoho stand-in.

    Grant exchange and save, a restarted process that finds the token, an expired token
    refreshed, lookup by id, revoke. Nothing leaves 127.0.0.1; secrets are printed masked.
    """
    from zoho_sa_store.demo import run_demo

    s = _settings(url, table_name)
    run_demo(s.url, click.echo, table_name=s.table_name)
