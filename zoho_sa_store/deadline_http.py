"""An HTTP POST whose whole exchange (connect, send, read of the full answer) has one deadline.

``requests``' timeout applies to each socket operation, so a server that trickles its answer
one byte at a time can hold a caller forever; here a timer shuts the exchange's sockets down
when the time is up, and the answer is read in chunks up to a size cap.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from contextvars import ContextVar
from typing import Any

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

_CHUNK = 4096


class ExchangeError(Exception):
    """The exchange failed, timed out or its answer was too long (its message names no value)."""


class _Deadline:
    """Shuts down the exchange's sockets when its time is up, whatever they are waiting on."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[tuple[socket.socket, int]] = []

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append((sock, sock.fileno()))
            if self.expired:
                self._shut_down()

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut_down()

    def forget(self) -> None:
        """The exchange is over (its sockets not closed yet): never touch them again."""
        with self._lock:
            self._sockets.clear()

    def _shut_down(self) -> None:
        owned = {fd for sock, fd in self._sockets if sock.fileno() == fd}
        for sock, fd in self._sockets:
            if sock.fileno() == fd:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            elif sock.fileno() == -1 and fd not in owned:
                # detached by the TLS wrap, whose socket is not watched yet: the handshake
                _shut_down_fd(fd)


def _shut_down_fd(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("zoho_sa_store_refresh_deadline", default=None)


def _watch(sock: socket.socket | None) -> None:
    deadline = _DEADLINE.get()
    if deadline is not None and sock is not None:
        deadline.watch(sock)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _watch(sock)
        return sock

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)  # the TLS socket, owner of the descriptor from now on


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections (direct or through an http proxy) join the deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


def post_json(
    url: str,
    body: dict[str, str | None],
    *,
    timeout: float,
    max_bytes: int,
    proxies: dict[str, str] | None = None,
    what: str = "server",
) -> Any:
    """POST the form ``body`` to ``url`` and read the JSON answer, all within ``timeout`` s.

    Args:
        url: where to post (no redirects are followed).
        body: the form fields.
        timeout: seconds for the whole exchange: connect, send, and read of the full answer.
        max_bytes: the longest answer accepted.
        proxies: ``requests`` proxies, or None.
        what: how messages name the server (e.g. "token endpoint").

    Returns:
        The decoded JSON answer.

    Raises:
        ExchangeError: no whole answer within ``timeout``, an answer over ``max_bytes``, a
            failed request or an answer that is not JSON (the message names no value).
    """
    deadline = _Deadline(timeout)
    session = requests.Session()
    adapter = _DeadlineAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    response: requests.Response | None = None
    context = _DEADLINE.set(deadline)
    timer = threading.Timer(timeout, deadline.expire)
    timer.daemon = True
    timer.start()
    too_long = f"{what} answer over {max_bytes} bytes"
    late = f"{what} did not answer within {timeout:g} s"
    try:
        response = session.post(
            url,
            data=body,
            timeout=deadline.remaining(),
            allow_redirects=False,
            stream=True,
            proxies=proxies,
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ExchangeError(too_long)
        data = bytearray()
        for chunk in response.iter_content(_CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise ExchangeError(too_long)
            if deadline.expired or time.monotonic() > deadline.end:
                break
        if deadline.expired or time.monotonic() > deadline.end:
            raise ExchangeError(late)
        return json.loads(bytes(data))
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        if deadline.expired:
            raise ExchangeError(late) from None
        raise ExchangeError(f"{what} failed: {type(error).__name__}") from None
    finally:
        timer.cancel()
        deadline.forget()  # before the sockets close: no descriptor of theirs is touched after
        _DEADLINE.reset(context)
        if response is not None:
            response.close()
        session.close()
