"""Dask over one file vs iterating it, on one core and on two (issue #11, part 1).

For each file, in a fresh process pinned to 1 core and then to 2 (``os.sched_setaffinity``
before anything is imported, so dask's default thread count and FFmpeg's decoder threads
both follow it), best of ``IMSEQ_BENCH_REPEAT`` runs, variants interleaved:

* iterate: ``[f.mean(axis=(0, 1)) for f in seq]`` on a freshly opened sequence (the reference);
* ``imread(p).mean(axis=(1, 2)).compute()`` with the default (threaded) scheduler;
* ``imread(p).max(axis=0).compute()`` (a tree reduction across chunks);
* ``imread(p, chunks=1).mean(axis=(1, 2))`` (one frame per chunk, what main did; one run).

Files are generated (PyAV and our writers) under benchmarks/data, plus the real samples in
../shared/samples with at least 100 frames. Every run opens the file afresh, so the frame
cache never carries frames from one run to the next.

Then the two read goals of the issue on bench_video's file (a) (``bench_video.goals``; skip
with IMSEQ_BENCH_GOALS=0).

Environment: IMSEQ_BENCH_REPEAT (3), IMSEQ_BENCH_DASK_FILES (comma-separated labels),
IMSEQ_BENCH_ONE_FRAME_CHUNKS=0 (skip the one-frame-chunk run, slow on long GOPs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from _common import DATA, HERE, table

REPEAT = int(os.environ.get("IMSEQ_BENCH_REPEAT", 3))
SAMPLES = os.path.join(HERE, "..", "..", "shared", "samples")


# ---- data ----------------------------------------------------------------------------------
def _texture(i: int, h: int, w: int) -> np.ndarray:
    """A moving smooth scene with fine texture: real work for an encoder and a decoder."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(1234)
    grain = rng.integers(0, 40, size=(h + 64, w + 64), dtype=np.uint8)
    base = 110 + 60 * np.sin((x + 3 * i) / 37.0) * np.cos((y - 2 * i) / 29.0)
    base += 40 * np.sin((x * 0.7 + y * 0.3 + 5 * i) / 11.0)
    s = i % 64
    return (base + grain[s : s + h, s : s + w]).clip(0, 255).astype(np.uint8)


def _rgb(i: int, h: int, w: int) -> np.ndarray:
    g = _texture(i, h, w)
    return np.stack([g, np.roll(g, 7 * i % w, axis=1), g[::-1]], axis=-1)


