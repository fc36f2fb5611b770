"""Errors raised by the store, and the one place that wraps SQLAlchemy's.

The SDK expects its own ``SDKException`` from a store
(``zohocrmsdk/src/com/zoho/crm/api/exception/sdk_exception.py``), so
:class:`TokenStoreError` is one. Its message never holds a driver's text, which may quote
a value: only the operation, the error's class and code, and a hint.
"""

from __future__ import annotations

from zohocrmsdk.src.com.zoho.crm.api.exception.sdk_exception import SDKException

UPGRADE_HINT = "run `alembic upgrade head` (or zoho_sa_store.upgrade()) to create it"


class TokenStoreError(SDKException):  # type: ignore[misc]
    """A database failure in the token store (code ``"TOKEN_STORE"``).

    Attributes:
        code: always ``"TOKEN_STORE"``.
        cause: the underlying exception (also ``__cause__``), e.g. a SQLAlchemy
            ``OperationalError`` wrapping the driver's.
    """

    CODE = "TOKEN_STORE"

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        # The SDK appends str(cause) to its message; we keep the cause out of the text.
        super().__init__(code=self.CODE, message=message)
        self.cause = cause
        self.__cause__ = cause


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
    code = driver_code(error)
    kind = type(error).__name__ + (f" {code}" if code else "")
    if missing_table is not None:
        message = f"{operation} failed: table {missing_table!r} does not exist; {UPGRADE_HINT}"
    else:
        message = f"{operation} failed ({kind})"
    return TokenStoreError(message, cause=error)
