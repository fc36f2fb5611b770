"""The ``zoho-sa-store`` commands for the stored tokens: ``list``, ``show``, ``delete``,
``delete-all``, ``purge`` and ``export`` (secrets masked unless ``export --include-secrets``;
:mod:`zoho_sa_store.admin`), ``import-filestore`` and ``import-dbstore`` (the SDK's own
stores; :mod:`zoho_sa_store.importers`).

Registered on the group of :mod:`zoho_sa_store.cli` (which imports this module); the exit
codes are the ones listed there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import IO

import click

from zoho_sa_store import admin, importers
from zoho_sa_store.cli import EXIT_ATTENTION, _settings, _store, command, dry_run_option
from zoho_sa_store.hygiene import printable, printable_json
from zoho_sa_store.tokens import clean_id

id_argument = click.argument("token_id", metavar="ID", callback=lambda c, p, v: _token_id(v))


def _token_id(value: str) -> str:
    try:
        clean_id(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="ID") from None
    return value


@command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON array (secrets masked).")
def list_tokens(url: str | None, table_name: str | None, as_json: bool) -> None:
    """List the stored tokens, secrets masked."""
    with _store(url, table_name) as store:
        if as_json:
            _write_json(sys.stdout, admin.iter_rows(store))
            return
        # two passes over the pages: the column widths, then the lines
        widths = admin.table_widths(admin.iter_rows(store))
        lines = admin.table_lines(admin.iter_rows(store), widths=widths)
        header, shown = next(lines), 0
        for line in lines:
            if not shown:
                click.echo(header)
            click.echo(line)
            shown += 1
    if not shown:
        click.echo("no tokens")


def _write_json(
    file: IO[str], rows: Iterable[admin.TokenRow], include_secrets: bool = False
) -> int:
    """Write ``rows`` to ``file`` as one JSON array, a row at a time; the number written."""
    count = 0

    def counted() -> Iterator[admin.TokenRow]:
        nonlocal count
        for row in rows:
            count += 1
            yield row

    for chunk in admin.json_chunks(counted(), include_secrets=include_secrets):
        file.write(chunk)
    file.write("\n")
    return count


@command()
@id_argument
@click.option("--json", "as_json", is_flag=True, help="A JSON object (secrets masked).")
def show(url: str | None, table_name: str | None, token_id: str, as_json: bool) -> None:
    """Show token ID, secrets masked (exit 1 if there is none)."""
    with _store(url, table_name) as store:
        row = admin.find_row(store, token_id)
    if row is None:
        raise click.ClickException(f"no token with id {token_id!r}")
    if as_json:
        click.echo(printable_json(json.dumps(admin.masked(row), indent=2, ensure_ascii=False)))
        return
    for name, value in admin.masked(row).items():
        click.echo(f"{name + ':':15}{'-' if value is None else printable(value)}")
    click.echo(f"{'expires:':15}{admin.describe_expiry(row)}")


@command()
@id_argument
def delete(url: str | None, table_name: str | None, token_id: str) -> None:
    """Delete token ID (exit 1 if there is none)."""
    with _store(url, table_name) as store:
        if not admin.delete_row(store, token_id):
            raise click.ClickException(f"no token with id {token_id!r}")
    click.echo(f"deleted token {token_id!r}")


@command("delete-all")
@click.option("--yes", is_flag=True, help="Really delete every token (required).")
def delete_all(url: str | None, table_name: str | None, yes: bool) -> None:
    """Delete every stored token (refuses without --yes)."""
    if not yes:
        raise click.UsageError("refusing to delete every token without --yes")
    with _store(url, table_name) as store:
        count = admin.delete_all(store)
    click.echo(f"deleted {count} token(s)")


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    try:
        return admin.parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@command()
@click.option(
    "--older-than",
    default="30d",
    show_default=True,
    callback=_duration,
    help="How long ago the access token expired: 45s, 90m, 12h, 30d, 2w.",
)
@dry_run_option
def purge(url: str | None, table_name: str | None, older_than: timedelta, dry_run: bool) -> None:
    """Delete tokens without a refresh token whose access token expired long ago."""
    count = 0
    with _store(url, table_name) as store:
        for row in admin.iter_purge(store, older_than, dry_run=dry_run):
            user, client = row["user_name"] or "-", row["client_id"] or "-"
            where = f"  ({row['table']})" if row.get("table") else ""  # the duplicates table
            line = f"{row['id']}  {user}  {client}  {admin.describe_expiry(row)}{where}"
            click.echo(printable(line))
            count += 1
    click.echo(f"{'would delete' if dry_run else 'deleted'} {count} token(s)")


@command()
@click.option("--include-secrets", is_flag=True, help="Write secrets in full (default: masked).")
@click.option("-o", "--output", default=None, help="Write to this file (mode 0600).")
def export(
    url: str | None, table_name: str | None, include_secrets: bool, output: str | None
) -> None:
    """Print every token as a JSON array (secrets masked unless --include-secrets)."""
    with _store(url, table_name) as store:
        rows = admin.iter_rows(store, operation="export")
        if output is None or output == "-":
            _write_json(sys.stdout, rows, include_secrets)
            return
        try:
            with admin.open_private(output) as file:
                count = _write_json(file, rows, include_secrets)
        except OSError as error:
            why = error.strerror or error
            raise click.ClickException(f"cannot write {printable(output)}: {why}") from None
    click.echo(f"exported {count} token(s) to {printable(output)}", err=True)


def _import(
    url: str | None,
    table_name: str | None,
    rows: importers.FileStoreRows | importers.DBStoreRows | Sequence[importers.SourceRow],
    dry_run: bool,
) -> None:
    with _store(url, table_name) as store:
        if sys.stderr.isatty():
            with click.progressbar(rows, label="importing", file=sys.stderr) as bar:
                report = importers.import_rows(store, bar, dry_run=dry_run)
        else:
            report = importers.import_rows(store, rows, dry_run=dry_run)
    for message in report.conflicts:
        click.echo(f"conflict: {printable(message)}", err=True)
    for message in report.invalid:
        click.echo(f"invalid: {printable(message)}", err=True)
    click.echo(("dry run, nothing written: " if dry_run else "") + report.summary())
    if not report.complete:
        sys.exit(EXIT_ATTENTION)


@command("import-filestore")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--encoding", default="utf-8", show_default=True, help="The file's encoding.")
@dry_run_option
def import_filestore(
    url: str | None, table_name: str | None, path: str, encoding: str, dry_run: bool
) -> None:
    """Import the SDK FileStore's CSV file PATH (e.g. sdk_tokens.txt), in batches."""
    _settings(url, table_name)
    _import(url, table_name, importers.read_filestore(path, encoding=encoding), dry_run)


@command("import-dbstore", table_flag="--target-table")
@click.argument("source_url", metavar="URL")
@click.option(
    "--table",
    "source_table",
    default=importers.DBSTORE_TABLE,
    show_default=True,
    help="The source table (DBStore's table_name).",
)
@dry_run_option
def import_dbstore(
    url: str | None, table_name: str | None, source_url: str, source_table: str, dry_run: bool
) -> None:
    """Import the SDK DBStore's table from the database at URL, in batches."""
    _settings(url, table_name)
    try:
        rows = importers.read_dbstore(source_url, source_table)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--table") from None
    _import(url, table_name, rows, dry_run)
