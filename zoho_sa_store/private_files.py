"""Files that hold tokens are readable by their owner only.

* SQLite database files: :func:`guard_sqlite_file` creates a missing database file with mode
  0600 before SQLite opens it, whatever the umask. SQLite gives its ``-wal``, ``-shm`` and
  ``-journal`` files the database file's mode, so they are 0600 too. An existing file that
  other users may read or write is reported once per process (a warning naming it); its
  mode is left as it is.
* Exports: :func:`private_output` writes a new 0600 file (created exclusively, beside the
  target, under a temporary name) and renames it into place. The target itself is never
  opened: a symlink there is replaced (its target is untouched), an existing file is
  replaced (never chmod-ed), and a device, directory, pipe or socket is refused.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, TextIO

from sqlalchemy import Engine, event

log = logging.getLogger("zoho_sa_store.files")
PRIVATE_MODE = 0o600
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")
"""Suffixes of the files SQLite keeps for one database."""
_warned: set[str] = set()
_warned_lock = threading.Lock()


def create_private(path: str) -> bool:
    """Create ``path`` as an empty file of mode 0600 if it does not exist.

    Returns:
        True when this call created it; False when it existed, or could not be created
        (a missing directory, no permission: SQLite then reports the failure itself).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except OSError:
        return False
    try:
        os.fchmod(fd, PRIVATE_MODE)  # our own new file: the umask does not decide its mode
    finally:
        os.close(fd)
    return True


def warn_if_shared(path: str) -> None:
    """Warn, once per path and process, when ``path`` exists with group or other permissions."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if not mode & 0o077:
        return
    key = os.path.abspath(path)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "%s holds tokens and other local users may read or write it (mode %04o); "
        "restrict it with chmod 600 (the store does not change it)",
        key,
        mode,
    )


def guard_sqlite_file(engine: Engine, path: str, *, create: bool = True) -> None:
    """Before each new connection of ``engine`` to the SQLite file ``path``: create the file
    0600 if it is missing (unless ``create`` is False: a read-only or read-write-only URI),
    and warn about a database file, or one of its ``-wal``/``-shm``/``-journal`` files,
    that others may read (:func:`warn_if_shared`)."""

    @event.listens_for(engine, "do_connect")
    def _private_file(dialect: Any, record: Any, cargs: Any, cparams: Any) -> None:
        if not (create and create_private(path)):
            for suffix in SQLITE_COMPANIONS:
                warn_if_shared(path + suffix)


class NotARegularFile(OSError):
    """The output path exists and is not a regular file, nor a symlink to one or to nothing
    (a symlink to a device or pipe, such as ``/dev/stdout``, counts as one): left alone."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_special(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    link = stat.S_ISLNK(mode)
    if link:  # replaced, unless it leads to one of those (`-o /dev/stdout`)
        try:
            mode = os.stat(path).st_mode
        except OSError:  # dangling, or a loop: replaced like any symlink
            return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    kind = f"a symlink to {kind}" if link else kind
    raise NotARegularFile(errno.EEXIST, f"it is {kind}, not a regular file; left alone", path)


@contextmanager
def private_output(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A text file (UTF-8) that becomes ``path`` when the block ends without an exception.

    It is a new file of mode 0600, created exclusively (``tempfile.mkstemp``) in
    ``path``'s directory and renamed over ``path`` (``os.replace``) once written and
    flushed to disk; if the block fails it is removed and ``path`` is unchanged.

    Raises:
        NotARegularFile: ``path`` is a directory, device, pipe or socket, or a symlink to
            one (checked before anything is created, and again before the rename).
        OSError: the directory cannot be written.
    """
    target = os.fspath(path)
    _refuse_special(target)
    directory, name = os.path.split(os.path.abspath(target))
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), PRIVATE_MODE)
            yield file
            file.flush()
            os.fsync(file.fileno())
        _refuse_special(target)
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through :func:`private_output` (a new 0600 file).

    Raises:
        NotARegularFile, OSError: as :func:`private_output`.
    """
    with private_output(path) as file:
        file.write(text)
