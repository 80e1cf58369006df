"""Timing and peak memory of one call, for the benchmarks (not the tests)."""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "LungTumorRecon"))
sys.path.insert(0, str(REPO))  # LungTumorReconDev: synthetic cases and dataset readers


def measure(fn: Callable[[], Any], trace: bool = True) -> tuple[Any, float, float | None]:
    """Run ``fn`` twice: once timed, once under tracemalloc (which slows numpy down).

    Returns the result, wall seconds of the timed run, and peak traced memory in MB
    (numpy's allocations included); with ``trace=False`` only the timed run (peak None).
    """
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    if not trace:
        return result, seconds, None
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, seconds, peak / 1e6


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max([len(c), *(len(_fmt(r.get(c))) for r in rows)]) for c in columns}
    lines = ["| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |"]
    lines.append("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
