"""Failover: the primary crashes, its synchronous standby is promoted, workers carry on.

Four worker processes, each with its own store on a libpq multi-host URL
(``target_session_attrs=read-write``), save their own user's token over and over. The
primary is stopped (``pg_ctl stop -m immediate``) and the standby promoted; the workers are
not restarted. With synchronous replication no acknowledged save may be lost.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from tests.factories import token
from tests.pgcluster import PgCluster
from zoho_sa_store import SQLAlchemyTokenStore, TokenStoreError, upgrade

WORKERS = 4
EPOCH_MS = 1_700_000_000_000
"""Save n stores expires_in EPOCH_MS + n: epoch milliseconds, as a save requires."""
DATABASE = "zoho_sa_store_failover"
TRAFFIC_BEFORE = 2.0
"""Seconds of saves before the crash."""
RECOVERY_BOUND = 30.0
"""Seconds after the promotion by which every worker must have saved again."""
MARGIN = 1.0
"""Seconds either side of the outage in which a call may still fail (calls in flight)."""
WORKER_LIFETIME = 50.0
"""A worker stops on its own after this long, whatever the test does."""


def user(w: int) -> str:
    return f"w{w}@example.com"


def worker(url: str, w: int, out: str, stop: Event) -> None:
    """Save ``w``'s token with access token ``...n<n>`` for n = 1, 2, ... until ``stop``.

    One line per call, written as soon as the call returns: ``ok|<error class> start end n``
    (times from the system-wide monotonic clock).
    """
    deadline = time.monotonic() + WORKER_LIFETIME
    store = SQLAlchemyTokenStore(url, refresh=False)
    n = 0
    with open(out, "a") as log:
        while not stop.is_set() and time.monotonic() < deadline:
            n += 1
            saved = token(
                user(w), access=f"1000.w{w}.n{n}", refresh=f"1000.r{w}", expires=str(EPOCH_MS + n)
            )
            start = time.monotonic()
            try:
                store.save_token(saved)
                outcome = "ok"
            except Exception as error:  # recorded, judged by the test
                outcome = type(error).__name__
            log.write(f"{outcome} {start:.4f} {time.monotonic():.4f} {n}\n")
            log.flush()
            time.sleep(0.005)
    store.close()


@dataclass
class Call:
    worker: int
    outcome: str
    start: float
    end: float
    n: int

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def read_calls(out_dir: Path) -> list[Call]:
    calls = []
    for w in range(WORKERS):
        path = out_dir / f"worker{w}.log"
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            outcome, start, end, n = line.split()
            calls.append(Call(w, outcome, float(start), float(end), int(n)))
    return calls


@dataclass
class Outcome:
    calls: list[Call]
    down: float
    promoted: float
    stored: dict[int, tuple[str, str]]
    """Per worker: the (access token, expiry) of its row on the promoted server."""
    history: dict[int, set[int]]
    """Per worker: the saves (their n) the promoted server holds, by :data:`HISTORY`."""


HISTORY = """
CREATE TABLE save_history (user_name text, access_token text, expiry_time text);
CREATE FUNCTION record_save() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO save_history VALUES (NEW.user_name, NEW.access_token, NEW.expiry_time);
    RETURN NEW;
END $$;
CREATE TRIGGER record_save AFTER INSERT OR UPDATE ON oauthtoken
    FOR EACH ROW EXECUTE FUNCTION record_save();
