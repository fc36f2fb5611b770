"""Importing the SDK FileStore's CSV files, and the import's rules, on every backend."""

from __future__ import annotations

import contextlib
import stat
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import select
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from tests.factories import values
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, cli, cli_data, importers
from zoho_sa_store.dry_run import DryRunRows
from zoho_sa_store.importers import (
    FILESTORE_HEADER,
    ImportReport,
    SourceError,
    import_rows,
    read_filestore,
)

ANN = 'o"brien, ann@example.com'
SECRETS = (
    'client"secret,A-0123456789',
    "1000.refresh-ann-0123456789",
    "1000.access-ann-0123456789",
    "client-secret-B-0123456789",
    "1000.refresh-anon-0123456789",
    "1000.access-anon-0123456789",
    "client-secret-C-0123456789",
    "1000.grant-c-0123456789",
)


def sdk_tokens() -> list[OAuthToken]:
    """Tokens as the SDK holds them: with and without a user, quotes and commas in values."""
    ann = OAuthToken(
        client_id="1000.CLIENTA",
        client_secret=SECRETS[0],
        refresh_token=SECRETS[1],
        user_signature=UserSignature(ANN),
    )
    ann.set_access_token(SECRETS[2])
    ann.set_expires_in("1900000000000")
    ann.set_api_domain("https://www.zohoapis.eu")
    anon = OAuthToken(client_id="1000.CLIENTB", client_secret=SECRETS[3], refresh_token=SECRETS[4])
    anon.set_access_token(SECRETS[5])
    anon.set_expires_in("1600000000000")
    grant = OAuthToken(
        client_id="1000.CLIENTC",
        client_secret=SECRETS[6],
        grant_token=SECRETS[7],
        redirect_url="https://example.com/cb?a=1,b=2",
    )
    return [ann, anon, grant]


def sdk_filestore(path: Path, tokens: list[OAuthToken]) -> Path:
    """A FileStore file written by the SDK's own FileStore."""
    file_store = FileStore(str(path))
    for t in tokens:
        file_store.save_token(t)
    return path


def raw_rows(store: SQLAlchemyTokenStore) -> list[dict[str, Any]]:
    """Every column of every row (saved_at too), ordered by id."""
    with store.engine.connect() as conn:
        result = conn.execute(select(store.table).order_by(store.table.c.id))
        return [dict(row._mapping) for row in result]


def counts(report: ImportReport) -> tuple[int, int, int, int, int]:
    r = report
    return (r.read, r.imported, r.unchanged, len(r.conflicts), len(r.invalid))


def by_id(tokens: list[OAuthToken]) -> list[dict[str, str | None] | None]:
    return [values(t) for t in sorted(tokens, key=lambda t: str(t.get_id()))]


