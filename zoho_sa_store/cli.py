"""The ``zoho-sa-store`` console script.

Commands: ``upgrade``, ``current`` and ``check`` (the migrations); ``list``, ``show``,
``delete``, ``delete-all``, ``purge`` and ``export`` (the stored tokens, secrets masked
unless ``export --include-secrets``) and ``import-filestore`` and ``import-dbstore`` (the
SDK's own stores), in :mod:`zoho_sa_store.cli_data`; ``demo`` (the real SDK through a whole
token lifecycle against the offline stand-in); ``keygen`` and ``rotate-keys`` (encryption
keys, :mod:`zoho_sa_store.cli_keys`).
The keys: ``--keys`` (before or after the command), else ``$ZOHO_SA_STORE_KEYS``. The
database URL: ``--url`` (before or after the command), else ``$ZOHO_SA_STORE_URL``, else
``sqlite:///zohooauth.db`` (``demo``: ``--url``, else a throwaway SQLite file); the table:
``--table`` (default ``oauthtoken``; for ``import-dbstore``, ``--table`` names the source
table and ``--target-table`` ours). Only
``upgrade`` and ``demo`` create a database: the others fail on a missing SQLite file.
``--version`` prints the package's version.

Exit codes:
    0: success.
    1: a failure: the database, the SDK or a source file failed (one line naming the
       command and the cause: :func:`describe_failure`), no database at a SQLite path, or
       ``show``/``delete`` found no such id. An import whose source cannot be read wrote
       nothing; one stopped by the database keeps the batches before the failure.
    2: a usage error (bad option or argument, ``delete-all`` without ``--yes``).
    3: the command ran and found something to act on: ``check``, the schema is not at head
       (or differs from the model), or rows are under key ids not configured; an import,
       some rows were reported as conflicts or invalid and not written (the others were);
       ``rotate-keys``, rows could not be decrypted or changed meanwhile.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError, StatementError

from zoho_sa_store import __version__, importers, migrate
from zoho_sa_store.errors import (
    TokenStoreError,
    connection_failure,
    driver_reason,
    failure_message,
)
from zoho_sa_store.health import check_ready
from zoho_sa_store.hygiene import printable, safe_url, url_secrets
from zoho_sa_store.keyring import KEYS_ENV_VAR, KeyringError
from zoho_sa_store.keystate import encryption_state, unreadable_key_ids
from zoho_sa_store.model import DEFAULT_TABLE_NAME
from zoho_sa_store.sdk import MissingSDK
from zoho_sa_store.settings import URL_ENV_VAR, check_table_name, resolve_url, sqlite_file
from zoho_sa_store.store import SQLAlchemyTokenStore

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ATTENTION = 3
"""``check``: not at head; an import: conflicts or invalid rows were reported."""
MIGRATION_COMMANDS = frozenset({"upgrade", "current", "check"})
"""Their failures print the driver's text for any statement: DDL and the version table."""


