"""Reading from memory and URLs vs from a page-cached file (issue #13).

For each format (uncompressed SEQ, contiguous TIFF, FFV1 MKV) the same frames are read, side by
side in one run, from: the path (file in the page cache), ``bytes``, ``io.BytesIO``, a
``memory://`` URL, an opened file object and an ``http://`` server on 127.0.0.1 (Range
requests, for scale only). Reported: MB/s of decoded frames (wall clock) and MB per CPU
second (user + system time of the process, all threads: on a shared, loaded machine the
fairer measure of work), each with its ratio to the path reader (goal for memory sources:
>= 90%). Run: ``python benchmarks/bench_sources.py``.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import napari_imseq as imseq  # noqa: E402
from _common import table  # noqa: E402

FRAMES = int(os.environ.get("IMSEQ_BENCH_SOURCE_FRAMES", "64"))
SHAPE = (1024, 1024)
ROUNDS = int(os.environ.get("IMSEQ_BENCH_SOURCE_ROUNDS", "7"))
FORMATS = os.environ.get("IMSEQ_BENCH_SOURCE_FORMATS", "seq,tif,mkv").split(",")


def _make(folder: str) -> dict[str, str]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 4096, SHAPE, dtype=np.uint16)
    frames = [np.roll(base, 7 * k, axis=1) for k in range(FRAMES)]
    out = {}
    for name, kw in [("rec.seq", {"bit_depth": 12}), ("rec.tif", {}), ("rec.mkv", {})]:
        if name.split(".")[1] not in FORMATS:
            continue
        path = os.path.join(folder, name)
        imseq.imwrite(path, np.stack(frames), fps=100, **kw)
        out[name] = path
    return out


def _filled(data: bytes) -> io.BytesIO:
    buf = io.BytesIO()
    buf.write(data)
    return buf


def _read_all(src) -> int:
    with imseq.open_sequence(src) as seq:
        total = 0
        for frame in seq.iter_frames():
            total += frame.nbytes
        return total


def _ranged_server(folder: str):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from tests.io.test_sources import _RangeHandler, _serve

    return _serve(_RangeHandler, folder)


def run() -> str:
    """The "Sources beyond paths" section of docs/benchmarks.md (for benchmarks/run.py)."""
    import fsspec

    fs = fsspec.filesystem("memory")
    rows = []
    with tempfile.TemporaryDirectory(prefix="imseq-bench-sources-") as folder:
        files = _make(folder)
        server = None
        try:
            server, thread = _ranged_server(folder)
            http_base = f"http://127.0.0.1:{server.server_address[1]}"
        except Exception as err:  # aiohttp missing: no http row
            print(f"no http row: {err}")
            http_base = None
        for name, path in files.items():
            data = open(path, "rb").read()
            fs.pipe(f"/bench/{name}", data)
            _read_all(path)  # page cache warm, index caches built
            nbytes = _read_all(path)
            filled = _filled(data)
            sources = {
                "path (page cache)": lambda p=path: p,
                "bytes": lambda d=data: d,
                # one BytesIO for every run, as a buffer filled by writes: its first
                # getbuffer() un-shares a BytesIO made from bytes (a copy, not a read)
                "BytesIO": lambda b=filled: b,
                "memory://": lambda n=name: f"memory://bench/{n}",
                "opened file": lambda p=path: open(p, "rb"),  # noqa: SIM115
            }
            if http_base and not name.endswith(".mkv"):
                sources["http:// (127.0.0.1)"] = lambda n=name: f"{http_base}/{n}"
            best = dict.fromkeys(sources, float("inf"))
            cpu = dict.fromkeys(sources, float("inf"))
            for rnd in range(ROUNDS):  # interleaved rounds: a load spike hits every source
                for label, make in sources.items():
                    if label.startswith("http") and rnd >= 2:
                        continue
                    src = make()
                    t, c = time.perf_counter(), time.process_time()
                    try:
                        _read_all(src)
                    finally:
                        if hasattr(src, "close") and not isinstance(src, io.BytesIO):
                            src.close()
                    best[label] = min(best[label], time.perf_counter() - t)
                    cpu[label] = min(cpu[label], time.process_time() - c)
            base = nbytes / best["path (page cache)"]
            base_cpu = nbytes / cpu["path (page cache)"]
            for label, t in best.items():
                mbs, per_cpu = nbytes / t, nbytes / cpu[label]
                rows.append(
                    [
                        name,
                        label,
                        f"{mbs / 1e6:,.0f}",
                        f"{100 * mbs / base:.0f}%",
                        f"{per_cpu / 1e6:,.0f}",
                        f"{100 * per_cpu / base_cpu:.0f}%",
                    ]
                )
                print(*rows[-1], sep="\t", flush=True)
        if server is not None:
            server.shutdown()
            server.server_close()
    fs.rm("/bench", recursive=True)
    header = ["file", "source", "MB/s (wall)", "vs path", "MB per CPU-s", "vs path (CPU)"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return "\n".join(
        [
            "## Sources beyond paths (bytes, BytesIO, memory://, opened files, http://)",
            "",
            f"Every frame of files written by our writers ({FRAMES} frames of "
            f"{SHAPE[1]}x{SHAPE[0]} uint16, {FRAMES * SHAPE[0] * SHAPE[1] * 2 / 1e6:.0f} MB "
            f"decoded per file) read with `iter_frames` from each source, side by side in one "
            f"process, the file already in the page cache; best of {ROUNDS} interleaved rounds "
            f"(http: of 2). 'MB per CPU-s' is decoded bytes per second of CPU time of the "
            f"process (user + system, all threads). The http rows serve the file from a thread "
            f"of the same process (one Range request per 1 MiB block): the scale of a remote "
            f"read, not a network. Goal: memory sources >= 90% of a page-cached file. Load "
            f"average (1, 5, 15 min) at the end: {load}. Reproduce: "
            f"`python3 benchmarks/run.py sources`.",
            "",
            table(header, rows),
        ]
    )


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
