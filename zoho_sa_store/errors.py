"""Errors raised by the store, and the one place that wraps SQLAlchemy's.

The SDK expects its own ``SDKException`` from a store
(``zohocrmsdk/src/com/zoho/crm/api/exception/sdk_exception.py``, or ``zcrmsdk``'s), so
:class:`TokenStoreError` is one. Its message never holds a driver's text, which may quote
a value: only the operation, the error's class and code, and a hint. The command line adds
the driver's reason for a failure to connect or log in (:func:`failure_message`), which has
no statement and so no value in it.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, StatementError

from zoho_sa_store.sdk import SDK_EXCEPTIONS

UPGRADE_HINT = (
    "run `zoho-sa-store upgrade` to create it"
    " (or zoho_sa_store.upgrade(); `alembic upgrade head` from a clone)"
)


class TokenStoreError(*SDK_EXCEPTIONS):  # type: ignore[misc]
    """A database failure in the token store (code ``"TOKEN_STORE"``).

    An ``SDKException`` of every installed SDK family (``zohocrmsdk``, ``zcrmsdk``; see
    :data:`zoho_sa_store.sdk.SDK_EXCEPTIONS`), so each SDK handles it as its own.

    Attributes:
        code: always ``"TOKEN_STORE"``.
        cause: the underlying exception (also ``__cause__``), e.g. a SQLAlchemy
            ``OperationalError`` wrapping the driver's.
        operation: what failed, when the message is :func:`failure_message`'s, else None.
        missing_table: the table whose absence was the failure, else None.
    """

    CODE = "TOKEN_STORE"

    def __init__(
        self,
        message: str,
        cause: BaseException | None = None,
        *,
        operation: str | None = None,
        missing_table: str | None = None,
    ) -> None:
        # The SDK appends str(cause) to its message; we keep the cause out of the text.
        super().__init__(code=self.CODE, message=message)
        cause = scrub(cause)  # no bound value, cursor or connection on the chain
        self.cause = cause
        self.__cause__ = cause
        self.operation = operation
        self.missing_table = missing_table


def driver_code(error: BaseException) -> str | None:
    """The driver's error code (PostgreSQL SQLSTATE, MySQL errno, SQLite's error name such as
    ``SQLITE_BUSY``), never its message."""
    orig = getattr(error, "orig", None)
    for attribute in ("pgcode", "sqlstate", "sqlite_errorname"):  # psycopg2/3, sqlite3
        pgcode = getattr(orig, attribute, None)
        if isinstance(pgcode, str):
            return pgcode
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return str(args[0])
    return None


def store_error(
    operation: str, error: BaseException, *, missing_table: str | None = None
) -> TokenStoreError:
    """Wrap a database failure as a :class:`TokenStoreError` whose message names no value.

    Args:
        operation: what failed, e.g. ``"find_token"``.
        error: the exception raised by SQLAlchemy or the driver.
        missing_table: the table's name when the failure is that it does not exist.
    """
    message = failure_message(operation, error, missing_table=missing_table)
    return TokenStoreError(message, cause=error, operation=operation, missing_table=missing_table)


def failure_message(
    operation: str,
    error: BaseException,
    *,
    missing_table: str | None = None,
    reason: str | None = None,
) -> str:
    """``list failed (OperationalError 2003)``, with ``: reason`` when one is given.

    Args:
        operation: what failed, e.g. ``"find_token"`` or a command's name.
        error: the exception raised by SQLAlchemy, the driver or Alembic.
        missing_table: the table's name when the failure is that it does not exist.
        reason: a text known to hold no value, e.g. :func:`driver_reason` of a
            :func:`connection_failure`.
    """
    if missing_table is not None:
        return f"{operation} failed: table {missing_table!r} does not exist; {UPGRADE_HINT}"
    code = driver_code(error)
    kind = type(error).__name__ + (f" {code}" if code else "")
    return f"{operation} failed ({kind})" + (f": {reason}" if reason else "")


def connection_failure(error: BaseException) -> bool:
    """The driver failed to connect or log in: a DBAPI error raised with no statement.

    Its text ("connection refused", "password authentication failed", "Unknown database")
    comes before any SQL ran, so it quotes no stored value.
    """
    return isinstance(error, DBAPIError) and error.statement is None


def driver_reason(error: BaseException, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """The driver's message for ``error`` (SQLAlchemy's own when there is none), on one line.

    Every non-empty string in ``secrets`` (e.g. the URL's password) is replaced by ``***``.
    """
    orig = getattr(error, "orig", None)
    text = " ".join(str(orig if orig is not None else error).split())
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text[:limit]


def _exceptions(error: BaseException) -> list[BaseException]:
    """``error`` and every exception its chain reaches (``__cause__``, ``__context__``,
    SQLAlchemy's ``orig``, our ``cause``), each once."""
    found: dict[int, BaseException] = {}
    pending: list[object] = [error]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in found:
            continue
        found[id(item)] = item
        pending += [item.__cause__, item.__context__]
        pending += [getattr(item, "orig", None), getattr(item, "cause", None)]
    return list(found.values())


def _holds_query(error: BaseException) -> bool:
    """A driver's exception that references live objects holding SQL text or the
    connection: psycopg2's ``cursor`` (``cursor.query`` is the statement with its values
    inlined), psycopg 3's ``pgconn`` (the connection, its password included) and
    ``pgresult``."""
    if getattr(error, "cursor", None) is not None:  # psycopg2 (read-only: copied instead)
        return True
    info = vars(error).get("_info")  # psycopg 3: a PGresult or a PGconn, or a plain dict
    return vars(error).get("_pgconn") is not None or not isinstance(info, (dict, type(None)))


def _detached(error: BaseException) -> BaseException:
    """A copy of a driver's exception without its live references (its pickled form keeps
    the class, message and SQLSTATE, e.g. psycopg2's ``pgcode``, psycopg 3's ``sqlstate``),
    or ``error`` itself when it has none or cannot be copied."""
    if not _holds_query(error):
        return error
    try:
        copy: BaseException = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    except Exception:
        return error
    copy.__cause__, copy.__context__ = error.__cause__, error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    copy.__traceback__ = error.__traceback__
    return copy


def scrub(error: BaseException | None) -> BaseException | None:
    """Strip token values from ``error`` and every exception its chain reaches, in place.

    SQLAlchemy's ``StatementError.params`` (the bound values) becomes None. A driver's
    exception that references its cursor or connection (psycopg2's ``cursor``, whose
    ``query`` holds the statement with the tokens inlined; psycopg 3's ``pgconn`` and
    ``pgresult``) is replaced, everywhere the chain refers to it, by a copy without them
    (same class, message and code). PyMySQL's and sqlite3's exceptions hold only their
    code and message. The traceback's frames are left alone: as with any Python
    exception, they hold the local variables of the calls they record.

    Returns:
        ``error``, or its copy when ``error`` itself is such a driver exception.
    """
    if error is None:
        return None
    chain = _exceptions(error)
    copies = {id(e): _detached(e) for e in chain}
    chain += [copy for copy in copies.values() if copy not in chain]

    def clean(item: BaseException | None) -> BaseException | None:
        return None if item is None else copies.get(id(item), item)

    for item in chain:
        if isinstance(item, StatementError):
            item.params = None
            item.orig = clean(item.orig)
        item.__cause__, item.__context__ = clean(item.__cause__), clean(item.__context__)
        cause = getattr(item, "cause", None)
        if isinstance(cause, BaseException) and clean(cause) is not cause:
            item.cause = clean(cause)  # type: ignore[attr-defined]
    return clean(error)


def sqlite_text(data: bytes) -> str:
    """Decode a SQLite TEXT value (the connections' ``text_factory``) as UTF-8.

    sqlite3's own decoding error quotes the stored text ("Could not decode to UTF-8 column
    'x' with text '...'"), a token included. This one names the byte's position only.

    Raises:
        sqlite3.DataError: the value is not UTF-8 (written by another program).
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        position = error.start  # the error holds the bytes: it must not become a context
    raise sqlite3.DataError(
        f"a stored text value is not valid UTF-8 (byte {position} of {len(data)}); "
        "its text is not shown"
    )


def sqlite_text_safely(engine: Engine) -> None:
    """On a SQLite engine, decode every TEXT value with :func:`sqlite_text` (no-op elsewhere).

    The store's engines get it from :func:`zoho_sa_store.settings.configure_sqlite`.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _text_factory(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.text_factory = sqlite_text
