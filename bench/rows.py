"""The benchmark's rows: deterministic, realistic values computed from a row number.

Row ``i`` (0-based) holds the same user, client and tokens in every store, so a lookup of row
``i`` means the same token everywhere. Only the id differs by store (see :data:`ID_SCHEMES`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator

from zoho_sa_store.model import SDK_COLUMNS

CLIENT_ID = "1000.BENCHCLIENT"
CLIENT_SECRET = "4f0c6a2d9b8e7f1a3c5d7e9f0a1b2c3d4e5f6a7b8c"
API_DOMAIN = "https://www.zohoapis.com"
EXPIRY_BASE_MS = 4_102_444_800_000
"""2100-01-01 in epoch milliseconds: no row ever looks stale."""
SAVED_AT_BASE_US = 1_764_000_000_000_000

OUR_COLUMNS = (*SDK_COLUMNS, "saved_at")

Row = tuple[str | int | None, ...]


def user_name(i: int) -> str:
    return f"user{i}@example.com:700000001"


def new_user_name(k: int, tag: str) -> str:
    """A user no fill creates: the target of ``save_token`` inserts (deleted afterwards)."""
    return f"new{tag}-{k}@example.com:700000001"


NEW_USER_LIKE = "new%"


def token(kind: str, i: int) -> str:
    """``1000.<32 hex>.<32 hex>``, like Zoho's access and refresh tokens."""
    h = hashlib.blake2b(f"{kind}{i}".encode(), digest_size=32).hexdigest()
    return f"1000.{h[:32]}.{h[32:]}"


def refresh_token(i: int) -> str:
    return token("r", i)


def access_token(i: int) -> str:
    return token("a", i)


def expiry(i: int) -> str:
    return str(EXPIRY_BASE_MS + i)


def uuid_id(i: int) -> str:
    digest = hashlib.blake2b(f"id{i}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def int_id(i: int) -> str:
    """FileStore's ids: numbers (its ``generate_id`` takes int() of every id)."""
    return str(i + 1)


def padded_id(i: int) -> str:
    """DBStore's ids: zero-padded numbers in its ``varchar(10)``.

    DBStore makes a new id as ``max(id) + 1`` over the varchar; with plain numbers the
    string maximum is ``"9..."`` and the new id collides with an existing row (its known
    fault), so every insert would fail. Zero-padded ids keep its inserts working.
    """
    return f"{i + 1:010d}"


ID_SCHEMES: dict[str, Callable[[int], str]] = {"uuid": uuid_id, "int": int_id, "padded": padded_id}


def sdk_row(i: int, make_id: Callable[[int], str] = uuid_id) -> Row:
    """Row ``i`` in the SDK's ten columns."""
    return (
        make_id(i),
        user_name(i),
        CLIENT_ID,
        CLIENT_SECRET,
        refresh_token(i),
        access_token(i),
        None,
        expiry(i),
        None,
        API_DOMAIN,
    )


def our_row(i: int) -> Row:
    """Row ``i`` in our table's columns (the SDK's ten plus ``saved_at``)."""
    return (*sdk_row(i), SAVED_AT_BASE_US + i)


def batches(n: int, make: Callable[[int], Row], size: int = 10_000) -> Iterator[list[Row]]:
    """Rows 0..n-1 in lists of ``size``."""
    for start in range(0, n, size):
        yield [make(i) for i in range(start, min(n, start + size))]
