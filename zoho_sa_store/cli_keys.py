"""The ``zoho-sa-store`` commands for encryption keys: ``keygen`` and ``rotate-keys``.

Registered on the group of :mod:`zoho_sa_store.cli` (which imports this module). The keys
come from ``--keys`` (on the group or the command), else ``$ZOHO_SA_STORE_KEYS``; no key is
ever printed, except the new entry ``keygen`` makes.
"""

from __future__ import annotations

import sys

import click

from zoho_sa_store import rotation
from zoho_sa_store.cli import EXIT_ATTENTION, _store, command, dry_run_option, main
from zoho_sa_store.keyring import KEYS_ENV_VAR, KeyringError, new_entry


@main.command()
@click.option("--id", "key_id", default=None, help="The key id (default: k + UTC date and time).")
def keygen(key_id: str | None) -> None:
    """Print a new KEY_ID:KEY entry for ZOHO_SA_STORE_KEYS (32 random bytes).

    Put it first in the list to make it the current key; keep the old entries after it
    until `rotate-keys` has moved every row.
    """
    try:
        click.echo(new_entry(key_id))
    except KeyringError as error:
        raise click.BadParameter(str(error), param_hint="--id") from None


@command("rotate-keys")
@click.option("--to-plaintext", is_flag=True, help="Decrypt every row instead (the way out).")
@click.option(
    "--batch", default=rotation.BATCH, show_default=True, type=click.IntRange(1, 10_000),
    help="Rows per transaction.",
)  # fmt: skip
@dry_run_option
def rotate_keys(
    url: str | None, table_name: str | None, to_plaintext: bool, batch: int, dry_run: bool
) -> None:
    """Rewrite every token not under the current key (plain ones included), online.

    Short batched transactions; a save made meanwhile is never overwritten. Safe to stop
    and run again; a second run changes nothing. Exit 3 when some rows could not be read
    (a key id not configured) or changed meanwhile (run again).
    """
    with _store(url, table_name) as store:
        if not store.sealing.keyed:
            raise click.UsageError(f"no keys: set {KEYS_ENV_VAR} or --keys (current key first)")
        report = _rotate(store, to_plaintext, batch, dry_run)
    for message in report.unreadable:
        click.echo(f"unreadable: {message}", err=True)
    click.echo(("dry run, nothing written: " if dry_run else "") + report.summary())
    if not report.complete:
        sys.exit(EXIT_ATTENTION)


def _rotate(
    store: object, to_plaintext: bool, batch: int, dry_run: bool
) -> rotation.RotationReport:
    from zoho_sa_store.keystate import encryption_state
    from zoho_sa_store.store import SQLAlchemyTokenStore

    assert isinstance(store, SQLAlchemyTokenStore)
    state = encryption_state(store)
    total = sum(state.by_key.values()) if to_plaintext else state.to_rotate
    if not sys.stderr.isatty():
        return rotation.rotate_keys(store, to_plaintext=to_plaintext, dry_run=dry_run, batch=batch)
    with click.progressbar(length=total, label="rotating", file=sys.stderr) as bar:
        return rotation.rotate_keys(
            store, to_plaintext=to_plaintext, dry_run=dry_run, batch=batch, progress=bar.update
        )
