"""Profile one operation of our store on rows the benchmark filled.

    python -m bench.profile --backend sqlite --rows 100000 --op "find_token(user)"

Uses pyinstrument when installed (a call tree), else cProfile (the top functions by own
time). Run ``python -m bench.run`` (or ``--fill-only``) at that size first.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from bench import db
from bench.run import HERE
from bench.stores import OPERATIONS
from bench.subjects import BACKENDS, ours


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=BACKENDS, default="sqlite")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--op", choices=OPERATIONS[:3], default="find_token(user)")
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--url", help="server URL (default: the benchmark's)")
    p.add_argument("--cprofile", action="store_true", help="cProfile even with pyinstrument")
    args = p.parse_args(argv)
    where = (
        str(HERE / "results" / "data" / f"ours-{args.rows}.db")
        if args.backend == "sqlite"
        else args.url or db.DEFAULT_URLS[args.backend]
    )
    subject = ours(args.backend, where, db.table_name(args.rows))
    subject.check(args.rows // 2)
    rng = random.Random(1)
    tokens = [subject.arg(args.op, rng.randrange(args.rows), "") for _ in range(args.calls + 200)]
    for t in tokens[:200]:
        subject.call(args.op, t)
    work = tokens[200:]
    start = time.perf_counter()
    for t in work[: len(work) // 2]:
        subject.call(args.op, t)
    per_call = (time.perf_counter() - start) / (len(work) // 2) * 1e6
    print(f"{args.op} on {args.backend}, {args.rows:,} rows: {per_call:.1f} µs a call (mean)")
    rest = work[len(work) // 2 :]
    try:
        if args.cprofile:
            raise ImportError
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for t in rest:
            subject.call(args.op, t)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    else:
        pi = Profiler(interval=0.0001)
        pi.start()
        for t in rest:
            subject.call(args.op, t)
        pi.stop()
        print(pi.output_text(unicode=True, color=False, show_all=False))
    subject.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
