"""Deployment faults, counted: forked workers, pools of dead connections, session locks.

Run against any checkout (``PYTHONPATH=<checkout> python -m bench.faults URL...``) to compare
the store before and after a change; it prints one line per fault and URL. Not a test: the
tests assert the same behaviour; this gives the figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import signal
import time
from typing import Any

from sqlalchemy import create_engine, event, text
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_sa_store import SQLAlchemyTokenStore


def _token(user: str | None = None, **fields: Any) -> OAuthToken:
    signature = UserSignature(user) if user else None
    return OAuthToken(client_id="1000.A", client_secret="s", user_signature=signature, **fields)


def _calls(store: SQLAlchemyTokenStore, name: str, calls: int) -> tuple[int, int]:
    """(wrong results, errors) of ``calls`` save+find rounds of this worker's user."""
    wrong = errors = 0
    for n in range(calls):
        try:
            store.save_token(_token(f"{name}@x", access_token=f"1000.{name}.{n}"))
            found = store.find_token(_token(f"{name}@x"))
            shared = store.find_token(_token("shared@x"))
            wrong += found is None or found.get_access_token() != f"1000.{name}.{n}"
            wrong += shared is None
        except Exception:
            errors += 1
    return wrong, errors


def _child(store: SQLAlchemyTokenStore, name: str, start: Any, out: Any, calls: int) -> None:
    start.wait(timeout=30)
    out.put(_calls(store, name, calls))


def fork(url: str, children: int = 4, calls: int = 40) -> str:
    store = SQLAlchemyTokenStore(url)
    store.delete_tokens()
    store.save_token(_token("shared@x", access_token="1000.shared"))
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(children + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(store, f"c{n}", start, out, calls))
        for n in range(children)
    ]
    for p in procs:
        p.start()
    start.wait(timeout=30)
    wrong, errors = _calls(store, "parent", calls)
    hung = 0
    for p in procs:
        p.join(timeout=20)
        if p.is_alive():
            hung += 1
            p.kill()
    while not out.empty():
        w, e = out.get()
        wrong, errors = wrong + w, errors + e
    total = (children + 1) * calls * 3
    return f"fork: {wrong} wrong results, {errors} failed rounds, {hung} hung children of {total}"


def dead_pool(url: str, pooled: int = 5, calls: int = 10) -> str:
    store = SQLAlchemyTokenStore(url, pool_size=pooled, max_overflow=0)
    store.delete_tokens()
    saved = _token("ann@x", access_token="1000.a")
    store.save_token(saved)
    held = [store.engine.connect() for _ in range(pooled)]
    pg = url.startswith("postgresql")
    pids = [
        c.scalar(text("SELECT pg_backend_pid()" if pg else "SELECT CONNECTION_ID()")) for c in held
    ]
    for c in held:
        c.close()
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(
                text(f"SELECT pg_terminate_backend({int(pid)})" if pg else f"KILL {int(pid)}")
            )
    admin.dispose()
    time.sleep(0.3)
    failed = []
    for n in range(calls):
        try:
            if n % 2:
                store.find_token_by_id(saved.get_id())
            else:
                store.find_token(_token("ann@x"))
        except Exception:
            failed.append(n + 1)
    store.close()
    return f"dead pool: {len(failed)} of the first {calls} lookups failed (calls {failed})"


def session_locks(url: str) -> str:
    store = SQLAlchemyTokenStore(url)
    store.delete_tokens()
    sent: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    for n in range(5):
        store.save_token(
            _token(grant_token="1000.g", refresh_token="1000.r", access_token=f"1000.{n}")
        )
    store.close()
    locks = [s for s in sent if re.search(r"advisory|GET_LOCK|RELEASE_LOCK", s, re.I)]
    return f"session locks: {len(locks)} lock statements in 5 saves without a user name"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="+")
    signal.signal(signal.SIGALRM, _hung)
    for url in parser.parse_args().urls:
        for measure in (fork, dead_pool, session_locks):
            if measure is dead_pool and url.startswith("sqlite"):
                continue
            signal.alarm(120)
            try:
                result = measure(url)
            except TimeoutError:
                result = f"{measure.__name__}: the parent process hung (stopped after 120 s)"
            except Exception as error:
                result = f"{measure.__name__}: raised {type(error).__name__}"
            signal.alarm(0)
            print(f"{url.split(':')[0]:22} {result}", flush=True)


def _hung(signum: int, frame: Any) -> None:
    raise TimeoutError


if __name__ == "__main__":
    main()
