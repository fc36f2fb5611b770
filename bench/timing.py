"""Timing of single calls, and the time and peak memory of ``get_tokens``."""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.stores import Subject

MIN_SAMPLES = 20
"""A time budget never cuts an operation below this many timed calls."""


@dataclass
class Measurement:
    store: str
    backend: str
    floor_backend: str
    rows: int
    operation: str
    n: int = 0
    median_us: float | None = None
    p99_us: float | None = None
    p90_us: float | None = None
    mean_us: float | None = None
    min_us: float | None = None
    max_us: float | None = None
    ratio_to_floor: float | None = None
    peak_bytes: int | None = None
    data_bytes: int | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def set_samples(self, samples_ns: list[int]) -> None:
        s = sorted(samples_ns)
        n = len(s)
        self.n = n
        if not n:
            return

        def rank(q: float) -> float:
            return s[max(0, math.ceil(q * n) - 1)] / 1000

        self.median_us = statistics.median(s) / 1000
        self.p90_us, self.p99_us = rank(0.90), rank(0.99)
        self.mean_us = statistics.fmean(s) / 1000
        self.min_us, self.max_us = s[0] / 1000, s[-1] / 1000


def _new(subject: Subject, rows: int, op: str) -> Measurement:
    return Measurement(subject.store, subject.backend, subject.floor_backend, rows, op)


class OpRun:
    """Timing of one operation of one subject, run in chunks so subjects can take turns.

    Lookups and updates pick random existing rows (the same ones for every store at this
    row count: the generator is seeded by seed, rows and operation); inserts use new users
    0, 1, 2, ... Each call is timed on its own, its argument built before the clock starts,
    with the garbage collector off. Timing stops early once ``budget_s`` seconds of calls
    have been spent (never before :data:`MIN_SAMPLES` calls); ``n`` says how many were timed.
    """

    def __init__(
        self,
        subject: Subject,
        op: str,
        rows: int,
        *,
        iterations: int,
        warmup: int,
        seed: int,
        tag: str,
        budget_s: float,
    ) -> None:
        self.subject, self.op, self.tag = subject, op, tag
        self.iterations, self.warmup, self.budget_ns = iterations, warmup, budget_s * 1e9
        self.m = _new(subject, rows, op)
        total = warmup + iterations
        if op == "save_token(insert)":
            self.picks = list(range(total))
        else:
            rng = random.Random(f"{seed}:{rows}:{op}")
            self.picks = [rng.randrange(rows) for _ in range(total)]
        self.position = 0
        self.samples: list[int] = []
        self.spent = 0
        self.done = self.failed = self.restarted = False

    def warm(self) -> None:
        subject, op, tag = self.subject, self.op, self.tag
        subject.revive()
        for seq, i in enumerate(self.picks[: self.warmup]):
            subject.call(op, subject.arg(op, i, tag, seq))
        self.position = self.warmup
        gc.collect()

    def step(self, count: int) -> None:
        """Time the next ``count`` calls (fewer at the end or past the budget)."""
        if self.done:
            return
        subject, op, tag, samples = self.subject, self.op, self.tag, self.samples
        clock = time.perf_counter_ns
        first = self.position
        chunk = self.picks[first : first + count]
        self.position += len(chunk)
        gc.disable()
        try:
            for seq, i in enumerate(chunk, first):
                arg = subject.arg(op, i, tag, seq)
                start = clock()
                subject.call(op, arg)
                elapsed = clock() - start
                samples.append(elapsed)
                self.spent += elapsed
                if self.spent > self.budget_ns and len(samples) >= MIN_SAMPLES:
                    self.m.note = f"time budget: {len(samples)} of {self.iterations} calls"
                    self.done = True
                    break
        finally:
            gc.enable()
        if self.position >= len(self.picks):
            self.done = True

    def fail(self, error: BaseException) -> None:
        self.done = True
        self.failed = True
        self.samples = []
        self.m.note = f"error: {type(error).__name__}: {str(error)[:80]}"

    def restart(self) -> None:
        """Start over (after a lost server): new samples, and new users for inserts."""
        self.tag += "r"
        self.position, self.samples, self.spent = 0, [], 0
        self.done = self.failed = False
        self.restarted = True
        self.m.note = "timed again, alone, after a lost server connection"

    def result(self) -> Measurement:
        self.m.set_samples(self.samples)
        return self.m


def _peak(fn: Any, counter: Any) -> tuple[int, int]:
    """(peak traced bytes while ``fn`` runs and its result is alive, the result's count)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        count = counter(result)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak, count


def _consume(iterable: Any) -> int:
    """Run through an iterator keeping nothing; the number of items."""
    count = 0
    for _ in iterable:
        count += 1
    return count


def time_get_tokens(subject: Subject, rows: int, repeats: int) -> list[Measurement]:
    """``get_tokens`` (and ``iter_tokens`` when the store has it): time, peak memory, size.

    Time: median/p99 of ``repeats`` whole calls after one warm-up. Memory: one more call
    under ``tracemalloc`` (Python-heap allocations only: a driver's C buffers, such as
    libpq's result, are not seen), with the result kept alive until the peak is read.
    """
    out = []
    variants: list[tuple[str, Any, Any]] = [("get_tokens", subject.get_all, len)]
    if subject.can_iter():
        variants.append(("iter_tokens", lambda: _consume(subject.iter_all()), int))
    data = subject.data_bytes()
    for op, fn, counter in variants:
        m = _new(subject, rows, op)
        fn()
        samples = []
        for _ in range(repeats):
            gc.collect()
            start = time.perf_counter_ns()
            result = fn()
            samples.append(time.perf_counter_ns() - start)
            del result
        m.set_samples(samples)
        m.peak_bytes, count = _peak(fn, counter)
        m.data_bytes = data
        m.extra["returned"] = count
        if count != rows:
            m.note = f"returned {count} tokens for {rows} rows"
        out.append(m)
    return out
