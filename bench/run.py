"""Benchmark the token store's hot path beside the SDK's stores and the raw-driver floor.

    python -m bench.run                      # sizes 1000,10000,100000
    python -m bench.run --quick              # smoke run, under a minute
    python -m bench.run --sizes 1000,1000000 --get-tokens

See bench/README.md for what is measured and what every column means.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import db, fill, report
from bench.stores import OPERATIONS, Subject
from bench.subjects import BACKENDS, REFERENCE, STORES, Plan
from bench.timing import Measurement, OpRun, time_get_tokens

HERE = Path(__file__).resolve().parent
ROUNDS = 10
"""Chunks in which the subjects of one row count take turns at each operation."""
SKIPPED_NAMES = {
    "filestore": ("FileStore", "csv", "sqlite"),
    "dbstore": ("DBStore", "mariadb", "mariadb"),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _list(value: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    items = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {','.join(allowed)}")
    return items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="row counts (comma-separated)")
    p.add_argument("--iterations", type=int, default=2000, help="timed calls: ours and floor")
    p.add_argument(
        "--reference-iterations",
        type=int,
        default=200,
        help="timed calls: FileStore, DBStore and the blog class",
    )
    p.add_argument("--warmup", type=int, default=100, help="untimed calls before timing")
    p.add_argument(
        "--reference-max-rows",
        type=int,
        default=10_000,
        help="skip FileStore and DBStore above this many rows",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds per store and operation before timing stops early",
    )
    p.add_argument(
        "--get-tokens",
        action="store_true",
        help="time get_tokens at every size (default: the smallest only)",
    )
    p.add_argument("--stores", default=",".join(STORES), type=lambda v: _list(v, STORES))
    p.add_argument("--backends", default=",".join(BACKENDS), type=lambda v: _list(v, BACKENDS))
    p.add_argument("--postgres-url", default=db.DEFAULT_URLS["postgresql"], help="psycopg2")
    p.add_argument(
        "--psycopg-url", help="psycopg 3 (default: --postgres-url with postgresql+psycopg://)"
    )
    p.add_argument("--mysql-url", default=db.DEFAULT_URLS["mariadb"])
    p.add_argument("--results", type=Path, default=HERE / "results")
    p.add_argument("--refill", action="store_true", help="empty and fill every table again")
    p.add_argument("--fill-only", action="store_true", help="fill the rows, measure nothing")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1000 rows, 200/20 iterations, 20 warm-up calls",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.iterations, args.reference_iterations, args.warmup = "1000", 200, 20, 20
        args.budget = min(args.budget, 5.0)
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    args.psycopg_url = args.psycopg_url or db.psycopg_url(args.postgres_url)
    return args


def server_urls(args: argparse.Namespace) -> dict[str, str]:
    return {"postgresql": args.postgres_url, "psycopg": args.psycopg_url, "mariadb": args.mysql_url}


def reachable_backends(args: argparse.Namespace) -> tuple[tuple[str, ...], dict[str, str]]:
    """The backends whose servers answer (databases created if missing), and versions."""
    urls = server_urls(args)
    ok, versions = [], {"sqlite": db.server_version("sqlite", "")}
    for backend in args.backends:
        if backend == "sqlite":
            ok.append(backend)
            continue
        try:
            db.ensure_database(backend, urls[backend])
            versions[backend] = db.server_version(backend, urls[backend])
            ok.append(backend)
        except Exception as error:
            log(f"!! {backend} skipped: cannot reach {urls[backend]} ({type(error).__name__})")
    return tuple(ok), versions


def measure_size(
    subjects: list[Subject], rows: int, args: argparse.Namespace, run_tag: str, get_tokens: bool
) -> list[Measurement]:
    """Every operation of every subject at one row count, the subjects taking turns.

    For each operation all subjects warm up, then time their calls in ``ROUNDS`` chunks,
    one subject after the other, so a change in the machine's load hits all of them alike.
    An operation that failed (a database server restarted under it) is timed again from the
    start, alone, once the server answers; a second failure is reported as an error.
    """
    out: list[Measurement] = []
    live = []
    for subject in subjects:
        try:
            subject.check(rows // 2)
            live.append(subject)
        except Exception as error:
            log(f"!! {subject.label}: the filled rows are not found: {error!r}")
            out += [_failed(subject, rows, op, error) for op in OPERATIONS]
    for op in OPERATIONS:
        started = time.perf_counter()
        runs = [_op_run(subject, op, rows, args, run_tag) for subject in live]
        for run in runs:
            _guarded(run, run.warm)
        for _ in range(ROUNDS):
            for run in runs:
                _guarded(run, lambda run=run: run.step(-(-run.iterations // ROUNDS)))
        for run in runs:
            if run.failed and not run.restarted and _wait_for(run.subject, rows):
                run.restart()
                _guarded(run, run.warm)
                while not run.done:
                    _guarded(run, lambda run=run: run.step(run.iterations))
        for run in runs:
            m = run.result()
            out.append(m)
            log(
                f"   {run.subject.label:22} {op:20} median {report._num(m.median_us):>9} µs"
                f"  p99 {report._num(m.p99_us):>9} µs  n={m.n}"
            )
        log(f"   ({time.perf_counter() - started:.1f} s)")
    for subject in live:
        try:
            subject.revive()
            subject.delete_inserted()
        except Exception as error:  # the next run finds the count off and fills again
            log(f"!! {subject.label}: inserted rows not deleted: {type(error).__name__}: {error}")
        if not get_tokens:
            continue
        try:
            for m in time_get_tokens(subject, rows, 3 if args.quick or rows > 10_000 else 5):
                out.append(m)
                log(
                    f"   {subject.label:22} {m.operation:20} median {report._num(m.median_us)} µs"
                    f"  peak {(m.peak_bytes or 0) / 2**20:.1f} MiB"
                )
        except Exception as error:
            traceback.print_exc()
            out.append(_failed(subject, rows, "get_tokens", error))
    return out


def _op_run(subject: Subject, op: str, rows: int, args: argparse.Namespace, run_tag: str) -> OpRun:
    slow = subject.reference or subject.store == "blog"
    return OpRun(
        subject,
        op,
        rows,
        iterations=args.reference_iterations if slow else args.iterations,
        warmup=max(2, args.warmup // 20) if slow else args.warmup,
        seed=args.seed,
        tag=f"{run_tag}{subject.store[:2]}{subject.backend[:2]}".lower(),
        budget_s=args.budget,
    )


def _wait_for(subject: Subject, rows: int, seconds: float = 180) -> bool:
    """Wait until the subject finds its rows again (a database server came back)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            subject.revive()
            subject.check(rows // 2)
            return True
        except Exception:
            time.sleep(2)
    return False


def _guarded(run: OpRun, step: Any) -> None:
    if run.done:
        return
    try:
        step()
    except Exception as error:
        log(f"!! {run.subject.label} {run.op}: {type(error).__name__}: {error}")
        run.fail(error)


def _failed(subject: Subject, rows: int, op: str, error: BaseException) -> Measurement:
    m = Measurement(subject.store, subject.backend, subject.floor_backend, rows, op)
    m.note = f"error: {type(error).__name__}: {str(error)[:80]}"
    return m


def _skipped(plan: Plan, rows: int) -> list[Measurement]:
    out = []
    for store in REFERENCE:
        if store in plan.stores and not plan.runs(store, rows):
            name, backend, floor = SKIPPED_NAMES[store]
            for op in OPERATIONS:
                m = Measurement(name, backend, floor, rows, op)
                m.note = f"skipped: rows > --reference-max-rows {plan.reference_max_rows:,}"
                out.append(m)
    return out


def _ensure(target: fill.Target, rows: int, refill: bool) -> fill.Fill:
    """Fill (or reuse) a target; a lost server connection gets one more try, from scratch."""
    for attempt in (1, 2):
        try:
            return target.ensure(rows, refill=refill or attempt == 2)
        except Exception as error:
            if attempt == 2:
                raise
            log(f"!! {target.name}: {type(error).__name__}: {error}; filling again in 5 s")
            time.sleep(5)
        finally:
            fill.close(target)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    backends, versions = reachable_backends(args)
    urls = server_urls(args)
    plan = Plan(fill.data_dir(args.results), urls, backends, args.stores, args.reference_max_rows)
    payload: dict[str, Any] = {
        "machine": report.machine_info(versions, HERE.parent),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "fills": [],
        "measurements": [],
    }
    measurements: list[Measurement] = []
    run_tag = secrets.token_hex(3)
    for rows in args.sizes:
        log(f"== {rows:,} rows: filling")
        for target in plan.targets(rows):
            done = _ensure(target, rows, args.refill)
            payload["fills"].append(vars(done))
            state = "reused" if done.reused else f"filled in {done.seconds:.1f} s ({done.method})"
            log(f"   {done.target:18} {state}")
        if args.fill_only:
            continue
        log(f"== {rows:,} rows: measuring")
        with_get_tokens = args.get_tokens or rows == args.sizes[0]
        subjects = plan.subjects(rows)
        try:
            measurements += measure_size(subjects, rows, args, run_tag, with_get_tokens)
        finally:
            for subject in subjects:
                with contextlib.suppress(Exception):
                    subject.close()
        measurements += _skipped(plan, rows)
        report.set_ratios(measurements)
        payload["measurements"] = [m.as_dict() for m in measurements]
        payload["seconds"] = round(time.time() - started, 1)
        payload["machine"]["load_average_now"] = [round(x, 2) for x in os.getloadavg()]
        report.write_json(args.results / "results.json", payload)
    if args.fill_only:
        report.write_json(args.results / "fills.json", payload)
        return 0
    report.set_ratios(measurements)
    report.print_table(measurements)
    report.print_memory(measurements)
    plot = args.results / "find_token.png"
    if report.plot_find_token(measurements, plot):
        log(f"plot: {plot}")
    log(f"json: {args.results / 'results.json'}  ({time.time() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
