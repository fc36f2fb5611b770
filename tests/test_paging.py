"""Whole-table work in pages and batches (bounded memory, short write locks), everywhere.

Behaviour only: that a page or batch size smaller than the table still gives every row,
in order, with the same output as one big read; that deletes commit batch by batch. The
memory and lock-wait figures are measured by ``bench/memory.py`` and ``bench/maintenance.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from tests.factories import token, values
from zoho_sa_store import SQLAlchemyTokenStore, admin, paging
from zoho_sa_store.cli import main
from zoho_sa_store.hygiene import printable_json

NOW = 1_900_000_000.0
OLD = str(int(NOW * 1000) - 40 * 86_400_000)  # expired 40 days before NOW
CLIENT = ("1000.PAGING", "paging-client-secret-0123")


def fill(
    store: SQLAlchemyTokenStore, n: int, *, refresh_every: int = 0, expires: str = OLD
) -> list[str]:
    """``n`` tokens with ids p0..p{n-1}, expired long ago; every ``refresh_every``-th has a
    refresh token (kept by purge). Their ids, in order."""
    ids = []
    for i in range(n):
        keep = refresh_every and i % refresh_every == 0
        t = token(
            f"user{i}@example.com",
            client=CLIENT,
            id=f"p{i}",
            access=f"1000.access-{i:04}-0123456789",
            refresh=f"1000.refresh-{i:04}-0123456789" if keep else None,
            expires=expires,
        )
        store.save_token(t)
        ids.append(f"p{i}")
    return ids


def count(store: SQLAlchemyTokenStore) -> int:
    """The rows a new connection sees (what is committed)."""
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(store.table)) or 0)


def test_iter_rows_pages_give_every_row_in_order(store: SQLAlchemyTokenStore) -> None:
    ids = fill(store, 5)
    whole = admin.list_rows(store)
    assert [row["id"] for row in whole] == ids
    for page in (1, 2, 5, 6):
        assert list(admin.iter_rows(store, page=page)) == whole
    for page in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="page must be a positive int"):
            list(admin.iter_rows(store, page=page))  # type: ignore[arg-type]


def test_iter_tokens_and_get_tokens_page_and_share(store: SQLAlchemyTokenStore) -> None:
    fill(store, 5)
    tokens = store.get_tokens()
    assert [t.get_id() for t in tokens] == [f"p{i}" for i in range(5)]
    assert [values(t) for t in store.iter_tokens(batch=2)] == [values(t) for t in tokens]
    assert tokens[3].get_user_signature().get_name() == "user3@example.com"
    assert tokens[3].get_access_token() == "1000.access-0003-0123456789"
    # one str object for the client id and secret all the rows repeat
    assert len({id(t.get_client_secret()) for t in tokens}) == 1
    assert len({id(t.get_client_id()) for t in tokens}) == 1
    assert len({id(t.get_access_token()) for t in tokens}) == 5


def test_json_chunks_are_json_dumps_text() -> None:
    """json.dumps' text, but for non-printable characters in strings, which are escaped."""
    rows: list[dict[str, str | None]] = [
        {"id": "1", "user_name": 'o"brien\\ \u00e9 \u2603 \u2028 \x01 \n', "client_id": None},
        {"id": "2", "user_name": None, "client_id": "1000.X"},
    ]
    for shown in ([], rows[:1], rows):
        expected = printable_json(json.dumps(shown, indent=2, ensure_ascii=False))
        assert json.loads(expected) == shown and "\u2028" not in expected
        assert admin.to_json(shown, include_secrets=True) == expected
        assert "".join(admin.json_chunks(iter(shown), include_secrets=True)) == expected


