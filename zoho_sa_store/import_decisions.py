"""How an import judges each source row, against the stored rows it could clash with: new
(to insert), unchanged, a conflict or invalid; no I/O (:mod:`zoho_sa_store.importers` reads
the sources and the table, and writes).

A row holds the columns the SDK's own stores write and read back
(``zohocrmsdk/src/com/zoho/api/authenticator/store/file_store.py`` and ``db_store.py``,
``set_merge_data``: an empty field is None). It is validated as the store validates a
token: an ``OAuthToken`` built from its values, then
:func:`zoho_sa_store.tokens.token_fields` and :func:`~zoho_sa_store.tokens.check_expiry`.
The rules are listed in :mod:`zoho_sa_store.importers`' docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

from zoho_sa_store.sdk import OAuthToken, SDKException, UserSignature
from zoho_sa_store.sources import SourceRow
from zoho_sa_store.tokens import TokenFields, check_expiry, token_fields


@dataclass
class ImportReport:
    """What an import did. ``conflicts`` and ``invalid`` hold one message per row."""

    read: int = 0
    imported: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every row read is now stored (no conflict, no invalid row)."""
        return not self.conflicts and not self.invalid

    def summary(self) -> str:
        return (
            f"read {self.read}, imported {self.imported}, unchanged {self.unchanged}, "
            f"conflicts {len(self.conflicts)}, invalid {len(self.invalid)}"
        )

    def add(self, other: ImportReport) -> None:
        """Count ``other`` (one batch's report) in this one."""
        self.read += other.read
        self.imported += other.imported
        self.unchanged += other.unchanged
        self.conflicts += other.conflicts
        self.invalid += other.invalid


def validate(values: dict[str, object], new_id: str) -> TokenFields:
    """The row's values as the store would save them (a blank id becomes ``new_id``).

    Raises:
        ValueError, TypeError: as :func:`~zoho_sa_store.tokens.token_fields` does (the
            message names the field, never its value), or no access, refresh or grant token.
    """
    # the SDK reads an empty field or column as None
    raw = {
        name: None if v == "" else str(v) if isinstance(v, int) else v for name, v in values.items()
    }
    token_id = raw.get("id")
    if token_id is None or (isinstance(token_id, str) and not token_id.strip()):
        token_id = new_id
    name = raw.get("user_name")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"user_name must be a str or None, not {type(name).__name__}")
    try:
        token = OAuthToken(
            id=token_id,
            user_signature=UserSignature(name) if name else None,
            client_id=raw.get("client_id"),
            client_secret=raw.get("client_secret"),
            refresh_token=raw.get("refresh_token"),
            access_token=raw.get("access_token"),
            grant_token=raw.get("grant_token"),
            redirect_url=raw.get("redirect_url"),
            api_domain=raw.get("api_domain"),
        )
    except SDKException:
        raise TypeError("a value is not a str") from None
    token.set_expires_in(raw.get("expiry_time"))
    fields_ = token_fields(token)
    check_expiry(fields_.expiry_time)  # as save_token: epoch milliseconds, 13 digits
    if not ({"access_token", "refresh_token", "grant_token"} & fields_.present().keys()):
        raise ValueError("no access, refresh or grant token")
    return fields_


def _differences(a: TokenFields, b: TokenFields) -> str:
    return ", ".join(f.name for f in fields(a) if getattr(a, f.name) != getattr(b, f.name))


class Checked(NamedTuple):
    """One source row, validated once (a retried batch keeps its new ids)."""

    row: SourceRow
    new: TokenFields | None
    error: str | None
    has_id: bool


def check_row(row: SourceRow) -> Checked:
    given_id = row.values.get("id")
    has_id = given_id is not None and bool(str(given_id).strip())
    if not row.values:
        return Checked(row, None, row.where, has_id)
    try:
        return Checked(row, validate(row.values, str(uuid.uuid4())), None, has_id)
    except (TypeError, ValueError) as error:
        return Checked(row, None, f"{row.where}: {error}", has_id)


class _Index:
    """Rows by id, by (user_name, client_id) and by their values (without id), in memory."""

    def __init__(self, rows: Iterable[TokenFields] = ()) -> None:
        self.by_id: dict[str, TokenFields] = {}
        self.by_user: dict[tuple[str, str], str] = {}
        self.by_values: dict[TokenFields, str] = {}
        for row in rows:
            self.add(row)

    def add(self, row: TokenFields) -> None:
        assert row.id is not None
        self.by_id[row.id] = row
        if row.user_name is not None:
            self.by_user[(row.user_name, row.client_id or "")] = row.id
        self.by_values.setdefault(replace(row, id=None), row.id)


def decide_batch(
    chunk: list[Checked],
    related: list[TokenFields],
    write: Callable[[list[TokenFields]], None],
) -> ImportReport:
    part = ImportReport()
    index = _Index(related)
    new_rows: list[TokenFields] = []
    for checked in chunk:
        new = _decide(checked, index, part)
        if new is not None:
            index.add(new)
            new_rows.append(new)
    if new_rows:
        write(new_rows)
    return part


def _decide(checked: Checked, index: _Index, report: ImportReport) -> TokenFields | None:
    """The row to insert, or None (unchanged, a conflict or invalid); counted in ``report``."""
    report.read += 1
    row, new, has_id = checked.row, checked.new, checked.has_id
    if new is None:
        report.invalid.append(checked.error or row.where)
        return None
    assert new.id is not None
    existing = index.by_id.get(new.id) if has_id else None
    if existing is not None:
        if existing == new:
            report.unchanged += 1
        else:
            other = _differences(existing, new)
            report.conflicts.append(f"{row.where}: stored row {new.id!r} differs in {other}")
        return None
    holder = index.by_user.get((new.user_name, new.client_id or "")) if new.user_name else None
    if holder is not None:
        if not has_id and replace(index.by_id[holder], id=None) == replace(new, id=None):
            report.unchanged += 1
        else:
            report.conflicts.append(
                f"{row.where}: user_name {new.user_name!r} with client_id "
                f"{new.client_id or ''!r} is stored as row {holder!r}"
            )
        return None
    if not has_id and replace(new, id=None) in index.by_values:
        report.unchanged += 1
        return None
    report.imported += 1
    return new
