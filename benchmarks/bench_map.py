"""map_frames: a CPU-bound per-frame function over a sequence with 2 workers vs a plain loop,
and peak RSS of processing a large file in chunks vs loading it whole.

    python benchmarks/bench_map.py          # prints the section; run.py writes it to the docs

Two per-frame functions, each timed as a plain loop (``[f(x) for x in seq.iter_frames()]``),
with ``map_frames(workers=2)`` threads and with ``map_frames(workers=2, processes=True)``
(worker start-up included), in one run side by side:

* ``python_stats``: a function that holds the GIL (a Python loop over row statistics);
* ``cv2_blur``: OpenCV's Gaussian blur, which releases the GIL (OpenCV's own threads off, so
  the loop is single-threaded and the comparison is fair).

Every result list is checked equal to the plain loop's. The memory part runs each recipe in a
child process and reads its peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from _common import DATA, table

FRAMES = int(os.environ.get("IMSEQ_BENCH_MAP_FRAMES", "200"))
REPEAT = int(os.environ.get("IMSEQ_BENCH_MAP_REPEAT", "3"))
SIZE = (512, 512)
BIG_FRAMES = int(os.environ.get("IMSEQ_BENCH_MAP_BIG_FRAMES", "400"))  # 1024x1024 uint8 each


def python_stats(frame: np.ndarray) -> float:
    """GIL-bound: a Python loop over the rows of the frame (about 20 ms a 512x512 frame)."""
    total = 0.0
    for row in frame[::2].tolist():
        lo = hi = row[0]
        s = 0
        for v in row:
            s += v
            if v < lo:
                lo = v
            elif v > hi:
                hi = v
        total += s / len(row) + (hi - lo)
    return total


_cv2 = None


def cv2_blur(frame: np.ndarray) -> float:
    """GIL-free: a wide Gaussian blur in OpenCV (single-threaded), reduced to one number."""
    global _cv2
    if _cv2 is None:  # once per process (workers too): OpenCV's own threads off
        import cv2

        cv2.setNumThreads(1)
        _cv2 = cv2
    return float(_cv2.GaussianBlur(frame, (0, 0), 6.0).mean())


def _data(name: str, frames: int, size: tuple[int, int]) -> str:
    import napari_imseq as imseq

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, name)
    if not os.path.exists(path):
        y, x = np.mgrid[0 : size[0], 0 : size[1]]
        rng = np.random.default_rng(1)

        def gen():
            for i in range(frames):
                base = 128 + 80 * np.sin((x + 3 * i) / 37.0) * np.cos((y - 2 * i) / 23.0)
                yield (base + rng.normal(0, 12, size)).clip(0, 255).astype(np.uint8)

        imseq.imwrite(path, gen(), fps=100)
    return path


def _time(fn) -> tuple[float, list]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


class _Cpu:
    """CPU seconds used by this process (all threads) and by the processes it starts while
    the block runs (worker processes, sampled every 20 ms with psutil: the last few ms of a
    worker that exits between samples are missed)."""

    def __enter__(self):
        import threading

        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is optional
            psutil = None
        self.seconds = float("nan")
        self._psutil = psutil
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._base = self._children() if psutil else {}
        self._t0 = time.process_time()
        if psutil:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _children(self) -> dict[int, float]:
        out = {}
        for child in self._psutil.Process().children(recursive=True):
            try:
                t = child.cpu_times()
                out[child.pid] = t.user + t.system
            except self._psutil.Error:
                continue
        return out

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self._seen.update(self._children())

    def __exit__(self, *exc) -> None:
        if self._psutil is None:
            return
        self._stop.set()
        self._thread.join()
        self._seen.update(self._children())
        own = time.process_time() - self._t0
        kids = sum(t - self._base.get(pid, 0.0) for pid, t in self._seen.items())
        self.seconds = own + kids


def speed() -> tuple[list[list[object]], list[float]]:
    """Best of REPEAT rounds, each round running the loop, threads and processes one after
    the other (the machine's load changes over minutes: every variant sees the same)."""
    import cv2

    import napari_imseq as imseq

    cv2.setNumThreads(1)
    path = _data(f"map_{FRAMES}_{SIZE[0]}.seq", FRAMES, SIZE)
    rows, first = [], []
    with imseq.open_sequence(path) as seq:
        list(seq.iter_frames())  # page cache warm for every run
        # the first process pool of a program also starts the fork server (once)
        for _ in range(2):
            first.append(
                _time(lambda: list(imseq.map_frames(len, seq, workers=2, processes=True)))[0]
            )
        for func in (python_stats, cv2_blur):
            best = {"loop": np.inf, "threads": np.inf, "processes": np.inf}
            cpu = {"loop": np.inf, "threads": np.inf, "processes": np.inf}
            for _ in range(REPEAT):
                with _Cpu() as c:
                    t, want = _time(lambda f=func: [f(x) for x in seq.iter_frames()])
                best["loop"], cpu["loop"] = min(best["loop"], t), min(cpu["loop"], c.seconds)
                for name, proc in (("threads", False), ("processes", True)):
                    with _Cpu() as c:
                        t, got = _time(
                            lambda f=func, p=proc: list(
                                imseq.map_frames(f, seq, workers=2, processes=p)
                            )
                        )
                    if got != want:
                        raise AssertionError(f"{func.__name__}: map_frames differs from the loop")
                    best[name], cpu[name] = min(best[name], t), min(cpu[name], c.seconds)
            loop = best["loop"]
            cells = [f"`{func.__name__}` ({1000 * loop / FRAMES:.1f} ms/frame)"]
            cells.append(f"{loop:.2f} s, CPU {cpu['loop']:.2f} s")
            for name in ("threads", "processes"):
                cell = f"{best[name]:.2f} s (**{loop / best[name]:.2f}x**), CPU {cpu[name]:.2f} s"
                if name == "processes" or func is not python_stats:  # the GIL serialises threads
                    cell += (
                        f" (bound on 2 idle cores: {min(2.0, 2 * cpu['loop'] / cpu[name]):.2f}x)"
                    )
                cells.append(cell)
            rows.append(cells)
    return rows, first


_RSS_CHILD = r"""
import resource, sys, numpy as np, napari_imseq as imseq
path, how = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with imseq.open_sequence(path) as seq:
    if how == "load":   # the usual recipe: every frame in one array, then process it
        data = seq[:]
        out = [float(f.mean()) for f in np.invert(data)]
    elif how == "chunks":
        out = [float(f.mean()) for c in seq.iter_chunks(32) for f in np.invert(c)]
    else:
        out = list(imseq.map_frames(lambda f: float(np.invert(f).mean()), seq, workers=2))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, len(out), sum(out))
"""


def memory() -> list[list[object]]:
    path = _data(f"map_big_{BIG_FRAMES}.seq", BIG_FRAMES, (1024, 1024))
    size = os.path.getsize(path)
    rows, sums = [], set()
    for how, label in (
        ("load", "load everything (`seq[:]`), then process"),
        ("chunks", "`seq.iter_chunks(32)`"),
        ("map", "`map_frames(f, seq, workers=2)` (threads)"),
    ):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, path, how],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        dt = time.perf_counter() - t
        base, peak = int(out[0]) / 1024, int(out[1]) / 1024  # kB -> MB
        sums.add(out[3])
        rows.append([label, f"{peak:.0f} MB", f"{peak - base:.0f} MB", f"{dt:.1f} s"])
    if len(sums) != 1:
        raise AssertionError("the memory recipes computed different results")
    rows.insert(
        0, [f"(file: {size / 1e6:.0f} MB, {BIG_FRAMES} frames 1024x1024 uint8)", "", "", ""]
    )
    return rows


