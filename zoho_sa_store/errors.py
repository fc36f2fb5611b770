"""Errors raised by the store, and the one place that wraps SQLAlchemy's.

The SDK expects its own ``SDKException`` from a store
(``zohocrmsdk/src/com/zoho/crm/api/exception/sdk_exception.py``, or ``zcrmsdk``'s), so
:class:`TokenStoreError` is one. Its message never holds a driver's text, which may quote
a value: only the operation, the error's class and code, and a hint. The command line adds
the driver's reason for a failure to connect or log in (:func:`failure_message`), which has
no statement and so no value in it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import DBAPIError

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
    if hasattr(error, "params"):
        error.params = None  # bound values (tokens) never travel with the exception
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
