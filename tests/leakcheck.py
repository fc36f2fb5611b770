"""A pytest plugin: no secret appears in any log record or exception message of the run.

Secrets are every access, refresh and grant token and client secret that passes through
the store or is issued by the Zoho stand-in, and every encryption key made by
``keyring.new_entry`` (plus the test URLs' passwords). Messages are
every log record of every logger (at DEBUG, SQLAlchemy's statement log included) and the
text of every exception that leaves the store's public methods or is built as an SDK
exception. At the end of the session a leak fails the run.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from zoho_sa_store import keyring, testing
from zoho_sa_store.sdk import SDK_EXCEPTIONS
from zoho_sa_store.store import SQLAlchemyTokenStore

MIN_SECRET_LENGTH = 8
KNOWN_SECRETS = {"pw-secret"}
SECRET_GETTERS = ("get_access_token", "get_refresh_token", "get_grant_token", "get_client_secret")


class Recorder(logging.Handler):
    """Keeps the distinct text of every log record and exception seen."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: set[str] = set()
        self.secrets: set[str] = set(KNOWN_SECRETS)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + str(record.exc_info[1])
        self.messages.add(text)

    def secret(self, value: object) -> None:
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            self.secrets.add(value)

    def token_secrets(self, token: object) -> None:
        for getter in SECRET_GETTERS:
            get = getattr(token, getter, None)
            if callable(get):
                self.secret(get())


def find_leaks(messages: Iterable[str], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(secret, message) for every message that contains a secret."""
    secret_list = sorted(set(secrets))
    return [(s, m) for m in messages for s in secret_list if s in m]


RECORDER = Recorder()


def _watch_method(name: str) -> None:
    original: Callable[..., Any] = getattr(SQLAlchemyTokenStore, name)

    @functools.wraps(original)
    def watched(self: SQLAlchemyTokenStore, *args: Any, **kwargs: Any) -> Any:
        for arg in args:
            RECORDER.token_secrets(arg)
        try:
            result = original(self, *args, **kwargs)
        except Exception as error:
            RECORDER.messages.add(str(error))
            raise
        for token in result if isinstance(result, list) else [result]:
            RECORDER.token_secrets(token)
        RECORDER.messages.add(repr(self))
        return result

    setattr(SQLAlchemyTokenStore, name, watched)


def _watch_sdk_exceptions() -> None:
    for sdk_exception in SDK_EXCEPTIONS:  # the SDKException of each installed SDK
        if sdk_exception is not Exception:
            _watch_exception(sdk_exception)


def _watch_exception(sdk_exception: Any) -> None:
    original = sdk_exception.__init__

    def init(self: Exception, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        RECORDER.messages.add(str(self))

    sdk_exception.__init__ = init


def _watch_stand_in() -> None:
    original = testing.new_token

    def issued() -> str:
        value = original()
        RECORDER.secret(value)
        return value

    testing.new_token = issued


def _watch_keys() -> None:
    """Every encryption key a test makes (``new_entry``) is a secret too."""
    original = keyring.new_entry

    def made(key_id: str | None = None) -> str:
        entry = original(key_id)
        RECORDER.secret(entry.split(":", 1)[1])
        return entry

    keyring.new_entry = made


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(RECORDER)
    root.setLevel(logging.DEBUG)
    logging.getLogger("sqlalchemy").setLevel(logging.DEBUG)  # SQL and row logs too
    for name in ("find_token", "find_token_by_id", "save_token", "delete_token", "get_tokens"):
        _watch_method(name)
    _watch_sdk_exceptions()
    _watch_stand_in()
    _watch_keys()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks(RECORDER.messages, RECORDER.secrets)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"leak check: {len(RECORDER.secrets)} secrets against "
            f"{len(RECORDER.messages)} distinct log and exception messages: {len(leaks)} leaks"
        )
        for secret, message in leaks[:20]:
            reporter.write_line(f"  LEAK {secret[:6]}… in: {message[:300]!r}")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