def failures_as_messages(command: F) -> F:
    """Turn database and migration failures into a one-line error and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except importers.SourceError as error:
            raise click.ClickException(str(error)) from error
        except (TokenStoreError, SQLAlchemyError, CommandError) as error:
            message = describe_failure(error, kwargs.get("url"), kwargs.get("source_url"))
            raise click.ClickException(message) from error
        except MissingSDK as error:  # the demo, the imports: the Zoho SDK is not installed
            raise click.ClickException(str(error)) from error
        except ModuleNotFoundError as error:  # the URL's driver is not installed
            raise click.ClickException(
                f"the database driver {error.name!r} is not installed: name the driver in the "
                "URL (postgresql+psycopg2://, mysql+pymysql://) and install its extra "
                "(pip install 'zoho-sa-store[postgres]', '[psycopg]' or '[mysql]')"
            ) from error

    return wrapper  # type: ignore[return-value]


def describe_failure(error: Exception, *urls: str | None) -> str:
    """``<command> failed (<class> [<driver code>])``, and why when that names no value.

    Why: the driver's text for a failure to connect or log in ("connection refused",
    "password authentication failed", "Unknown database"), for SQLAlchemy's and Alembic's
    own errors, and for any failure of a migration command; never for a statement on the
    tokens, whose text may quote one. The passwords of the URLs in play are masked.
    """
    ctx = click.get_current_context()
    operation = ctx.info_name or "command"
    missing_table = None
    if isinstance(error, TokenStoreError):
        cause = error.cause
        if error.operation is None or not isinstance(cause, Exception):
            return str(error.error_message)  # a message of its own, e.g. an import's clash
        missing_table = error.missing_table
        error = cause
    settings = ctx.find_object(Settings)
    candidates = [*urls, settings.url if settings else None, os.environ.get(URL_ENV_VAR)]
    shown = (
        operation in MIGRATION_COMMANDS
        or not isinstance(error, StatementError)  # a statement (DBAPI or binding) may quote one
        or connection_failure(error)
    )
    reason = driver_reason(error, _passwords(candidates)) if shown else None
    return failure_message(operation, error, missing_table=missing_table, reason=reason)


def _passwords(urls: Sequence[str | None]) -> set[str]:
    """The passwords in ``urls`` (userinfo and ``?password=``), written and decoded."""
    return set().union(*(url_secrets(text) for text in urls if text))


def require_database(url: str | None) -> None:
    """Fail (exit 1) when ``url`` names a SQLite file that does not exist.

    Only ``upgrade`` and ``demo`` create a database: every other command needs the table,
    and connecting to a missing SQLite file would leave an empty one behind.
    """
    path = sqlite_file(url)
    if path is not None and not Path(path).exists():
        raise click.ClickException(f"no database at {path}")


URL_HELP = f"Database URL (default: ${URL_ENV_VAR}, else sqlite:///zohooauth.db)."


KEYS_META = "zoho_sa_store.keys"
"""Where ``--keys`` is kept (``click.Context.meta``, shared by the group and the command)."""


def _keep_keys(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[KEYS_META] = value


def connection_options(command: F, table_flag: str = "--table", url_help: str = URL_HELP) -> F:
    """``--url``, ``--table`` and ``--keys``, accepted on the group and on each command."""
    command = click.option(
        "--keys",
        default=None,
        expose_value=False,
        callback=_keep_keys,
        metavar="KEY_ID:KEY,...",
        help=f"Encryption keys, the current first (default: ${KEYS_ENV_VAR}; prefer it: a"
        " command line is visible to other local users).",
    )(command)
    command = click.option("--url", default=None, help=url_help)(command)
    hint = "Token table name." if table_flag == "--table" else "Our token table's name."
    return click.option(table_flag, "table_name", default=None, help=hint)(command)


class Settings:
    """The URL and table name in force for one command."""

    def __init__(self, url: str | None, table_name: str | None) -> None:
        self.url = url
        self.table_name = table_name or DEFAULT_TABLE_NAME

    def merged(self, url: str | None, table_name: str | None) -> Settings:
        return Settings(url or self.url, table_name or self.table_name)


@click.group()
@click.version_option(__version__, prog_name="zoho-sa-store", message="%(prog)s %(version)s")
@connection_options
@click.pass_context
def main(ctx: click.Context, url: str | None, table_name: str | None) -> None:
    """Persist the Zoho CRM SDK's OAuth tokens in SQLite, PostgreSQL or MySQL/MariaDB."""
    ctx.obj = Settings(url, table_name)


def _settings(url: str | None, table_name: str | None, *, existing: bool = False) -> Settings:
    """The command's URL and table; with ``existing``, see :func:`require_database`."""
    settings: Settings = click.get_current_context().find_object(Settings) or Settings(None, None)
    merged = settings.merged(url, table_name)
    try:
        check_table_name(merged.table_name)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--table") from None
    if existing:
        require_database(merged.url)
    return merged


def command(
    name: str | None = None, table_flag: str = "--table", url_help: str = URL_HELP
) -> Callable[[F], F]:
    """A subcommand with ``--url``/``--table`` and failures as one-line errors."""

    def decorate(function: F) -> F:
        options = connection_options(failures_as_messages(function), table_flag, url_help)
        return main.command(name)(options)  # type: ignore[return-value]

    return decorate


