"""Writing and conversion: imwrite vs a bare PyAV encode loop vs the ffmpeg CLI (FFV1 gray16
1024x1024), and convert() of large uncompressed 16-bit SEQ files to FFV1: wall time against
read-only and write-only times, and peak resident memory for a 1 GB and a 4 GB input.

Environment: IMSEQ_BENCH_WRITE_FRAMES (frames for the encode comparison, default 120).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

from _common import DATA, table

N = int(os.environ.get("IMSEQ_BENCH_WRITE_FRAMES", 120))
FFV1_OPTIONS = {"level": "3", "slices": "16", "slicecrc": "1", "coder": "1"}


def frames_pool(k: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1024, 0:1024]
    out = []
    for i in range(k):
        smooth = 20000 + 15000 * np.sin((x + 9 * i) / 70.0) * np.cos((y - 5 * i) / 55.0)
        out.append((smooth + rng.normal(0, 200, (1024, 1024))).clip(0, 65535).astype(np.uint16))
    return out


def bare_pyav(path: str, pool: list[np.ndarray]) -> float:
    import av

    t = time.perf_counter()
    with av.open(path, "w") as out:
        s = out.add_stream("ffv1", rate=30, options=FFV1_OPTIONS)
        s.pix_fmt, s.width, s.height = "gray16le", 1024, 1024
        s.codec_context.gop_size = 1
        s.codec_context.thread_count = 0
        for i in range(N):
            for p in s.encode(av.VideoFrame.from_ndarray(pool[i % len(pool)], format="gray16le")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return N / (time.perf_counter() - t)


def ours(path: str, pool: list[np.ndarray]) -> float:
    import napari_imseq as imseq

    t = time.perf_counter()
    with imseq.open_writer(path, fps=30, overwrite=True) as w:
        for i in range(N):
            w.write(pool[i % len(pool)])
    return N / (time.perf_counter() - t)


def ffmpeg_cli(path: str, pool: list[np.ndarray], tmp: str) -> float | None:
    if not shutil.which("ffmpeg"):
        return None
    raw = os.path.join(tmp, "frames.raw")
    with open(raw, "wb") as f:
        for i in range(N):
            f.write(pool[i % len(pool)].tobytes())
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray16le", "-s", "1024x1024",
        "-r", "30", "-i", raw, "-c:v", "ffv1", "-level", "3", "-g", "1", "-slices", "16",
        "-slicecrc", "1", "-coder", "1", "-threads", "0", path,
    ]  # fmt: skip
    subprocess.run(["cat", raw], stdout=subprocess.DEVNULL, check=True)  # into the page cache
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return N / (time.perf_counter() - t)


CONVERT = textwrap.dedent("""
    import resource, sys, time
    import numpy as np
    import napari_imseq as imseq
    mode, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
    t = time.perf_counter()
    if mode == "read":
        with imseq.open_sequence(src) as seq:
            for _ in seq.iter_frames():
                pass
    elif mode == "write":
        with imseq.open_sequence(src) as seq:
            frame, n = seq[0], len(seq)
        with imseq.open_writer(dst, fps=100, overwrite=True) as w:
            for i in range(n):
                w.write(frame)
    else:
        imseq.convert(src, dst, overwrite=True, progress=False)
    print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def run_convert(mode: str, src: str, dst: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CONVERT, mode, src, dst], capture_output=True, text=True, check=True
    )
    seconds, rss_kib = out.stdout.split()
    return float(seconds), int(rss_kib) / 1024


def make_seq(path: str, n: int) -> None:
    if os.path.exists(path):
        return
    from napari_imseq.io.seq import write_seq

    pool = frames_pool(8)
    write_seq(path, (pool[i % len(pool)] for i in range(n)), fps=100, bit_depth=16, overwrite=True)


def run() -> str:
    os.makedirs(DATA, exist_ok=True)
    pool = frames_pool()
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        bare = bare_pyav(os.path.join(tmp, "bare.mkv"), pool)
        mine = ours(os.path.join(tmp, "ours.mkv"), pool)
        cli = ffmpeg_cli(os.path.join(tmp, "cli.mkv"), pool, tmp)
    rows = [
        ["napari-imseq `open_writer().write()`", f"{mine:.1f}", f"{mine / bare:.2f}"],
        ["bare PyAV encode loop", f"{bare:.1f}", "1.00"],
        [
            "ffmpeg CLI (raw frames from the page cache)",
            f"{cli:.1f}" if cli else "n/a",
            f"{cli / bare:.2f}" if cli else "",
        ],
    ]
    conv_rows = []
    for gb, n in ((1, 500), (4, 2000)):
        src = os.path.join(DATA, f"convert_{gb}gb_u16.seq")
        make_seq(src, n)
        dst = os.path.join(DATA, f"convert_{gb}gb.mkv")
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)
        r_s, r_mb = run_convert("read", src, dst)
        w_s, w_mb = run_convert("write", src, dst)
        c_s, c_mb = run_convert("convert", src, dst)
        os.remove(dst)
        conv_rows.append([
            f"{os.path.getsize(src) / 1e9:.1f} GB, {n} frames", f"{r_s:.1f}", f"{w_s:.1f}",
            f"{c_s:.1f}", f"{c_s / max(r_s, w_s):.2f}", f"{c_s / (r_s + w_s):.2f}", f"{c_mb:.0f}",
        ])  # fmt: skip
    return "\n".join([
        "## Writing and conversion",
        "",
        f"FFV1 gray16 1024x1024, level 3, GOP 1, 16 slices with CRCs, {N} frames (goal: "
        "ours >= 0.9 of the bare loop).",
        "",
        table(["writer", "frames/s", "vs bare PyAV"], rows),
        "",
        "`convert()` of uncompressed 16-bit 1024x1024 SEQ files to FFV1 (each step in a fresh "
        "process; the source in the page cache). Overlap: wall time / the larger of read-only and "
        "write-only (1.0 = perfect overlap) and / their sum (1.0 = no overlap). Peak RSS of the "
        "whole process (goal < 400 MB whatever the input size).",
        "",
        table(["input", "read only (s)", "write only (s)", "convert (s)", "vs max", "vs sum",
               "peak RSS (MB)"], conv_rows),  # fmt: skip
        "",
    ])  # fmt: skip


if __name__ == "__main__":
    print(run())
