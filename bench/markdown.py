"""The README's tables (``python -m bench.report --markdown``), from a run's measurements."""

from __future__ import annotations

from typing import Any

from bench.report import BACKEND_NAMES, BACKEND_ORDER, FLOOR_DRIVERS, STORE_ORDER, _num
from bench.timing import Measurement

README_OPERATIONS = ("find_token(user)", "save_token(insert)")
"""The operations of the tables against the floor."""
VARIANT_OPERATIONS = (
    "find_token(user)",
    "find_token(refresh)",
    "find_token_by_id",
    "save_token(update)",
    "save_token(insert)",
)
"""The operations of the table of a variant against plain ``ours``."""


def readme_tables(measurements: list[Measurement], out: Any) -> None:
    """Every README table: each store against the floor, then ``ours+encrypted`` against ours."""
    markdown(measurements, README_OPERATIONS, out)
    if any(m.store == "ours+encrypted" for m in measurements):
        variant_table(measurements, "ours+encrypted", VARIANT_OPERATIONS, out)


def markdown(measurements: list[Measurement], operations: tuple[str, ...], out: Any) -> None:
    """The README's table: per store and backend, median and p99 µs (x floor) at each size."""
    sizes = sorted({m.rows for m in measurements})
    by = {(m.store, m.backend, m.rows, m.operation): m for m in measurements}
    keys = sorted(
        {(m.store, m.backend) for m in measurements if m.operation in operations},
        key=lambda k: (STORE_ORDER.get(k[0], 9), BACKEND_ORDER.get(k[1], 9)),
    )
    for op in operations:
        print(f"\n`{op}`: median / p99 µs (x the floor's median)\n", file=out)
        print("| store | " + " | ".join(f"{n:,} rows" for n in sizes) + " |", file=out)
        print("|---|" + "---|" * len(sizes), file=out)
        for store, backend in keys:
            cells = []
            for n in sizes:
                m = by.get((store, backend, n, op))
                if m is None or m.median_us is None:
                    cells.append("skipped" if m is not None and m.note else "-")
                    continue
                ratio = "" if m.ratio_to_floor is None else f" (x{m.ratio_to_floor:.1f})"
                ratio = "" if store == "floor" else ratio
                cells.append(f"{_num(m.median_us, 0)} / {_num(m.p99_us, 0)}{ratio}")
            name = BACKEND_NAMES.get(backend, backend)
            label = f"floor: {FLOOR_DRIVERS.get(backend, backend)}" if store == "floor" else store
            print(f"| {label}, {name} | " + " | ".join(cells) + " |", file=out)


def variant_table(
    measurements: list[Measurement], variant: str, operations: tuple[str, ...], out: Any
) -> None:
    """Median µs of plain ``ours`` and of ``variant`` side by side, and their ratio.

    One line per operation and backend, one column per row count; ``-`` where either
    median is missing (not measured, or an error).
    """
    sizes = sorted({m.rows for m in measurements})
    median = {(m.store, m.backend, m.rows, m.operation): m.median_us for m in measurements}
    backends = sorted(
        {m.backend for m in measurements if m.store == variant}, key=lambda b: BACKEND_ORDER[b]
    )
    print(f"\n`{variant}` against `ours`: median µs, plain / {variant} (x ratio)\n", file=out)
    print("| operation, backend | " + " | ".join(f"{n:,} rows" for n in sizes) + " |", file=out)
    print("|---|" + "---|" * len(sizes), file=out)
    for op in operations:
        for backend in backends:
            cells = []
            for n in sizes:
                plain = median.get(("ours", backend, n, op))
                other = median.get((variant, backend, n, op))
                if not plain or other is None:
                    cells.append("-")
                    continue
                cells.append(f"{_num(plain, 0)} / {_num(other, 0)} (x{other / plain:.2f})")
            name = BACKEND_NAMES.get(backend, backend)
            print(f"| `{op}`, {name} | " + " | ".join(cells) + " |", file=out)
