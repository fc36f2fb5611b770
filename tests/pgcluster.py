"""A throwaway PostgreSQL primary and streaming standby, built from the local binaries.

``pg_cluster`` (a fixture) and :func:`pg_cluster_running` build both servers under a temp
dir on free 127.0.0.1 ports: ``initdb`` with trust auth, the standby by
``pg_basebackup -R``, optionally synchronous replication (``synchronous_standby_names``
naming the standby, ``synchronous_commit=on``). Both are always stopped (``pg_ctl stop -m
immediate``) and removed afterwards; every wait is bounded. As root the servers run as the
``postgres`` OS user (``runuser``), since PostgreSQL refuses to run as root.

Binaries: ``$ZOHO_SA_STORE_TEST_PG_BINDIR``, else the newest ``/usr/lib/postgresql/*/bin``.
Missing, the tests skip, unless ``ZOHO_SA_STORE_REQUIRE_BACKENDS`` is set: then they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_VAR

BINDIR_VAR = "ZOHO_SA_STORE_TEST_PG_BINDIR"
NEEDED = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
TIMEOUT = 30.0
"""Seconds allowed for any one step: a server start, stop, promotion or catch-up."""


def find_bindir() -> Path | None:
    """The directory of PostgreSQL's server binaries, or None."""
    given = os.environ.get(BINDIR_VAR)
    found = [Path(given)] if given else []
    found += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    return next((d for d in found if all((d / b).is_file() for b in NEEDED)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    datadir: Path
    port: int

    @property
    def log(self) -> Path:
        return self.datadir.parent / f"{self.name}.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class PgCluster:
    """The two servers: ``primary`` and ``standby`` (a hot standby until promoted)."""

    root: Path
    bindir: Path
    primary: Node
    standby: Node
    synchronous: bool

    def run(self, program: str, *args: str, timeout: float = TIMEOUT + 10) -> str:
        """Run one of the server binaries (as the ``postgres`` user when we are root)."""
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def pg_ctl(self, node: Node, action: str, *args: str) -> None:
        """``pg_ctl start|stop|promote`` on ``node``, waiting at most :data:`TIMEOUT`."""
        wait = ("-w", "-t", str(int(TIMEOUT)))
        try:
            self.run("pg_ctl", "-D", str(node.datadir), "-l", str(node.log), *wait, *args, action)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{node.name} log:\n{node.log_tail()}") from None

    def start(self, node: Node) -> None:
        self.pg_ctl(node, "start")

    def stop(self, node: Node, mode: str = "immediate") -> None:
        self.pg_ctl(node, "stop", "-m", mode)

    def promote(self) -> None:
        """Promote the standby; returns once it accepts writes."""
        self.pg_ctl(self.standby, "promote")

    def url(self, database: str, *nodes: Node) -> str:
        """A SQLAlchemy URL for ``nodes`` (default: both, as one libpq multi-host URL)."""
        hosts = "&".join(f"host=127.0.0.1:{n.port}" for n in nodes or (self.primary, self.standby))
        return f"postgresql+psycopg2://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    def sql(self, node: Node, statement: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run ``statement`` (autocommit) on ``node``; its rows."""
        import psycopg2  # type: ignore[import-untyped]  # imported here: this module is a plugin

        dsn = f"host=127.0.0.1 port={node.port} user=postgres dbname={database} connect_timeout=5"
        conn = psycopg2.connect(dsn)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def wait_streaming(self) -> None:
        """Wait until the standby streams from the primary (as a synchronous one if so set)."""
        state = "sync" if self.synchronous else "async"
        query = "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'"
        deadline = time.monotonic() + TIMEOUT
        while [(state,)] != self.sql(self.primary, query):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the standby is not streaming ({state}) after {TIMEOUT} s")
            time.sleep(0.1)

    def kill_all(self) -> None:
        """Stop both servers, however things went: immediate stop, else SIGKILL by pid."""
        for node in (self.standby, self.primary):
            pidfile = node.datadir / "postmaster.pid"
            if not pidfile.exists():
                continue
            try:
                self.stop(node)
            except (RuntimeError, subprocess.TimeoutExpired):
                with suppress(OSError, ValueError, IndexError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)


@contextmanager
def pg_cluster_running(synchronous: bool = True) -> Iterator[PgCluster]:
    """A running primary and a streaming standby; both stopped and removed on exit."""
    bindir, message = find_bindir(), ""
    if bindir is None:
        message = f"PostgreSQL server binaries not found (set {BINDIR_VAR})"
    elif os.geteuid() == 0 and "postgres" not in {u.pw_name for u in pwd.getpwall()}:
        message = "PostgreSQL refuses to run as root, and there is no postgres OS user"
    if bindir is None or message:
        if os.environ.get(REQUIRE_VAR):
            pytest.fail(f"{message}; {REQUIRE_VAR} is set", pytrace=False)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="zoho-sa-pgcluster-"))  # mode 0700
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PgCluster(
        root,
        bindir,
        Node("primary", root / "primary", free_port()),
        Node("standby", root / "standby", free_port()),
        synchronous,
    )
    settings = (
        f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
        "shared_buffers = '16MB'\nmax_connections = 40\nfsync = off\nfull_page_writes = off\n"
        "wal_level = replica\nmax_wal_senders = 4\nwal_keep_size = '64MB'\n"
        "synchronous_commit = on\nlog_min_messages = warning\n"
    )
    try:
        cluster.run(
            "initdb", "-D", str(cluster.primary.datadir), "-U", "postgres", "-A", "trust",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        with (cluster.primary.datadir / "postgresql.conf").open("a") as conf:
            conf.write(f"{settings}port = {cluster.primary.port}\n")
            if synchronous:
                conf.write("synchronous_standby_names = 'standby'\n")
        cluster.start(cluster.primary)
        cluster.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(cluster.primary.port), "-U", "postgres",
            "-D", str(cluster.standby.datadir), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        with (cluster.standby.datadir / "postgresql.conf").open("a") as conf:
            # cluster_name is the walreceiver's application_name; once promoted, the standby
            # has no standby of its own to wait for
            conf.write(
                f"port = {cluster.standby.port}\ncluster_name = 'standby'\n"
                "synchronous_standby_names = ''\n"
            )
        cluster.start(cluster.standby)
        cluster.wait_streaming()
        yield cluster
    finally:
        cluster.kill_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=[True], ids=["sync"])
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    """A primary and a streaming standby (synchronous unless parametrized with False)."""
    with pg_cluster_running(synchronous=bool(request.param)) as cluster:
        yield cluster