def committed_after_each_write(
    monkeypatch: pytest.MonkeyPatch, store: SQLAlchemyTokenStore
) -> list[int]:
    """The committed row count seen by a new connection after each writing transaction."""
    seen: list[int] = []
    original: Callable[..., Any] = admin.run

    def run(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if kwargs.get("write"):
            seen.append(count(store))
        return result

    monkeypatch.setattr(admin, "run", run)
    monkeypatch.setattr(paging, "run", run)
    return seen


def test_delete_all_commits_batch_by_batch(
    store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, 5)
    seen = committed_after_each_write(monkeypatch, store)
    assert admin.delete_all(store, batch=2) == 5
    # each batch visible to other connections once done; then the side table's transaction
    assert seen == [3, 1, 0, 0]
    assert admin.delete_all(store, batch=2) == 0


def test_delete_batches_leave_other_rows(store: SQLAlchemyTokenStore) -> None:
    fill(store, 7)
    c = store.table.c
    gone = admin.delete_batches(store, "test", store.table, c.id.in_(["p1", "p4", "p6"]), batch=2)
    assert gone == 3
    assert [row["id"] for row in admin.list_rows(store)] == ["p0", "p2", "p3", "p5"]


def test_purge_deletes_in_batches(
    store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, 7, refresh_every=3)  # p0, p3, p6 have a refresh token: kept
    seen = committed_after_each_write(monkeypatch, store)
    purged = admin.iter_purge(store, timedelta(days=30), now=NOW, batch=2)
    assert [row["id"] for row in purged] == ["p1", "p2", "p4", "p5"]
    assert seen == [5, 3, 3]  # then the side table's transaction
    assert [row["id"] for row in admin.list_rows(store)] == ["p0", "p3", "p6"]


def test_purge_spares_a_row_saved_after_it_was_read(
    store: SQLAlchemyTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row refreshed between the read and its batch's delete is neither deleted nor
    reported; the rest of the batch is."""
    fill(store, 4)
    original = admin._delete_doomed

    def saved_meanwhile(*args: Any) -> Any:
        store.save_token(token(client=CLIENT, id="p1", refresh="1000.refresh-new-0123456789"))
        store.save_token(token(client=CLIENT, id="p2", access="1000.access-new-0123456789",
                               expires=str(int(NOW * 1000) + 3_600_000)))  # fmt: skip
        return original(*args)

    monkeypatch.setattr(admin, "_delete_doomed", saved_meanwhile)
    purged = admin.purge(store, timedelta(days=30), now=NOW)
    assert [row["id"] for row in purged] == ["p0", "p3"]
    assert [row["id"] for row in admin.list_rows(store)] == ["p1", "p2"]


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(paging, "PAGE", 2)
    monkeypatch.setattr(paging, "DELETE_BATCH", 2)
    yield


def cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["--url", url, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_output_is_the_same_in_small_pages(
    store: SQLAlchemyTokenStore, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, 5, refresh_every=2)
    commands = [("list",), ("list", "--json"), ("export", "--include-secrets")]
    whole = {args: cli(backend_url, *args) for args in commands}
    monkeypatch.setattr(paging, "PAGE", 2)
    for args in commands:
        assert cli(backend_url, *args) == whole[args]
    assert [row["id"] for row in json.loads(whole[("list", "--json")])] == [
        f"p{i}" for i in range(5)
    ]
    assert len(whole[("list",)].splitlines()) == 6


def test_cli_purge_and_delete_all_in_small_batches(
    store: SQLAlchemyTokenStore, backend_url: str, small_pages: None
) -> None:
    long_ago = str(int((time.time() - 40 * 86_400) * 1000))
    fill(store, 5, refresh_every=2, expires=long_ago)  # p0, p2, p4 kept by purge
    out = cli(backend_url, "purge", "--older-than", "1d")
    assert [line.split()[0] for line in out.splitlines()[:-1]] == ["p1", "p3"]
    assert out.splitlines()[-1] == "deleted 2 token(s)"
    assert cli(backend_url, "delete-all", "--yes") == "deleted 3 token(s)\n"
    assert cli(backend_url, "list") == "no tokens\n"