def test_filestore_written_by_the_sdk(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    assert path.read_text().splitlines()[0] == ",".join(FILESTORE_HEADER)
    report = import_rows(store, read_filestore(path))
    assert counts(report) == (3, 3, 0, 0, 0)
    assert report.summary() == "read 3, imported 3, unchanged 0, conflicts 0, invalid 0"
    assert by_id(store.get_tokens()) == by_id(FileStore(str(path)).get_tokens())
    [ann] = [t for t in store.get_tokens() if t.get_user_signature()]
    assert ann.get_id() == "1" and ann.get_user_signature().get_name() == ANN
    assert ann.get_client_secret() == SECRETS[0]
    before = raw_rows(store)
    again = import_rows(store, read_filestore(path))
    assert counts(again) == (3, 0, 3, 0, 0) and again.complete
    assert raw_rows(store) == before


def test_imported_tokens_work_with_the_store(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    import_rows(store, read_filestore(path))
    found = store.find_token(OAuthToken(user_signature=UserSignature(ANN)))
    assert found is not None and found.get_refresh_token() == SECRETS[1]
    by_grant = OAuthToken(
        client_id="1000.CLIENTC", client_secret=SECRETS[6], grant_token=SECRETS[7]
    )
    assert store.find_token(by_grant) is not None and by_grant.get_id() == "3"


def test_older_nine_column_file(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    path.write_text(
        ",".join(FILESTORE_HEADER[:9]) + "\n"
        '7,,1000.OLD,"old,secret ""q"" 0123",1000.refresh-old-0123456789,,,,\n'
        "\n"
        '8,"x,y@example.com",1000.OLD,old-secret-0123456789,,1000.access-old-0123456789,,'
        "1700000000000,https://example.com/cb\n"
    )
    assert counts(import_rows(store, read_filestore(path))) == (2, 2, 0, 0, 0)
    rows = {row["id"]: row for row in raw_rows(store)}
    assert rows["7"]["client_secret"] == 'old,secret "q" 0123'
    assert rows["7"]["user_name"] is None and rows["7"]["api_domain"] is None
    assert rows["8"]["user_name"] == "x,y@example.com"
    assert rows["8"]["redirect_url"] == "https://example.com/cb"
    assert counts(import_rows(store, read_filestore(path))) == (2, 0, 2, 0, 0)


def test_rows_without_an_id_get_one_once(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "noid.csv"
    path.write_text(
        ",".join(FILESTORE_HEADER) + "\n"
        ",ann@example.com,1000.A,secret-A-0123456789,1000.refresh-a-0123456789,,,,,\n"
        ",,1000.B,secret-B-0123456789,,1000.access-b-0123456789,,1700000000000,,\n"
    )
    assert counts(import_rows(store, read_filestore(path))) == (2, 2, 0, 0, 0)
    before = raw_rows(store)
    assert all(len(row["id"]) == 36 for row in before)
    assert counts(import_rows(store, read_filestore(path))) == (2, 0, 2, 0, 0)
    assert raw_rows(store) == before


def test_conflicts_are_reported_not_written(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    mine = OAuthToken(
        client_id="1000.A",
        client_secret="secret-A-0123456789",
        id="1",
        user_signature=UserSignature("ann@example.com"),
        refresh_token="1000.refresh-mine-0123456789",
    )
    store.save_token(mine)
    before = raw_rows(store)
    path = tmp_path / "conflicts.csv"
    path.write_text(
        ",".join(FILESTORE_HEADER) + "\n"
        "1,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-file-0123456789,,,,,\n"
        "9,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-mine-0123456789,,,,,\n"
        "2,bob@example.com,1000.A,secret-A-0123456789,1000.refresh-bob-0123456789,,,,,\n"
        "2,bob@example.com,1000.A,secret-A-0123456789,1000.refresh-bob2-0123456789,,,,,\n"
        "3,bob@example.com,1000.A,secret-A-0123456789,1000.refresh-bob-0123456789,,,,,\n"
    )
    report = import_rows(store, read_filestore(path))
    assert counts(report) == (5, 1, 0, 4, 0) and not report.complete
    assert report.conflicts == [
        "line 2: stored row '1' differs in refresh_token",
        "line 3: user_name 'ann@example.com' with client_id '1000.A' is stored as row '1'",
        "line 5: stored row '2' differs in refresh_token",
        "line 6: user_name 'bob@example.com' with client_id '1000.A' is stored as row '2'",
    ]
    rows = raw_rows(store)
    assert rows[0] == before[0]
    assert [row["id"] for row in rows] == ["1", "2"]
    assert rows[1]["refresh_token"] == "1000.refresh-bob-0123456789"
    assert counts(import_rows(store, read_filestore(path))) == (5, 0, 1, 4, 0)


def test_invalid_rows_are_reported_not_written(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "invalid.csv"
    lines = [
        "1,ann@example.com,1000.A,s,1000.refresh-short-row",
        "2,ann@example.com,1000.A,s,1000.refresh-2-0123456789,,,soon,,",
        "3,ann@example.com,1000.A,secret-3-0123456789,,,,,,",
        f"4,{'u' * 256},1000.A,s,1000.refresh-4-0123456789,,,,,",
        "5,ann@example.com,1000.A,s,1000.refresh-5-0123\x00456789,,,,,",
        f"6,ann@example.com,1000.A,s,,{'a' * 8193},,,,",
        f"{'i' * 65},ann@example.com,1000.A,s,1000.refresh-7-0123456789,,,,,",
        "8,ann@example.com,1000.A,s,1000.refresh-8-0123456789,,,,,",
        "9,bo@example.com,1000.A,s,1000.refresh-9-0123456789,,,1700000000000000,,",
    ]
    path.write_text(",".join(FILESTORE_HEADER) + "\n" + "\n".join(lines) + "\n")
    report = import_rows(store, read_filestore(path))
    assert counts(report) == (9, 1, 0, 0, 8)
    assert report.invalid == [
        "line 2 (5 fields, expected 10)",
        "line 3: OAuthToken expires_in must be epoch milliseconds as a str of digits",
        "line 4: no access, refresh or grant token",
        "line 5: OAuthToken user_signature name is longer than 255 characters",
        "line 6: OAuthToken refresh_token contains a NUL character",
        "line 7: OAuthToken access_token is longer than 8192 characters",
        "line 8: OAuthToken id is longer than 64 characters",
        "line 10: OAuthToken expires_in must be epoch milliseconds (13 digits, "
        "1000000000000..9999999999999: years 2001..2286), as the SDK writes it",
    ]
    assert [row["id"] for row in raw_rows(store)] == ["8"]


def test_dry_run_writes_nothing(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    assert counts(import_rows(store, read_filestore(path), dry_run=True)) == (3, 3, 0, 0, 0)
    assert raw_rows(store) == []


def test_dry_run_keeps_digests_in_a_private_file(
    store: SQLAlchemyTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows a dry run would import wait on disk, secrets as keyed digests, and go."""
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    seen: dict[str, Any] = {}
    original = DryRunRows.close

    def close(self: DryRunRows) -> None:
        folder = Path(self._dir.name)
        seen["folder"], seen["mode"] = folder, stat.S_IMODE(folder.stat().st_mode)
        seen["bytes"] = b"".join(f.read_bytes() for f in folder.iterdir())
        original(self)

    monkeypatch.setattr(DryRunRows, "close", close)
    assert counts(import_rows(store, read_filestore(path), dry_run=True)) == (3, 3, 0, 0, 0)
    assert b"1000.CLIENTA" in seen["bytes"]  # the rows were kept there
    assert not [secret for secret in SECRETS if secret.encode() in seen["bytes"]]
    assert seen["mode"] == 0o700 and not seen["folder"].exists()


def test_a_file_with_the_header_only(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = sdk_filestore(tmp_path / "empty.txt", [])
    assert list(read_filestore(path)) == [] and len(read_filestore(path)) == 0
    assert counts(import_rows(store, [])) == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,user_mail,client_id\n1,a,b\n", "not a FileStore file"),
        (b"1,ann,1000.A,s,r,a,g,1,u,d\n", "not a FileStore file"),
        (",".join(FILESTORE_HEADER).encode() + b'\n1,"ann\xe9', "is not utf-8 text"),
        (",".join(FILESTORE_HEADER).encode() + b'\n1,"ann', "unexpected end of data"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read_filestore(path)
    with pytest.raises(SourceError, match="cannot read"):
        read_filestore(tmp_path / "missing.csv")


def test_a_broken_end_fails_before_any_row_is_written(
    store: SQLAlchemyTokenStore, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    rows = [f"{n},,1000.A,s,1000.refresh-{n:06}-0123456789,,,,," for n in range(1, 1202)]
    path.write_text(",".join(FILESTORE_HEADER) + "\n" + "\n".join(rows) + '\n9,"ann')
    with pytest.raises(SourceError, match="line 1203: unexpected end of data"):
        import_rows(store, read_filestore(path))
    assert raw_rows(store) == []


def test_encoding_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    header = ",".join(FILESTORE_HEADER)
    path.write_bytes(("\ufeff" + header + "\n1,zoë@example.com,1000.A,,1000.r,,,,,\n").encode())
    assert next(iter(read_filestore(path))).values["user_name"] == "zoë@example.com"
    path.write_bytes((header + "\n1,zoë@example.com,1000.A,,1000.r,,,,,\n").encode("latin-1"))
    rows = list(read_filestore(path, encoding="latin-1"))
    assert rows[0].values["user_name"] == "zoë@example.com"
    with pytest.raises(SourceError, match="unknown encoding 'klingon'"):
        read_filestore(path, encoding="klingon")


def test_large_file_in_batches(store: SQLAlchemyTokenStore, tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    rows = [
        f"{n},user{n}@example.com,1000.A,secret-0123456789,1000.refresh-{n:06}-0123456789,,,,,"
        for n in range(1, 1202)
    ]
    path.write_text(",".join(FILESTORE_HEADER) + "\n" + "\n".join(rows) + "\n")
    assert counts(import_rows(store, read_filestore(path))) == (1201, 1201, 0, 0, 0)
    assert len(raw_rows(store)) == 1201
    assert counts(import_rows(store, read_filestore(path))) == (1201, 0, 1201, 0, 0)


def clash_file(tmp_path: Path) -> Path:
    """601 rows; row 600 is also stored by "another writer" (see the tests below)."""
    path = tmp_path / "clash.csv"
    rows = [f"{n},,1000.A,s,1000.refresh-{n:06}-0123456789,,,,," for n in range(1, 602)]
    path.write_text(",".join(FILESTORE_HEADER) + "\n" + "\n".join(rows) + "\n")
    return path


def test_a_batch_that_meets_a_new_row_is_decided_again(
    store: SQLAlchemyTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row stored by another writer after the batch read the table: the batch runs again."""
    store.save_token(OAuthToken(id="600", access_token="1000.access-600-0123456789"))
    path = clash_file(tmp_path)
    original, missed = importers._stored_related, []

    def blind_once(*args: Any) -> list[Any]:
        found = original(*args)
        if found and not missed:  # the second batch's first read misses row 600
            missed.append(found)
            return []
        return found

    monkeypatch.setattr(importers, "_stored_related", blind_once)
    report = import_rows(store, read_filestore(path))
    assert missed and counts(report) == (601, 600, 0, 1, 0)
    assert report.conflicts == [
        "line 601: stored row '600' differs in client_id, client_secret, "
        "refresh_token, access_token"
    ]
    assert len(raw_rows(store)) == 601


def test_a_failed_batch_keeps_the_batches_before_it(
    store: SQLAlchemyTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are separate transactions: a failed one leaves the earlier ones written,
    and the import run again finds them unchanged."""
    store.save_token(OAuthToken(id="600", access_token="1000.access-600-0123456789"))
    path = clash_file(tmp_path)
    original = importers._stored_related
    monkeypatch.setattr(importers, "_stored_related", lambda *args: [])
    with pytest.raises(TokenStoreError, match=r"clashing rows; the first 500 rows were imported"):
        import_rows(store, read_filestore(path))
    ids = [row["id"] for row in raw_rows(store)]
    assert len(ids) == 501 and "600" in ids and "501" not in ids
    monkeypatch.setattr(importers, "_stored_related", original)
    assert counts(import_rows(store, read_filestore(path))) == (601, 100, 500, 1, 0)


@pytest.mark.parametrize("dry_run", [False, True])
def test_small_batches_decide_as_one(
    store: SQLAlchemyTokenStore, tmp_path: Path, dry_run: bool
) -> None:
    """Rows are judged against the rows of earlier batches, written or (dry run) not."""
    path = tmp_path / "dupes.csv"
    path.write_text(
        ",".join(FILESTORE_HEADER) + "\n"
        "1,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-a-0123456789,,,,,\n"
        ",,1000.B,secret-B-0123456789,,1000.access-b-0123456789,,1700000000000,,\n"
        "2,bob@example.com,1000.A,secret-A-0123456789,1000.refresh-b-0123456789,,,,,\n"
        "1,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-a-0123456789,,,,,\n"
        "3,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-a-0123456789,,,,,\n"
        "1,ann@example.com,1000.A,secret-A-0123456789,1000.refresh-x-0123456789,,,,,\n"
        ",,1000.B,secret-B-0123456789,,1000.access-b-0123456789,,1700000000000,,\n"
    )
    report = import_rows(store, read_filestore(path), batch=2, dry_run=dry_run)
    assert counts(report) == (7, 3, 2, 2, 0)
    assert report.conflicts == [
        "line 6: user_name 'ann@example.com' with client_id '1000.A' is stored as row '1'",
        "line 7: stored row '1' differs in refresh_token",
    ]
    assert len(raw_rows(store)) == (0 if dry_run else 3)


def test_progress_bar_on_a_terminal(
    store: SQLAlchemyTokenStore, backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = sdk_filestore(tmp_path / "sdk_tokens.txt", sdk_tokens())
    shown: list[int] = []

    def progressbar(rows: list[object], **options: object) -> Any:
        shown.append(len(rows))
        return contextlib.nullcontext(iter(rows))

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(click, "progressbar", progressbar)
    with click.Context(cli.main):
        cli_data._import(backend_url, None, read_filestore(path), dry_run=False)
    assert shown == [3] and len(store.get_tokens()) == 3
