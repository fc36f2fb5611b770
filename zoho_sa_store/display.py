"""The token rows as a person reads them: secrets masked, JSON written a row at a time, an
aligned text table, expiry dates.

For the ``zoho-sa-store`` command and scripts (:mod:`zoho_sa_store.admin` re-exports these
names). Rows are :data:`~zoho_sa_store.paging.TokenRow` dicts keyed by the SDK's column
names (``zohocrmsdk/src/com/zoho/api/authenticator/store/db_store.py``); ``expiry_time`` is
epoch milliseconds as a str. Control characters in stored values are escaped
(:mod:`zoho_sa_store.hygiene`); nothing here prints or logs a value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from itertools import chain

from zoho_sa_store.hygiene import printable, printable_json
from zoho_sa_store.paging import TokenRow
from zoho_sa_store.tokens import SECRET_FIELDS, mask


def expiry_ms(row: TokenRow) -> int | None:
    """The row's access-token expiry (epoch milliseconds), None when unknown."""
    value = row["expiry_time"]
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def masked(row: TokenRow) -> TokenRow:
    """The row with every secret (:data:`~zoho_sa_store.tokens.SECRET_FIELDS`) masked."""
    return {name: mask(value) if name in SECRET_FIELDS else value for name, value in row.items()}


def json_chunks(rows: Iterable[TokenRow], *, include_secrets: bool = False) -> Iterator[str]:
    """A JSON array of the rows, one row at a time: the pieces of :func:`to_json`'s text.

    Only the row being written is in memory, so ``rows`` may be a stream
    (:func:`~zoho_sa_store.paging.iter_rows`).
    The text is ``json.dumps(list(rows), indent=2, ensure_ascii=False)``'s, character for
    character, but for non-printable characters inside strings, written as ``\\uXXXX``
    escapes (:func:`~zoho_sa_store.hygiene.printable_json`): the same JSON value.
    """
    empty = True
    for row in rows:
        shown = _json_object(row if include_secrets else masked(row))
        yield ("[\n  " if empty else ",\n  ") + printable_json(shown)
        empty = False
    yield "[]" if empty else "\n]"


def _json_object(row: TokenRow) -> str:
    """One row as ``json.dumps`` writes it inside a list at ``indent=2`` (flat str/None)."""
    if not row:
        return "{}"
    fields = (f"    {_json_str(name)}: {_json_value(value)}" for name, value in row.items())
    return "{\n" + ",\n".join(fields) + "\n  }"


def _json_value(value: object) -> str:
    if value is None:
        return "null"
    return _json_str(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_json_str: Callable[[str], str] = json.encoder.encode_basestring
"""The json module's own string encoder (its C one where built) for ``ensure_ascii=False``."""


def to_json(rows: Iterable[TokenRow], *, include_secrets: bool = False) -> str:
    """A JSON array of the rows, secrets masked unless ``include_secrets``."""
    return "".join(json_chunks(rows, include_secrets=include_secrets))


def describe_expiry(row: TokenRow, now: float | None = None) -> str:
    """``2025-01-31 12:00Z`` with `` (expired)`` when past; ``-`` when unknown."""
    ms = expiry_ms(row)
    if ms is None:
        return "-"
    try:
        when = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return row["expiry_time"] or "-"
    past = ms < (time.time() if now is None else now) * 1000
    return when.strftime("%Y-%m-%d %H:%MZ") + (" (expired)" if past else "")


TABLE_COLUMNS = ("id", "user_name", "client_id", "access_token", "refresh_token", "expiry_time")


HEADER = [name.upper() for name in TABLE_COLUMNS]


def table_cells(row: TokenRow, now: float | None = None) -> list[str]:
    """One row's cells of :func:`table_lines`, secrets masked, control characters escaped
    (:func:`~zoho_sa_store.hygiene.printable`)."""
    shown = masked(row)
    return [
        describe_expiry(row, now) if name == "expiry_time" else printable(shown[name] or "-")
        for name in TABLE_COLUMNS
    ]


def table_widths(rows: Iterable[TokenRow], now: float | None = None) -> list[int]:
    """The column widths of :func:`table_lines` for ``rows`` (one pass, nothing kept)."""
    widths = [len(name) for name in HEADER]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, table_cells(row, now), strict=True)]
    return widths


def table_lines(
    rows: Iterable[TokenRow], now: float | None = None, widths: Sequence[int] | None = None
) -> Iterator[str]:
    """The rows as an aligned text table, secrets masked, a line at a time.

    ``widths`` (from :func:`table_widths` over the same rows) lets ``rows`` be a stream,
    read once; without it the rows are read into memory to measure them first.
    """
    if widths is None:
        rows = list(rows)
        widths = table_widths(rows, now)
    for line in chain([HEADER], (table_cells(row, now) for row in rows)):
        yield "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
