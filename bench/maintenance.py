"""How long an app's ``save_token`` waits while ``purge`` or ``delete-all`` runs.

    python -m bench.maintenance --rows 200000                       # SQLite file
    python -m bench.maintenance --rows 200000 --code /tmp/zss-before  # another checkout's CLI
    python -m bench.maintenance --url postgresql+psycopg2://postgres@127.0.0.1/zss_bench

For each command: the table is filled with ``--rows`` tokens that ``purge`` deletes (no
refresh token, expired 40 days ago) plus the saver's own row; a thread of this process
saves one token in a loop (``save_token`` of its row with a new access token, the SDK's
save after a refresh), timing each call; after three seconds of saves alone the command runs
in a child process (``zoho-sa-store ... purge --older-than 30d`` / ``delete-all --yes``,
with ``--code DIR`` first on its ``PYTHONPATH``), and the saves go on for half a second
after it ends. Printed: the command's time, then the saves made while it ran, their median
and longest wait, how many waited more than 200 ms, and how many failed (SQLite's busy
timeout, 30 s, ran out: "database is locked").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import MetaData, create_engine, delete, insert
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

import zoho_sa_store
from bench.rows import CLIENT_ID, CLIENT_SECRET, access_token, batches, user_name, uuid_id
from zoho_sa_store.model import NAMING_CONVENTION, token_table

HERE = Path(__file__).resolve().parent
TABLE = "zss_maintenance"
CLI = "import sys; from zoho_sa_store.cli import main; sys.exit(main())"
DAY_MS = 86_400_000


def fill(url: str, rows: int) -> None:
    """``rows`` purgeable tokens (and nothing else) in the bench table."""
    zoho_sa_store.upgrade(url, table_name=TABLE)
    table = token_table(MetaData(naming_convention=NAMING_CONVENTION), TABLE)
    expired = str(int(time.time() * 1000) - 40 * DAY_MS)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(table))
            for chunk in batches(rows, lambda i: (i,)):
                conn.execute(
                    insert(table),
                    [
                        {
                            "id": uuid_id(i),
                            "user_name": user_name(i),
                            "client_id": CLIENT_ID,
                            "client_secret": CLIENT_SECRET,
                            "access_token": access_token(i),
                            "expiry_time": expired,
                            "saved_at": 0,
                        }
                        for (i,) in chunk
                    ],
                )
    finally:
        engine.dispose()


class Saver(threading.Thread):
    """Saves one token in a loop; ``waits`` holds (start, seconds) of every call."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.store = zoho_sa_store.SQLAlchemyTokenStore(url, table_name=TABLE, refresh=False)
        self.waits: list[tuple[float, float]] = []
        self.failed: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            t = OAuthToken(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                refresh_token="1000.saver-refresh-token-0123456789",
                id="saver",
                user_signature=UserSignature("saver@example.com"),
            )
            t.set_access_token(f"1000.saver-access-{n}-0123456789")
            t.set_expires_in(str(int(time.time() * 1000) + 3_600_000))
            start = time.perf_counter()
            try:
                self.store.save_token(t)
            except zoho_sa_store.TokenStoreError:  # SQLite's busy timeout (30 s) ran out
                self.failed.append((start, time.perf_counter() - start))
            self.waits.append((start, time.perf_counter() - start))
            time.sleep(0.005)
        self.store.close()


def measure(url: str, rows: int, command: list[str], code: str | None) -> str:
    fill(url, rows)
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    saver = Saver(url)
    saver.start()
    time.sleep(3.0)
    argv = [sys.executable, "-c", CLI, "--url", url, "--table", TABLE, *command]
    begin = time.perf_counter()
    # a neutral working directory: python -c puts it first on sys.path (see --code)
    done = subprocess.run(
        argv, env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, check=False
    )
    end = time.perf_counter()
    time.sleep(0.5)
    saver.stop.set()
    saver.join()
    during = [w for s, w in saver.waits if s + w >= begin and s <= end]
    before = [w for s, w in saver.waits if s + w < begin]
    slow = sum(1 for w in during if w > 0.2)
    failed = sum(1 for s, w in saver.failed if s + w >= begin and s <= end)
    return (
        f"{' '.join(command):28} exit {done.returncode}  {end - begin:6.1f} s  "
        f"saves alone: median {statistics.median(before) * 1000:5.1f} ms, longest "
        f"{max(before) * 1000:5.1f} ms | during: "
        f"{len(during):5} saves, median {statistics.median(during) * 1000:6.1f} ms, "
        f"longest {max(during) * 1000:7.1f} ms, over 200 ms: {slow}, failed: {failed}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.maintenance", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--url", default=None, help="default: a SQLite file in the results directory")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--code", default=None, help="a checkout to run the commands from")
    args = p.parse_args(argv)
    data = Path(args.results) / "data"
    data.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{data / 'maintenance.db'}"
    print(f"rows {args.rows:,}, {url.split(':')[0]}, code {args.code or 'installed'}", flush=True)
    for command in (["purge", "--older-than", "30d"], ["delete-all", "--yes"]):
        print(measure(url, args.rows, command, args.code), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
