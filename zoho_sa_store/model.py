"""The ``oauthtoken`` table as a typed SQLAlchemy 2.0 ORM model.

Column names and order are the SDK's own (``zohocrmsdk/.../store/db_store.py`` creates the
same ten columns), so a table made by the SDK's ``DBStore`` can be adopted. Two columns are
ours: ``saved_at``, which orders several rows of one user ("the most recently saved"), and
``save_key``, which makes concurrent first saves of one token without a user name insert
one row (see :attr:`OAuthTokenRow.save_key`).

Exact matching is the same on every backend:

* PostgreSQL and SQLite compare strings byte for byte already.
* MySQL/MariaDB compare with the column's collation; ours is binary and NO PAD
  (``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on MySQL 8), so case and trailing
  spaces count. :class:`ExactString` picks it when the DDL is compiled.

Tokens are ``TEXT`` (up to :data:`MAX_TOKEN_LENGTH` characters). Their lookup indexes are a
hash index on PostgreSQL (a B-tree entry cannot hold a long token) and a 255-character prefix
index on MySQL/MariaDB (InnoDB's key-length limit); the query still compares the whole value.
``client_secret`` is ``TEXT`` too: with keys it holds a sealed value (see
:mod:`zoho_sa_store.sealing`), longer than the secret. Sealed rows are looked up by the
``<token>_digest`` columns (64 hex characters, B-tree indexes) and carry their ``key_id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped
from sqlalchemy.types import TypeDecorator, TypeEngine

DEFAULT_TABLE_NAME = "oauthtoken"
MAX_TOKEN_LENGTH = 8192
"""Longest access, refresh or grant token accepted, in characters."""
TOKEN_PREFIX_INDEX_LENGTH = 255
"""Characters of a token covered by its MySQL/MariaDB prefix index."""
KEY_ID_LENGTH = 32
"""Longest key id (see :mod:`zoho_sa_store.keyring`)."""
DIGEST_COLUMNS = ("access_token_digest", "refresh_token_digest", "grant_token_digest")
"""The blind-index columns: hex HMAC-SHA256 of a token, set on encrypted rows only."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ExactString(TypeDecorator[str]):
    """A ``VARCHAR(length)`` compared byte for byte on every backend.

    On MySQL/MariaDB the column gets ``utf8mb4`` with a binary NO PAD collation, chosen for
    the connected server; elsewhere it is the plain type.
    """

    impl: type[String] = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name not in ("mysql", "mariadb"):
            return self.impl_instance
        mariadb = getattr(dialect, "is_mariadb", False)
        collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
        impl = self.impl_instance
        if isinstance(impl, Text):
            return dialect.type_descriptor(mysql.TEXT(charset="utf8mb4", collation=collation))
        assert isinstance(impl, String)
        return dialect.type_descriptor(
            mysql.VARCHAR(impl.length, charset="utf8mb4", collation=collation)
        )


class ExactText(ExactString):
    """A ``TEXT`` compared byte for byte on every backend (see :class:`ExactString`)."""

    impl = Text
    cache_ok = True


class Base(DeclarativeBase):
    """Declarative base whose MetaData names every constraint and index predictably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _token_index(table_name: str, column: str) -> Index:
    return Index(
        f"ix_{table_name}_{column}",
        column,
        mysql_length=TOKEN_PREFIX_INDEX_LENGTH,
        postgresql_using="hash",
    )


def token_table(metadata: MetaData, name: str = DEFAULT_TABLE_NAME) -> Table:
    """The token table's definition, for any table name (the SDK's ``DBStore`` takes one).

    Constraint and index names follow :data:`NAMING_CONVENTION` with ``name`` in them.
    """
    return Table(
        name,
        metadata,
        Column("id", ExactString(64), primary_key=True),
        Column("user_name", ExactString(255)),
        Column("client_id", ExactString(255), nullable=False, server_default=text("''")),
        Column("client_secret", ExactText()),
        Column("refresh_token", ExactText()),
        Column("access_token", ExactText()),
        Column("grant_token", ExactText()),
        Column("expiry_time", String(20)),
        Column("redirect_url", String(1024)),
        Column("api_domain", String(255)),
        Column("saved_at", BigInteger, nullable=False, server_default=text("0")),
        Column("save_key", String(64)),
        Column("key_id", String(KEY_ID_LENGTH)),
        *(Column(digest, String(64)) for digest in DIGEST_COLUMNS),
        UniqueConstraint("user_name", "client_id"),
        UniqueConstraint("save_key"),
        _token_index(name, "access_token"),
        _token_index(name, "grant_token"),
        _token_index(name, "refresh_token"),
        Index(f"ix_{name}_key_id", "key_id"),
        *(Index(f"ix_{name}_{digest}", digest) for digest in DIGEST_COLUMNS),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


class OAuthTokenRow(Base):
    """One stored OAuth token: a row of the ``oauthtoken`` table.

    ``client_id`` is never NULL: a token without one is stored as ``""`` so that the unique
    constraint on ``(user_name, client_id)`` holds for it too (blank counts as absent, as in
    the SDK's rules). ``expiry_time`` is the SDK's ``expires_in``: absolute epoch
    milliseconds as a str. ``saved_at`` is epoch microseconds of the last save.

    ``save_key`` is set only on rows inserted for a token without a user name, which the
    ``(user_name, client_id)`` constraint cannot guard: the SHA-256 (hex) of the save rule
    that looked the token up (its column and value, see
    :func:`zoho_sa_store.rules.save_key`). Its unique constraint lets exactly one of several
    concurrent inserts of one token win, with no lock held across transactions. With keys
    it is keyed (an HMAC under the current key), never an unkeyed hash of a token.

    ``key_id`` names the key that sealed the row's secrets (NULL: stored in plain text);
    ``<token>_digest`` are the blind index of the token columns on sealed rows (see
    :mod:`zoho_sa_store.sealing`).
    """

    __table__ = token_table(Base.metadata)

    id: Mapped[str]
    user_name: Mapped[str | None]
    client_id: Mapped[str]
    client_secret: Mapped[str | None]
    refresh_token: Mapped[str | None]
    access_token: Mapped[str | None]
    grant_token: Mapped[str | None]
    expiry_time: Mapped[str | None]
    redirect_url: Mapped[str | None]
    api_domain: Mapped[str | None]
    saved_at: Mapped[int]
    save_key: Mapped[str | None]
    key_id: Mapped[str | None]
    access_token_digest: Mapped[str | None]
    refresh_token_digest: Mapped[str | None]
    grant_token_digest: Mapped[str | None]

    def __repr__(self) -> str:
        from zoho_sa_store.tokens import mask

        return (
            f"OAuthTokenRow(id={self.id!r}, user_name={self.user_name!r}, "
            f"client_id={self.client_id!r}, refresh_token={mask(self.refresh_token)!r}, "
            f"access_token={mask(self.access_token)!r}, expiry_time={self.expiry_time!r})"
        )


SDK_COLUMNS = (
    "id",
    "user_name",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "grant_token",
    "expiry_time",
    "redirect_url",
    "api_domain",
)
"""The SDK's column names, in its order."""