@command()
@click.argument("revision", default="head")
def upgrade(url: str | None, table_name: str | None, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head)."""
    s = _settings(url, table_name)
    migrate.upgrade(s.url, revision, table_name=s.table_name)
    shown = safe_url(resolve_url(s.url))
    click.echo(f"{shown}: {s.table_name} at {migrate.current(s.url, table_name=s.table_name)}")


@command()
def current(url: str | None, table_name: str | None) -> None:
    """Print the schema's current revision (nothing before the first upgrade)."""
    s = _settings(url, table_name, existing=True)
    click.echo(migrate.current(s.url, table_name=s.table_name) or "")


@command(url_help=f"Database URL (default: a throwaway SQLite file; ${URL_ENV_VAR} is not used).")
def demo(url: str | None, table_name: str | None) -> None:
    """Run the real SDK through a token lifecycle against an offline Zoho stand-in.

    Grant exchange and save, a restarted process that finds the token, an expired token
    refreshed, lookup by id, revoke. Nothing leaves 127.0.0.1; secrets are printed masked.
    The tokens go to the database of --url only; without it, to a throwaway SQLite file
    deleted at the end (never to $ZOHO_SA_STORE_URL's database, which may hold an app's).
    """
    from zoho_sa_store.demo import run_demo

    s = _settings(url, table_name)
    run_demo(s.url, click.echo, table_name=s.table_name)


dry_run_option = click.option("--dry-run", is_flag=True, help="Report only; write nothing.")


def _store(url: str | None, table_name: str | None) -> SQLAlchemyTokenStore:
    """A store for the command (closed by ``with``); it never refreshes a token."""
    s = _settings(url, table_name, existing=True)
    keys = click.get_current_context().meta.get(KEYS_META)
    try:
        return SQLAlchemyTokenStore(s.url, table_name=s.table_name, refresh=False, keys=keys)
    except KeyringError as error:
        raise click.BadParameter(str(error), param_hint=f"--keys/${KEYS_ENV_VAR}") from None


@command()
@click.option(
    "--quick",
    is_flag=True,
    help="Only the version row and the table's presence (two statements; no model compare).",
)
def check(url: str | None, table_name: str | None, quick: bool) -> None:
    """Exit 0 if the schema is at head and matches the model, else 3.

    At head it also prints the encryption state (rows in plain text, per key id); exit 3
    when rows are under key ids not configured (--keys, $ZOHO_SA_STORE_KEYS).

    With --quick (a readiness probe): 0 ready, 3 not at head or table missing, 1 the
    database failed.
    """
    s = _settings(url, table_name, existing=True)
    if quick:
        ready = check_ready(s.url, table_name=s.table_name)
        if ready.database_failed:
            why = describe_failure(ready.error, s.url) if ready.error else ready.reason
            raise click.ClickException(why)
        click.echo(printable(ready.reason))
        if not ready.ok:
            sys.exit(EXIT_ATTENTION)
        return
    if migrate.check(s.url, table_name=s.table_name):
        click.echo(f"{s.table_name}: at head ({migrate.current(s.url, table_name=s.table_name)})")
        with _store(url, table_name) as store:
            state = encryption_state(store)
            unopened = [k for k in unreadable_key_ids(store) if k in store.sealing.key_ids]
        click.echo("\n".join(state.lines()))
        for key_id in unopened:
            click.echo(f"key {printable(key_id)}: the configured key does not open its rows")
        if state.unknown or unopened:
            sys.exit(EXIT_ATTENTION)
        return
    head = migrate.head()
    now = migrate.current(s.url, table_name=s.table_name)
    if now == head:
        click.echo(f"{s.table_name}: at head ({head}) but the table differs from the model")
    else:
        click.echo(f"{s.table_name}: at {now or 'no revision'}, head is {head}: run upgrade")
    sys.exit(EXIT_ATTENTION)


from zoho_sa_store import cli_data, cli_keys  # noqa: E402, F401  (register their commands)
