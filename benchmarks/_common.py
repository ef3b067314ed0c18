"""Helpers shared by the benchmark scripts: timing, data generation, report tables."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("IMSEQ_BENCH_DATA", os.path.join(HERE, "data"))


def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed measurement)."""
    return min(_times(fn, repeat))


def median_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The median of ``repeat`` runs, in seconds."""
    return statistics.median(_times(fn, repeat))


def drop_page_cache(path: str) -> bool:
    """Evict ``path`` from the page cache (Linux posix_fadvise); True if it was possible."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (AttributeError, OSError):
        return False


def table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ffmpeg = subprocess.run(
            ["ffmpeg", "-version"], capture_output=True, text=True
        ).stdout.split("\n")[0]
    except OSError:
        ffmpeg = "ffmpeg CLI not installed"
    return f"{os.cpu_count()} cores ({cpu}); {ffmpeg}"