def run() -> str:
    load0 = os.getloadavg()[0]
    rows, first = speed()
    load1 = os.getloadavg()[0]
    mem = memory()
    load2 = os.getloadavg()[0]
    return "\n".join(
        [
            "## Parallel map and chunks (map_frames, iter_chunks)",
            "",
            f"`benchmarks/bench_map.py`: {FRAMES} frames of {SIZE[0]}x{SIZE[1]} uint8 in a SEQ "
            f"file (page cache warm). Time for every frame, plain loop vs `map_frames` with 2 "
            f"workers, best of {REPEAT} rounds that each run the three one after the other; "
            f"results checked equal. Load "
            f"average {load0:.1f} before, {load1:.1f} after (a shared machine: "
            f"{os.cpu_count()} cores).",
            "",
            table(["function", "plain loop", "2 threads", "2 processes"], rows),
            "",
            "CPU: seconds used by all threads and worker processes (best of the rounds). The "
            "bound on 2 idle cores is 2 x loop CPU / map CPU: what 2 workers reach when each "
            "gets a core, given the CPU the map costs beyond the loop's; on this loaded machine "
            "the workers do not get a core each, so wall-clock ratios stay far below it. "
            "A function that holds the GIL (`python_stats`) gains nothing from threads: use "
            "`processes=True`.",
            "",
            "Processes include starting the workers and sending each the pickled sequence "
            "once; they then read their own frame ranges, so only results travel back. Workers "
            "fork from a fork server that has imported the readers; the first pool of a program "
            f"starts that server: a map of `len` over the file took {first[0]:.2f} s the first "
            f"time, {first[1]:.2f} s later (worker start-up plus reading the frames).",
            "",
            f"Peak RSS of one child process per recipe (same per-frame work, same results; load "
            f"average {load2:.1f} after):",
            "",
            table(["recipe", "peak RSS", "above start", "time"], mem),
        ]
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    print(run())
