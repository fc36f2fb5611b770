"""What decoding SQLite text without quoting it costs ``find_token``, side by side.

The store's SQLite connections decode TEXT values with
:func:`zoho_sa_store.errors.sqlite_text` (an error names the byte, never the value) instead
of sqlite3's built-in decoding (whose error quotes the stored text). This runs
``find_token`` by user on the same file with each, in alternating rounds, and prints the
median µs per call::

    python -m bench.sqlite_text [--rows 1000] [--calls 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
from zohocrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

from zoho_sa_store import SQLAlchemyTokenStore, upgrade
from zoho_sa_store.settings import make_engine


def store(path: Path, builtin: bool) -> SQLAlchemyTokenStore:
    engine = make_engine(f"sqlite:///{path}")
    if builtin:  # after the store's own connect listener: sqlite3's decoding again

        def plain(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.text_factory = str

        event.listen(engine, "connect", plain)
    return SQLAlchemyTokenStore(engine=engine, refresh=False)


def query(user: str) -> OAuthToken:
    return OAuthToken(user_signature=UserSignature(user), refresh_token="1000.q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        filler = store(path, builtin=False)
        upgrade(filler.engine)
        expiry = str(int(time.time() * 1000) + 3_600_000)
        for i in range(args.rows):
            t = OAuthToken(
                client_id="1000.BENCH",
                client_secret="s" * 40,
                access_token=f"1000.a{i:07d}" + "x" * 60,
                refresh_token=f"1000.r{i:07d}" + "y" * 60,
                user_signature=UserSignature(f"user{i}@example.com"),
            )
            t.set_expires_in(expiry)
            filler.save_token(t)
        filler.close()
        user = f"user{args.rows // 2}@example.com"
        medians: dict[str, list[float]] = {"sqlite_text": [], "built-in": []}
        for _ in range(args.rounds):
            for name, builtin in (("sqlite_text", False), ("built-in", True)):
                timed = store(path, builtin)
                for _ in range(200):
                    timed.find_token(query(user))
                samples = []
                for _ in range(args.calls):
                    token = query(user)
                    start = time.perf_counter()
                    timed.find_token(token)
                    samples.append(time.perf_counter() - start)
                timed.close()
                medians[name].append(statistics.median(samples) * 1e6)
    for name, values in medians.items():
        shown = " ".join(f"{v:.1f}" for v in values)
        print(f"{name:12} median µs per find_token, by round: {shown}")


if __name__ == "__main__":
    main()
