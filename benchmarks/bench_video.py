"""Video reading: napari-imseq vs imageio (pyav plugin), pims (PyAVReaderIndexed/Timed),
OpenCV VideoCapture (what napari-video does), a bare threaded PyAV loop and the ffmpeg CLI.

Files: (a) 1080p H.264, B-frames, GOP 250, 3000 frames; (b) 1024x1024 FFV1 gray16 GOP 1;
(c) the same with FFmpeg's default GOP. A "wrong frame" is a returned frame whose closest
ground-truth frame (a plain sequential decode, compared as normalised 32x32 thumbnails, so
8-bit conversions of 16-bit data still match the right frame) is not the one asked for.

Environment: IMSEQ_BENCH_RANDOM (random reads, default 200), IMSEQ_BENCH_H264_FRAMES (3000),
IMSEQ_BENCH_FFV1_FRAMES (300).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time

import numpy as np

from _common import DATA, table

N_RANDOM = int(os.environ.get("IMSEQ_BENCH_RANDOM", 200))
BUDGET_S = float(os.environ.get("IMSEQ_BENCH_BUDGET", 180))
H264_FRAMES = int(os.environ.get("IMSEQ_BENCH_H264_FRAMES", 3000))
FFV1_FRAMES = int(os.environ.get("IMSEQ_BENCH_FFV1_FRAMES", 300))


# ---- data ----------------------------------------------------------------------------------
def make_h264(path: str) -> None:
    if os.path.exists(path):
        return
    if not shutil.which("ffmpeg"):
        _make_h264_pyav(path)
        return
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
        "-i", "testsrc2=size=1920x1080:rate=30", "-frames:v", str(H264_FRAMES),
        "-c:v", "libx264", "-preset", "veryfast", "-g", "250", "-keyint_min", "250",
        "-sc_threshold", "0", "-bf", "3", "-pix_fmt", "yuv420p", path + ".tmp.mp4",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    os.replace(path + ".tmp.mp4", path)


def _make_h264_pyav(path: str) -> None:
    """The same file as the ffmpeg command above, through PyAV (lavfi testsrc2, x264)."""
    import av

    graph = av.filter.Graph()
    src = graph.add("testsrc2", "size=1920x1080:rate=30")
    sink = graph.add("buffersink")
    src.link_to(sink)
    graph.configure()
    opts = {"preset": "veryfast", "keyint_min": "250", "sc_threshold": "0", "bf": "3"}
    with av.open(path + ".tmp.mp4", "w") as out:
        s = out.add_stream("libx264", rate=30, options=opts)
        s.pix_fmt, s.width, s.height = "yuv420p", 1920, 1080
        s.codec_context.gop_size = 250
        for _ in range(H264_FRAMES):
            frame = sink.pull()
            frame.pts = None
            frame.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame I
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    os.replace(path + ".tmp.mp4", path)


def gray16_frame(i: int, size: int = 1024) -> np.ndarray:
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size]
    smooth = 20000 + 15000 * np.sin((x + 7 * i) / 60.0) * np.cos((y - 3 * i) / 45.0)
    return (smooth + rng.normal(0, 300, (size, size))).clip(0, 65535).astype(np.uint16)


def make_ffv1(path: str, gop: int | None) -> None:
    if os.path.exists(path):
        return
    import av

    with av.open(path + ".tmp.mkv", "w") as out:
        s = out.add_stream("ffv1", rate=30, options={"slices": "16", "slicecrc": "1", "level": "3"})
        s.pix_fmt, s.width, s.height = "gray16le", 1024, 1024
        if gop is not None:
            s.codec_context.gop_size = gop
        s.codec_context.thread_count = 0
        for i in range(FFV1_FRAMES):
            for p in s.encode(av.VideoFrame.from_ndarray(gray16_frame(i), format="gray16le")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    os.replace(path + ".tmp.mkv", path)


# ---- ground truth as thumbnails --------------------------------------------------------------
def thumb(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame, dtype=np.float32)
    if f.ndim == 3:
        f = f[..., :3].mean(axis=2)
    h, w = f.shape
    f = f[: h // 32 * 32, : w // 32 * 32].reshape(32, h // 32, 32, w // 32).mean(axis=(1, 3))
    f -= f.mean()
    return f.ravel() / (np.linalg.norm(f) + 1e-9)


def truth_thumbs(path: str) -> tuple[np.ndarray, float, int]:
    """Thumbnails of a bare threaded sequential PyAV decode, its time and frame count."""
    import av

    thumbs = []
    t = time.perf_counter()
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for fr in c.decode(s):
            thumbs.append(thumb(to_native(fr)))
    return np.stack(thumbs), time.perf_counter() - t, len(thumbs)


def to_native(fr) -> np.ndarray:
    return fr.to_ndarray() if fr.format.name.startswith("gray") else fr.to_ndarray(format="rgb24")


def bare_decode_fps(path: str) -> float:
    """A bare threaded PyAV decode loop with the same conversion our reader does."""
    import av

    t = time.perf_counter()
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for fr in c.decode(s):
            to_native(fr)
            n += 1
    return n / (time.perf_counter() - t)


def bare_keep_fps(path: str) -> float:
    """The bare loop, each array kept until the next one is made, as a consumer's loop
    variable keeps it (``for f in frames: use(f)``): glibc then returns the freed buffer to
    the system and takes it back page by page (page faults, system time) for every frame."""
    import av

    t = time.perf_counter()
    n = 0
    arr = None
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for fr in c.decode(s):
            arr = to_native(fr)
            n += 1
    del arr
    return n / (time.perf_counter() - t)


def ffmpeg_fps(path: str, n: int) -> float | None:
    if not shutil.which("ffmpeg"):
        return None
    t = time.perf_counter()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-threads", "0", "-i", path, "-f", "null", "-"], check=True
    )
    return n / (time.perf_counter() - t)


# ---- readers: open(path) -> (read(i), iterate(), close()) ------------------------------------
def r_ours(path):
    import napari_imseq as imseq

    seq = imseq.open_sequence(path)
    return seq.__getitem__, seq.iter_frames, seq.close


def r_imageio(path):
    import imageio.v3 as iio

    f = iio.imopen(path, "r", plugin="pyav")
    fmt = None
    props = f.properties()
    if len(props.shape) == 3 or (len(props.shape) == 4 and props.shape[-1] == 1):
        fmt = "gray16le" if props.dtype == np.uint16 else None

    def read(i):
        return f.read(index=i, format=fmt) if fmt else f.read(index=i)

    def iterate():
        # a fresh handle: imageio cannot switch to its threaded iteration after random reads
        with iio.imopen(path, "r", plugin="pyav") as g:
            yield from (g.iter(format=fmt) if fmt else g.iter())

    return read, iterate, f.close


def r_pims_indexed(path):
    import pims

    v = pims.PyAVReaderIndexed(path)
    return v.__getitem__, lambda: iter(v), v.close


def r_pims_timed(path):
    import pims

    v = pims.PyAVReaderTimed(path)
    return v.__getitem__, lambda: iter(v), v.close


def r_opencv(path):
    import cv2

    cap = cv2.VideoCapture(path)

    def read(i):
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, frame = cap.read()
        if not ok:
            raise IndexError(i)
        return frame

    def iterate():
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while True:
            ok, frame = cap.read()
            if not ok:
                return
            yield frame

    return read, iterate, cap.release


READERS = {
    "napari-imseq": r_ours,
    "imageio v3 pyav": r_imageio,
    "pims PyAVReaderIndexed": r_pims_indexed,
    "pims PyAVReaderTimed": r_pims_timed,
    "OpenCV VideoCapture": r_opencv,
}


def measure(name, opener, path, thumbs, order, budget_s):
    """Open time, random-access ms/frame and wrong frames, sequential fps (or an error)."""
    try:
        t = time.perf_counter()
        read, iterate, close = opener(path)
        open_s = time.perf_counter() - t
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"[:80]}
    res = {"open_s": open_s}
    wrong, done, errors = 0, 0, 0
    t = time.perf_counter()
    for i in order:
        try:
            frame = read(i)
        except Exception:
            errors += 1
            continue
        done += 1
        if int(np.argmax(thumbs @ thumb(frame))) != i:
            wrong += 1
        if time.perf_counter() - t > budget_s:
            break
    elapsed = time.perf_counter() - t
    res.update(
        random_ms=elapsed / max(done + errors, 1) * 1e3, wrong=wrong, read=done, errors=errors
    )
    t = time.perf_counter()
    n = 0
    try:
        for _ in iterate():
            n += 1
            if time.perf_counter() - t > budget_s:
                break
    except Exception as err:
        res["seq_error"] = type(err).__name__
    res["seq_fps"] = n / (time.perf_counter() - t)
    close()
    return res


def one_file(label: str, path: str) -> str:
    import napari_imseq as imseq

    thumbs, decode_s, n = truth_thumbs(path)
    bare = bare_decode_fps(path)
    ff = ffmpeg_fps(path, n)
    # open: cold (index scan, empty cache) and warm (cached index)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NAPARI_IMSEQ_CACHE_DIR"] = cache
        t = time.perf_counter()
        imseq.open_sequence(path).close()
        cold = time.perf_counter() - t
        t = time.perf_counter()
        imseq.open_sequence(path).close()
        warm = time.perf_counter() - t
        rng = random.Random(0)
        order = [rng.randrange(n) for _ in range(N_RANDOM)]
        results = {}
        for name, op in READERS.items():
            results[name] = measure(name, op, path, thumbs, order, BUDGET_S)
            print(f"    {name}: {results[name]}", flush=True)
        del os.environ["NAPARI_IMSEQ_CACHE_DIR"]
    rows = []
    ours = results["napari-imseq"]
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "fails to open: " + r["error"], "", "", "", ""])
            continue
        ratio = r["random_ms"] / ours["random_ms"]
        rows.append([
            name,
            f"{r['open_s'] * 1e3:.0f}",
            f"{r['random_ms']:.1f}" + (f" ({r['read']} of {N_RANDOM} in budget)" if r["read"] + r["errors"] < N_RANDOM else ""),
            f"{ratio:.2f}x",
            f"{r['wrong']}" + (f" + {r['errors']} errors" if r["errors"] else ""),
            f"{r['seq_fps']:.0f}" + (f" ({r['seq_error']})" if "seq_error" in r else ""),
        ])  # fmt: skip
    rows.append(["bare threaded PyAV loop", "", "", "", "", f"{bare:.0f}"])
    if ff:
        rows.append(["ffmpeg CLI (decode to null)", "", "", "", "", f"{ff:.0f}"])
    return "\n".join([
        f"### {label}",
        "",
        f"{n} frames. Open: cold (index scan) {cold * 1e3:.0f} ms = {cold / decode_s * 100:.1f}% "
        f"of a full decode ({decode_s:.1f} s); warm (cached index) {warm * 1e3:.1f} ms. "
        f"Sequential: ours {ours['seq_fps']:.0f} fps = {ours['seq_fps'] / bare * 100:.0f}% of the "
        f"bare threaded PyAV loop.",
        "",
        table(["reader", "open (ms)", f"random access, {N_RANDOM} frames (ms/frame)",
               "time vs ours", "wrong frames", "sequential (fps)"], rows),  # fmt: skip
        "",
    ])  # fmt: skip


def goals(n_random: int | None = None, repeat: int = 2) -> str:
    """The two read goals of issue #11 on file (a), side by side and interleaved so that both
    sides see the same machine load: random access vs imageio (the same frame numbers, reads
    alternating between the two readers) and sequential reading vs the bare PyAV loop
    (alternating runs, best of ``repeat``; wall and CPU time)."""
    import resource

    import imageio.v3 as iio

    import napari_imseq as imseq

    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"h264_1080p_gop250_{H264_FRAMES}.mp4")
    make_h264(path)
    n_random = n_random or int(os.environ.get("IMSEQ_BENCH_GOAL_RANDOM", 60))

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    seq = imseq.open_sequence(path)
    img = iio.imopen(path, "r", plugin="pyav")
    n = len(seq)
    rng = random.Random(0)
    order = [rng.randrange(n) for _ in range(n_random)]
    spent = {"ours": 0.0, "imageio": 0.0}
    for i in order:
        for name, read in (("ours", seq.__getitem__), ("imageio", lambda i: img.read(index=i))):
            t = time.perf_counter()
            read(i)
            spent[name] += time.perf_counter() - t
    seq.close()
    img.close()

    def ours():
        with imseq.open_sequence(path) as s:
            for _ in s.iter_frames():
                pass

    runs = (
        ("bare", lambda: bare_decode_fps(path)),
        ("ours", ours),
        ("keep", lambda: bare_keep_fps(path)),
    )
    best = {name: [float("inf")] * 2 for name, _ in runs}
    for _ in range(repeat):
        for name, fn in runs:
            t, c = time.perf_counter(), cpu()
            fn()
            w, c = time.perf_counter() - t, cpu() - c
            best[name] = [min(best[name][0], w), min(best[name][1], c)]
    ratio = spent["imageio"] / spent["ours"]
    load = os.getloadavg()
    return "\n".join([
        "### The two read goals (file (a), 1080p H.264, GOP 250)",
        "",
        f"Measured side by side (load average {load[0]:.1f}).",
        "",
        table(["measure", "napari-imseq", "reference", "ratio (goal)"], [
            [f"random access, {n_random} frames, reads alternating (ms/frame)",
             f"{spent['ours'] / n_random * 1e3:.0f}",
             f"imageio v3 pyav {spent['imageio'] / n_random * 1e3:.0f}",
             f"{ratio:.2f}x faster (>= 2x)"],
            [f"sequential, {n} frames, wall (frames/s)", f"{n / best['ours'][0]:.0f}",
             f"bare PyAV loop {n / best['bare'][0]:.0f}",
             f"{best['bare'][0] / best['ours'][0] * 100:.0f}% (>= 90%)"],
            ["sequential, CPU time of all threads (s)", f"{best['ours'][1]:.1f}",
             f"bare PyAV loop {best['bare'][1]:.1f}",
             f"{best['bare'][1] / best['ours'][1] * 100:.0f}% of ours"],
            [f"sequential, {n} frames, wall (frames/s), each array kept until the next",
             f"{n / best['ours'][0]:.0f}",
             f"bare PyAV loop keeping it {n / best['keep'][0]:.0f}",
             f"{best['keep'][0] / best['ours'][0] * 100:.0f}%"],
            ["sequential, CPU time, each array kept until the next (s)",
             f"{best['ours'][1]:.1f}", f"bare PyAV loop keeping it {best['keep'][1]:.1f}",
             f"{best['keep'][1] / best['ours'][1] * 100:.0f}% of ours"],
        ]),
        "",
    ])  # fmt: skip


def run() -> str:
    os.makedirs(DATA, exist_ok=True)
    a = os.path.join(DATA, f"h264_1080p_gop250_{H264_FRAMES}.mp4")
    b = os.path.join(DATA, f"ffv1_gray16_gop1_{FFV1_FRAMES}.mkv")
    c = os.path.join(DATA, f"ffv1_gray16_defaultgop_{FFV1_FRAMES}.mkv")
    make_h264(a)
    make_ffv1(b, 1)
    make_ffv1(c, None)
    parts = [
        "## Video (PyAV)",
        "",
        f"Random access reads the same random frame numbers with every reader; a reader that "
        f"exceeds {BUDGET_S:.0f} s per measurement is cut off there (the table says how many it read). imageio is asked for gray16 frames on "
        "the FFV1 files (its default converts to 8-bit RGB); pims and OpenCV return 8-bit RGB/BGR.",
        "",
    ]
    for label, path in [
        ("(a) 1080p H.264, B-frames, GOP 250", a),
        ("(b) 1024x1024 FFV1 gray16, GOP 1", b),
        ("(c) 1024x1024 FFV1 gray16, default GOP", c),
    ]:
        print(f"  video: {label}", flush=True)
        parts.append(one_file(label, path))
    return "\n".join(parts)


if __name__ == "__main__":
    print(run())
