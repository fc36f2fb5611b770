"""Peak memory of the ``zoho-sa-store`` commands and of ``get_tokens``, at one row count.

    python -m bench.memory --rows 1000000        # SQLite: a file in bench/results/data
    python -m bench.memory --rows 200000 --url postgresql+psycopg2://postgres@127.0.0.1/zss_bench
    python -m bench.memory --rows 200000 --code /tmp/zss-before  # another checkout's package

Each command runs in its own process (``python -c`` calling the CLI's ``main``), its output
sent to ``/dev/null`` (``export -o``: a file in the results directory); its peak resident
set size is its own ``VmHWM`` (``/proc/self/status``), written at exit. The baseline is a
bare ``python -c 'import zoho_sa_store.cli'`` (the least of three runs); the table prints
each peak and its distance above the baseline. ``get_tokens`` is measured the same way (a
process that calls it and keeps the list until it returns). The token table
(``zss_memory_<rows>``) and the FileStore CSV of the same rows are filled once and reused;
imports go to ``zss_memory_import``, emptied first.
``--code DIR`` puts DIR first on the children's ``PYTHONPATH`` (e.g. an older checkout,
``git archive <commit> | tar -x -C DIR``), to compare before and after on the same data.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData, Table, create_engine, delete, func, insert, select

import zoho_sa_store
from bench.rows import OUR_COLUMNS, batches, int_id, our_row, sdk_row
from zoho_sa_store.importers import FILESTORE_HEADER
from zoho_sa_store.model import NAMING_CONVENTION, token_table

HERE = Path(__file__).resolve().parent
IMPORT_TABLE = "zss_memory_import"
CLI = "import sys; from zoho_sa_store.cli import main; sys.exit(main())"
GET_TOKENS = (
    "import sys; from zoho_sa_store import SQLAlchemyTokenStore; "
    "s = SQLAlchemyTokenStore(sys.argv[1], table_name=sys.argv[2], refresh=False); "
    "t = s.get_tokens(); print(len(t))"
)
MB = 1024 * 1024
HWM_HOOK = (
    "import atexit, os\n"
    "def _hwm():\n"
    "    with open('/proc/self/status') as f, open(os.environ['ZSS_BENCH_HWM'], 'w') as out:\n"
    "        out.write(next(line for line in f if line.startswith('VmHWM')))\n"
    "atexit.register(_hwm)\n"
)
"""Prepended to every child's ``-c`` code: its peak RSS (Linux ``VmHWM``) to a file at exit."""
NEUTRAL = tempfile.gettempdir()
"""The children's working directory: ``python -c`` puts it first on ``sys.path``, so a
checkout there would shadow ``--code`` (and the installed package)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_rss(argv: Sequence[str], env: dict[str, str]) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit code) of one child process running ``argv``.

    The child's own ``VmHWM``, written by an ``atexit`` hook as it ends: the kernel's
    ``ru_maxrss`` would also count this process's size at the fork.
    """
    with tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        start = time.perf_counter()
        child = subprocess.run(
            [argv[0], "-c", HWM_HOOK + argv[2], *argv[3:]],
            env={**env, "ZSS_BENCH_HWM": hwm.name},
            cwd=NEUTRAL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        seconds = time.perf_counter() - start
        kb = int(hwm.read().split()[1])  # "VmHWM:   123456 kB"
    return kb * 1024, seconds, child.returncode


def _table(name: str) -> Table:
    return token_table(MetaData(naming_convention=NAMING_CONVENTION), name)


def fill(url: str, table: str, rows: int) -> None:
    """``rows`` rows of bench.rows in ``table`` (reused when it already holds exactly that)."""
    zoho_sa_store.upgrade(url, table_name=table)
    t = _table(table)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.scalar(select(func.count()).select_from(t)) == rows:
                return
        log(f"filling {table} with {rows:,} rows")
        with engine.begin() as conn:
            conn.execute(delete(t))
            for chunk in batches(rows, our_row):
                conn.execute(insert(t), [dict(zip(OUR_COLUMNS, row, strict=True)) for row in chunk])
    finally:
        engine.dispose()


def filestore(path: Path, rows: int) -> None:
    """The same rows as the SDK's FileStore writes them (ids 1..rows); reused when present."""
    if path.exists():
        with open(path, newline="") as f:
            if sum(1 for _ in f) == rows + 1:
                return
    log(f"writing {path} ({rows:,} rows)")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(FILESTORE_HEADER)
        for chunk in batches(rows, lambda i: sdk_row(i, int_id)):
            writer.writerows(chunk)


def empty(url: str, table: str) -> None:
    zoho_sa_store.upgrade(url, table_name=table)
    t = _table(table)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(t))
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--url", default=None, help="default: a SQLite file in the results directory")
    p.add_argument("--results", default=str(HERE / "results"))
    p.add_argument("--code", default=None, help="a checkout to run the commands from")
    p.add_argument(
        "--commands",
        default="list-json,list,export,export-file,get_tokens,import-filestore,import-dry-run,"
        "import-dbstore",
    )
    args = p.parse_args(argv)
    data = Path(args.results) / "data"
    data.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{data / f'memory_{args.rows}.db'}"
    table = f"zss_memory_{args.rows}"
    csv_path = data / f"memory_{args.rows}.csv"
    fill(url, table, args.rows)
    filestore(csv_path, args.rows)
    env = dict(os.environ)
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.code, env.get("PYTHONPATH")]))
    py = sys.executable
    target = ["--url", url, "--table", table]
    into = ["--url", url, "--table", IMPORT_TABLE]
    out_file = data / "export.json"
    commands = {
        "list-json": [py, "-c", CLI, *target, "list", "--json"],
        "list": [py, "-c", CLI, *target, "list"],
        "export": [py, "-c", CLI, *target, "export", "--include-secrets"],
        "export-file": [py, "-c", CLI, *target, "export", "--include-secrets", "-o", str(out_file)],
        "get_tokens": [py, "-c", GET_TOKENS, url, table],
        "import-filestore": [py, "-c", CLI, *into, "import-filestore", str(csv_path)],
        "import-dry-run": [py, "-c", CLI, *into, "import-filestore", str(csv_path), "--dry-run"],
        "import-dbstore": [py, "-c", CLI, *into, "import-dbstore", url, "--table", table],
    }
    wanted = [c.strip() for c in args.commands.split(",") if c.strip()]
    # the least of three: a first run after a code change also compiles it
    base = min(peak_rss([py, "-c", "import zoho_sa_store.cli"], env)[0] for _ in range(3))
    print(f"rows {args.rows:,}, {url.split(':')[0]}, code {args.code or 'installed'}")
    print(f"baseline (import zoho_sa_store.cli): {base / MB:.1f} MB")
    print(f"{'command':18} {'peak MB':>9} {'above MB':>9} {'seconds':>8}  exit")
    for name in wanted:
        if name.startswith("import"):
            empty(url, IMPORT_TABLE)
        peak, seconds, code = peak_rss(commands[name], env)
        print(f"{name:18} {peak / MB:9.1f} {(peak - base) / MB:9.1f} {seconds:8.1f}  {code}")
        sys.stdout.flush()
    out_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