def _encode(path, n, h, w, codec, pix_fmt, *, gop=None, bframes=None, options=None, gray=False):
    if os.path.exists(path):
        return
    import av

    tmp = path + ".tmp" + os.path.splitext(path)[1]
    with av.open(tmp, "w") as out:
        s = out.add_stream(codec, rate=30, options=options or {})
        s.pix_fmt, s.width, s.height = pix_fmt, w, h
        if gop is not None:
            s.codec_context.gop_size = gop
        if bframes is not None:
            s.codec_context.max_b_frames = bframes
        for i in range(n):
            arr = _texture(i, h, w) if gray else _rgb(i, h, w)
            frame = av.VideoFrame.from_ndarray(arr, format="gray" if gray else "rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    os.replace(tmp, path)


def _write(path, n, make, **kw):
    if os.path.exists(path):
        return
    import napari_imseq as imseq

    imseq.imwrite(path, (make(i) for i in range(n)), fps=30, **kw)


def files() -> dict[str, str]:
    """label -> path (generated on first use)."""
    os.makedirs(DATA, exist_ok=True)
    d = lambda name: os.path.join(DATA, name)  # noqa: E731
    x264 = {"preset": "veryfast", "keyint_min": "250", "sc_threshold": "0", "bf": "3"}
    out = {
        "H.264 640x360 GOP 250 B-frames (900)": (
            d("dask_h264_gop250_900.mp4"),
            lambda p: _encode(p, 900, 360, 640, "libx264", "yuv420p", gop=250, bframes=3,
                              options=x264),
        ),
        "HEVC 640x360 (300)": (
            d("dask_hevc_300.mp4"),
            lambda p: _encode(p, 300, 360, 640, "libx265", "yuv420p",
                              options={"preset": "ultrafast", "x265-params": "log-level=error"}),
        ),
        "VP9 640x360 (300)": (
            d("dask_vp9_300.webm"),
            lambda p: _encode(p, 300, 360, 640, "libvpx-vp9", "yuv420p",
                              options={"deadline": "realtime", "cpu-used": "8"}),
        ),
        "FFV1 gray 640x480 GOP 12 (300)": (
            d("dask_ffv1_gray_300.mkv"),
            lambda p: _encode(p, 300, 480, 640, "ffv1", "gray", gop=12, gray=True,
                              options={"level": "3", "slices": "4", "slicecrc": "1"}),
        ),
        "MJPEG 640x360 (300)": (
            d("dask_mjpeg_300.avi"),
            lambda p: _encode(p, 300, 360, 640, "mjpeg", "yuvj420p"),
        ),
        "GIF 320x240 (150)": (
            d("dask_gif_150.gif"),
            lambda p: _encode(p, 150, 240, 320, "gif", "rgb8"),
        ),
        "SEQ mono8 640x480 (2000)": (
            d("dask_mono8_2000.seq"),
            lambda p: _write(p, 2000, lambda i: _texture(i, 480, 640)),
        ),
        "TIFF uint16 512x512 (500)": (
            d("dask_u16_500.tif"),
            lambda p: _write(p, 500, lambda i: _texture(i, 512, 512).astype(np.uint16) * 64),
        ),
        "zarr uint16 512x512 (500)": (
            d("dask_u16_500.zarr"),
            lambda p: _write(p, 500, lambda i: _texture(i, 512, 512).astype(np.uint16) * 64),
        ),
        "PNG folder 640x480 (200)": (
            d("dask_png_200"),
            lambda p: _write(p, 200, lambda i: _texture(i, 480, 640), format="folder",
                              image_format="png"),
        ),
    }  # fmt: skip
    a = os.path.join(DATA, "h264_1080p_gop250_750.mp4")  # bench_video's file (a), if made
    if os.path.exists(a):
        out["H.264 1920x1080 GOP 250 (750), bench_video's (a)"] = (a, None)
    for name, title in [
        ("imageio_cockatoo.mp4", "sample: H.264 yuv444p 1280x720 (280)"),
        ("dlc_tests_vid.avi", "sample: H.264 in AVI 416x374 (256)"),
        ("imageio_calcium_imaging.tif", "sample: TIFF uint16 30x40 (1000)"),
    ]:
        p = os.path.join(SAMPLES, name)
        if os.path.exists(p):
            out[title] = (p, None)
    wanted = os.environ.get("IMSEQ_BENCH_DASK_FILES")
    result = {}
    for label, (path, make) in out.items():
        if wanted and not any(w.strip() and w.strip() in label for w in wanted.split(",")):
            continue
        if make is not None:
            make(path)
        result[label] = path
    return result


# ---- one measurement process ----------------------------------------------------------------
def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker(path: str, cores: int) -> dict:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import dask

    import napari_imseq as imseq
    from napari_imseq.io import _dask

    def iterate():
        with imseq.open_sequence(path) as seq:
            return np.array([f.mean(axis=(0, 1)) for f in seq])

    def dask_mean(chunks="auto"):
        return imseq.imread(path, chunks=chunks).mean(axis=(1, 2)).compute()

    def dask_max():
        return imseq.imread(path).max(axis=0).compute()

    def dask_mean_unchained():
        """Before the pieces of a long GOP were chained: dask's own order."""
        chained = _dask.continued_chunks
        _dask.continued_chunks = lambda seq, sizes: []
        try:
            return dask_mean()
        finally:
            _dask.continued_chunks = chained

    with imseq.open_sequence(path) as seq:
        n = len(seq)
        auto = seq.to_dask("auto")
        auto[:2].mean(axis=(1, 2)).compute()  # imports and warm-up, not timed
        pieces = len(_dask.continued_chunks(seq, auto.chunks[0]))
    variants = {"iterate": iterate, "dask_mean": dask_mean, "dask_max": dask_max}
    if pieces:  # GOPs split into pieces: chained and (before) unchained, alternating
        variants["dask_mean_unchained"] = dask_mean_unchained
    best = {k: float("inf") for k in variants}
    cpu = {k: float("inf") for k in variants}  # CPU seconds of every thread (decoders' too)
    ref = None
    for _ in range(REPEAT):
        for name, fn in variants.items():
            t, c = time.perf_counter(), _cpu()
            got = fn()
            best[name] = min(best[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], _cpu() - c)
            if name == "iterate":
                ref = got
            elif name.startswith("dask_mean") and not np.allclose(got, ref, rtol=1e-9, atol=0):
                raise AssertionError(f"{path}: dask mean differs from iteration")
    if os.environ.get("IMSEQ_BENCH_ONE_FRAME_CHUNKS", "1") != "0":
        t = time.perf_counter()
        old = dask_mean(chunks=1)
        best["dask_mean_1frame"] = time.perf_counter() - t
        if not np.allclose(old, ref, rtol=1e-9, atol=0):
            raise AssertionError(f"{path}: one-frame dask mean differs from iteration")
    return {
        "frames": n,
        "threads": dask.system.CPU_COUNT,
        "chunks": len(imseq.imread(path).chunks[0]),
        "continued": pieces,
        "fps": {k: n / v for k, v in best.items()},
        "cpu_ms": {k: v / n * 1e3 for k, v in cpu.items()},
        "load": os.getloadavg()[0],
    }


def _measure(path: str, cores: int) -> dict:
    env = dict(os.environ)
    src = os.path.join(HERE, "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", path, str(cores)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{path} on {cores} core(s): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> str:
    cores = len(os.sched_getaffinity(0))
    rows, split = [], []
    for label, path in files().items():
        print(f"  dask: {label}", flush=True)
        one = _measure(path, 1)
        two = _measure(path, min(2, cores))
        print(f"    1 core {one}\n    2 cores {two}", flush=True)
        f1, f2 = one["fps"], two["fps"]
        rows.append([
            label,
            str(two["chunks"]),
            f"{f1['iterate']:.0f}",
            f"{f1['dask_mean']:.0f} ({f1['dask_mean'] / f1['iterate']:.2f})",
            f"{f2['iterate']:.0f}",
            f"{f2['dask_mean']:.0f} ({f2['dask_mean'] / f2['iterate']:.2f})",
            f"{f2['dask_mean'] / f1['dask_mean']:.2f}x",
            f"{f2['dask_max']:.0f} ({f2['dask_max'] / f2['iterate']:.2f})",
            f"{one['cpu_ms']['iterate']:.3g} / {one['cpu_ms']['dask_mean']:.3g}",
            f"{two['cpu_ms']['iterate']:.3g} / {two['cpu_ms']['dask_mean']:.3g}",
            f"{f2['dask_mean_1frame']:.0f} ({f2['dask_mean_1frame'] / f2['iterate']:.2f})"
            if "dask_mean_1frame" in f2 else "not run",
        ])  # fmt: skip
        if "dask_mean_unchained" in f1:
            split.append([
                label,
                f"{two['chunks']} ({two['continued']} continue a GOP)",
                *(f"{f[k]:.0f} ({f[k] / f['iterate']:.2f})" for f in (f1, f2)
                  for k in ("dask_mean", "dask_mean_unchained")),
                *(f"{r['cpu_ms']['dask_mean']:.3g} / {r['cpu_ms']['dask_mean_unchained']:.3g}"
                  for r in (one, two)),
            ])  # fmt: skip
    load = os.getloadavg()
    return "\n".join([
        "## Dask over one file",
        "",
        f"Frames per second, best of {REPEAT}; in brackets the ratio to iterating the same "
        f"file in the same process setting. \"1 core\" and \"2 cores\" pin the process "
        f"(dask's default thread count and FFmpeg's decoder threads follow). Load average "
        f"at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (the machine is shared).",
        "",
        table(["file", "auto chunks", "iterate, 1 core", "dask mean, 1 core", "iterate, 2 cores",
               "dask mean, 2 cores", "dask 2 cores / 1 core", "dask max(axis=0), 2 cores",
               "CPU ms/frame iterate / dask, 1 core", "CPU ms/frame iterate / dask, 2 cores",
               "one-frame chunks (old), 2 cores"], rows),
        "",
        "`mean` is `imread(p).mean(axis=(1, 2)).compute()` (a value per frame, the issue's "
        "example); `max(axis=0)` reduces across chunks. Both use the default threaded "
        "scheduler. CPU time counts every thread of the process (FFmpeg's decoder threads "
        "too), best of the runs, per frame.",
        "",
        *(["### GOPs split into pieces: chained vs dask's own order", "",
           "Files whose GOPs exceed `GOP_CHUNK_BYTES` (256 MiB) are cut into pieces; each piece "
           "now waits for a ticket of the piece before it (`_dask._chain`). \"unchained\" is "
           "the same run with the chaining switched off (dask's own order, as before), measured "
           "alternately in the same process.", "",
           table(["file", "auto chunks", "dask mean, 1 core", "unchained, 1 core",
                  "dask mean, 2 cores", "unchained, 2 cores",
                  "CPU ms/frame chained / unchained, 1 core",
                  "CPU ms/frame chained / unchained, 2 cores"], split), ""] if split else []),
        goals() if os.environ.get("IMSEQ_BENCH_GOALS", "1") != "0" else "",
    ])  # fmt: skip


def goals() -> str:
    """Random access vs imageio and sequential vs bare PyAV (bench_video.goals)."""
    import bench_video

    return bench_video.goals()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]))))
    else:
        sys.path.insert(0, HERE)
        print(run())