"""
"""Every row version a save commits, kept in the same transaction: the workers go on
saving after the promotion, so the last row alone would hide a lost save."""


def crash_and_promote(cluster: PgCluster) -> tuple[float, float]:
    """Crash the primary, promote the standby; (when the crash began, when writes work)."""
    down = time.monotonic()
    cluster.stop(cluster.primary, "immediate")
    cluster.promote()
    return down, time.monotonic()


def run_failover(
    cluster: PgCluster, out_dir: Path, failover: Callable[[PgCluster], tuple[float, float]]
) -> Outcome:
    """Workers saving through ``failover``; every call and the rows the new primary holds."""
    cluster.sql(cluster.primary, f"CREATE DATABASE {DATABASE}")
    url = cluster.url(DATABASE)
    upgrade(url)
    cluster.sql(cluster.primary, HISTORY, DATABASE)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    processes = [
        context.Process(target=worker, args=(url, w, str(out_dir / f"worker{w}.log"), stop))
        for w in range(WORKERS)
    ]
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + 30
        while {c.worker for c in read_calls(out_dir) if c.ok} != set(range(WORKERS)):
            assert time.monotonic() < deadline, "the workers did not start saving"
            assert all(p.exitcode is None for p in processes), "a worker died"
            time.sleep(0.1)
        time.sleep(TRAFFIC_BEFORE)
        down, promoted = failover(cluster)
        deadline = promoted + RECOVERY_BOUND
        while {c.worker for c in read_calls(out_dir) if c.ok and c.start >= promoted} != set(
            range(WORKERS)
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a little traffic on the new primary
    finally:
        stop.set()
        for process in (p for p in processes if p.pid is not None):
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
    with SQLAlchemyTokenStore(cluster.url(DATABASE, cluster.standby), refresh=False) as store:
        stored = {}
        for w in range(WORKERS):
            row = store.find_token(token(user(w)))
            assert row is not None, f"worker {w}'s row is missing on the promoted server"
            stored[w] = (row.get_access_token(), row.get_expires_in())
    history: dict[int, set[int]] = {w: set() for w in range(WORKERS)}
    query = "SELECT user_name, access_token, expiry_time FROM save_history"
    for name, access, expires in cluster.sql(cluster.standby, query, DATABASE):
        w = int(name[1:].split("@")[0])
        assert access == f"1000.w{w}.n{int(expires) - EPOCH_MS}", "a torn save"
        history[w].add(int(expires) - EPOCH_MS)
    return Outcome(read_calls(out_dir), down, promoted, stored, history)


def lost_saves(outcome: Outcome) -> dict[int, list[int]]:
    """Per worker, the acknowledged saves (their n) the promoted server does not hold."""
    return {
        w: [c.n for c in outcome.calls if c.worker == w and c.ok and c.n not in saved]
        for w, saved in outcome.history.items()
    }


def summary(outcome: Outcome) -> str:
    """The figures of a run, for the test's output."""
    failed = [c for c in outcome.calls if not c.ok]
    back, gaps = [], []
    for w in range(WORKERS):
        ends = sorted(c.end for c in outcome.calls if c.worker == w and c.ok)
        after = [
            c.end for c in outcome.calls if c.worker == w and c.ok and c.start >= outcome.promoted
        ]
        back.append(min(after, default=float("nan")) - outcome.promoted)
        gaps.append(max((b - a for a, b in itertools.pairwise(ends)), default=float("nan")))
    return (
        f"{len(outcome.calls)} calls, {len(failed)} failed "
        f"({', '.join(sorted({c.outcome for c in failed})) or 'none'}); "
        f"crash to promoted {outcome.promoted - outcome.down:.2f} s; "
        f"first save begun after the promotion done after {max(back):.2f} s (slowest worker); "
        f"longest gap between a worker's saves {max(gaps):.2f} s; failed calls ended from "
        f"{min((c.end for c in failed), default=outcome.down) - outcome.down:+.2f} s of the crash"
        f" to {max((c.end for c in failed), default=outcome.promoted) - outcome.promoted:+.2f} s"
        f" of the promotion; acknowledged saves lost {sum(map(len, lost_saves(outcome).values()))}"
    )


@pytest.mark.slow
def test_workers_follow_a_promoted_synchronous_standby(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    assert pg_cluster.synchronous
    outcome = run_failover(pg_cluster, tmp_path, crash_and_promote)
    print(summary(outcome))
    calls, down, promoted = outcome.calls, outcome.down, outcome.promoted
    # (a) every worker saved again soon after the promotion, with its store of before
    for w in range(WORKERS):
        after = [c.end for c in calls if c.worker == w and c.ok and c.start >= promoted]
        assert after, f"worker {w} made no save after the promotion"
        assert min(after) - promoted <= RECOVERY_BOUND
    # (b) nothing acknowledged is lost; the row is one save's, never torn
    for w, (access, expires) in outcome.stored.items():
        assert access == f"1000.w{w}.n{int(expires) - EPOCH_MS}"
        assert int(expires) - EPOCH_MS <= max(c.n for c in calls if c.worker == w)
        assert int(expires) - EPOCH_MS >= max(c.n for c in calls if c.worker == w and c.ok)
    assert lost_saves(outcome) == {key: [] for key in range(WORKERS)}
    # (c) calls fail only while no server takes writes (and those in flight at its edges)
    failed = [c for c in calls if not c.ok]
    assert {c.outcome for c in failed} <= {TokenStoreError.__name__}
    outside = [c for c in failed if not down - MARGIN <= c.end <= promoted + MARGIN]
    assert not outside, f"{len(outside)} calls failed outside the outage: " + ", ".join(
        f"w{c.worker} n{c.n} at {c.end - promoted:+.2f} s" for c in outside
    )


@pytest.mark.slow
def test_a_save_waiting_for_a_missing_synchronous_standby_fails_in_bounded_time(
    pg_cluster: PgCluster,
) -> None:
    """PostgreSQL's statement timeout stops before COMMIT; the store's write timeout does not."""
    pg_cluster.sql(pg_cluster.primary, f"CREATE DATABASE {DATABASE}")
    url = pg_cluster.url(DATABASE, pg_cluster.primary)
    upgrade(url)
    with SQLAlchemyTokenStore(url, refresh=False, write_timeout=2) as store:
        saved = token("ann@example.com", access="1000.before", refresh="1000.r")
        store.save_token(saved)
        pg_cluster.stop(pg_cluster.standby, "fast")
        for stale in (
            token("ann@example.com", access="1000.waiting"),  # a transaction: upsert
            token(id=saved.get_id(), access="1000.waiting"),  # one autocommitted UPDATE
        ):
            began = time.monotonic()
            with pytest.raises(TokenStoreError, match="write timeout"):
                store.save_token(stale)
            assert 1.5 < time.monotonic() - began < 6
        assert store.find_token(token("ann@example.com")) is not None  # lookups go on
        pg_cluster.start(pg_cluster.standby)
        pg_cluster.wait_streaming()
        store.save_token(token("ann@example.com", access="1000.after"))
        assert store.find_token_by_id(saved.get_id()).get_access_token() == "1000.after"
