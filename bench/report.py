"""Results: ratios to the floor, the stdout table, the JSON file, the plot, machine info."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.timing import Measurement

STORE_ORDER = {
    "floor": 0,
    "ours": 1,
    "ours+pre_ping": 2,
    "ours+prepared": 3,
    "ours+encrypted": 4,
    "blog": 5,
    "FileStore": 6,
    "DBStore": 7,
}
BACKEND_ORDER = {"sqlite": 0, "postgresql": 1, "psycopg": 2, "mariadb": 3, "csv": 4}
BACKEND_NAMES = {
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL (psycopg2)",
    "psycopg": "PostgreSQL (psycopg 3)",
    "mariadb": "MariaDB",
}
FLOOR_DRIVERS = {
    "sqlite": "sqlite3",
    "postgresql": "psycopg2",
    "psycopg": "psycopg 3",
    "mariadb": "PyMySQL",
}
OP_ORDER = {
    op: k
    for k, op in enumerate(
        (
            "find_token(user)",
            "find_token(refresh)",
            "find_token_by_id",
            "save_token(update)",
            "save_token(insert)",
            "get_tokens",
            "iter_tokens",
        )
    )
}


def set_ratios(measurements: list[Measurement]) -> None:
    """Each median divided by the floor's median for the same backend, rows and operation."""
    floors = {
        (m.backend, m.rows, m.operation): m.median_us
        for m in measurements
        if m.store == "floor" and m.median_us
    }
    for m in measurements:
        floor = floors.get((m.floor_backend, m.rows, m.operation))
        if m.median_us is not None and floor:
            m.ratio_to_floor = m.median_us / floor


def _key(m: Measurement) -> tuple[Any, ...]:
    return (
        m.rows,
        OP_ORDER.get(m.operation, 99),
        BACKEND_ORDER.get(m.floor_backend, 9),
        STORE_ORDER.get(m.store, 9),
        BACKEND_ORDER.get(m.backend, 9),
    )


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _print(header: tuple[str, ...], rows: Iterable[tuple[str, ...]], out: Any) -> None:
    rows = list(rows)
    widths = [
        max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(header)
    ]
    right = {k for k, h in enumerate(header) if h not in ("store", "backend", "operation", "note")}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if k in right else c.ljust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)


def print_table(measurements: list[Measurement], out: Any = sys.stdout) -> None:
    header = (
        "store",
        "backend",
        "rows",
        "operation",
        "n",
        "median µs",
        "p99 µs",
        "x floor",
        "note",
    )
    rows = []
    previous = None
    for m in sorted(measurements, key=_key):
        if previous is not None and (m.rows, m.operation) != previous:
            rows.append(("",) * len(header))
        previous = (m.rows, m.operation)
        ratio = "-" if m.ratio_to_floor is None else f"{m.ratio_to_floor:,.1f}"
        rows.append(
            (
                m.store,
                m.backend,
                f"{m.rows:,}",
                m.operation,
                str(m.n) if m.n else "-",
                _num(m.median_us),
                _num(m.p99_us),
                ratio,
                m.note or "",
            )
        )
    _print(header, rows, out)


def print_memory(measurements: list[Measurement], out: Any = sys.stdout) -> None:
    mem = [m for m in measurements if m.peak_bytes is not None]
    if not mem:
        return
    header = (
        "store",
        "backend",
        "rows",
        "operation",
        "median ms",
        "peak MiB",
        "rows MiB",
        "peak/rows",
    )
    rows = []
    for m in sorted(mem, key=_key):
        data = m.data_bytes or 0
        ratio = f"{m.peak_bytes / data:,.1f}" if data and m.peak_bytes else "-"
        rows.append(
            (
                m.store,
                m.backend,
                f"{m.rows:,}",
                m.operation,
                _num(None if m.median_us is None else m.median_us / 1000, 2),
                f"{(m.peak_bytes or 0) / 2**20:,.1f}",
                f"{data / 2**20:,.1f}",
                ratio,
            )
        )
    print(file=out)
    _print(header, rows, out)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _commit(repo: Path) -> str | None:
    """The checked-out commit, read from .git (the work tree may hold other changes).

    In a linked work tree ``.git`` is a file naming its own git directory, whose
    ``commondir`` holds the refs.
    """
    try:
        git = repo / ".git"
        if git.is_file():
            git = (repo / git.read_text().strip().removeprefix("gitdir: ")).resolve()
        common = (
            git / (git / "commondir").read_text().strip() if (git / "commondir").exists() else git
        )
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        for where in (git, common):
            if (where / ref).exists():
                return (where / ref).read_text().strip()
        for line in (common / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def source_digest(package: Path) -> str:
    """A digest of the measured package's .py files: the work tree may differ from HEAD."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def machine_info(servers: dict[str, str], repo: Path) -> dict[str, Any]:
    import sqlalchemy

    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "sqlalchemy": sqlalchemy.__version__,
        "packages": {
            name: _version(name)
            for name in (
                "zoho-sa-store",
                "zohocrmsdk8_0",
                "psycopg2-binary",
                "psycopg2",
                "psycopg",
                "PyMySQL",
                "mysql-connector-python",
                "alembic",
            )
        },
        "servers": servers,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": _commit(repo),
        "zoho_sa_store_source_sha256": source_digest(repo / "zoho_sa_store"),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def plot_find_token(measurements: list[Measurement], path: Path) -> bool:
    """Median find_token(user) against rows, one line per store and backend, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for m in measurements:
        if m.operation == "find_token(user)" and m.median_us:
            series.setdefault((m.store, m.backend), []).append((m.rows, m.median_us))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    order = sorted(series, key=lambda k: (STORE_ORDER.get(k[0], 9), BACKEND_ORDER.get(k[1], 9)))
    for store, backend in order:
        points = sorted(series[(store, backend)])
        style = "--" if store == "floor" else "-"
        ax.plot(*zip(*points, strict=True), style, marker="o", label=f"{store} ({backend})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the token table")
    ax.set_ylabel("median find_token by user (µs)")
    ax.set_title("find_token by user: median latency per call")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def load(path: Path) -> list[Measurement]:
    """The measurements of a results.json."""
    data = json.loads(path.read_text())
    return [Measurement(**m) for m in data["measurements"]]


if __name__ == "__main__":
    # python -m bench.report [results.json]: print the tables of an earlier run again.
    # python -m bench.report --markdown [results.json]: the README's tables.
    args = [a for a in sys.argv[1:] if a != "--markdown"]
    results = load(Path(args[0] if args else "bench/results/results.json"))
    if "--markdown" in sys.argv:
        from bench.markdown import readme_tables

        readme_tables(results, sys.stdout)
    else:
        print_table(results)
        print_memory(results)
