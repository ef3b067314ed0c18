"""A 4-tile mosaic of real sample files: per-frame time next to the tiles' own read times (sum
and max, measured in the same run), the parallel bound, and FFV1 writing vs composing alone.

Tiles (../shared/samples): imageio_cockatoo.mp4 (H.264 1280x720 RGB), dlc_tests_vid.avi
(H.264 416x374 RGB), imageio_calcium_imaging.tif (uint16 40x30) and
mediaconch_ffv1_gray_coder-1_level-3.mkv (FFV1 640x480 gray, 25 frames, then held), synced by
frame index, each resized into a 360x640 cell: a 720x1280 uint16 RGB mosaic.

Per frame k, the tiles' reads (read + fit, what a tile costs inside the mosaic) are timed one
by one on one mosaic (threads=1), and frame k of three more mosaics over separately opened
files is timed right after, in turns, so all see the same load: the default (a frame read
alone reads its costliest tile in the calling thread), the schedule before it (the costliest
tile in its own thread, ``_solo = False``) and ``lanes="all"``. The parallel bound is
max(slowest tile, sum of tiles / cores), per frame, averaged.

    python benchmarks/bench_mosaic.py          # prints the markdown section
    python benchmarks/run.py mosaic            # through the runner (results/mosaic.md)

Environment: IMSEQ_BENCH_MOSAIC_FRAMES (default 120).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import table  # noqa: E402

N = int(os.environ.get("IMSEQ_BENCH_MOSAIC_FRAMES", 120))
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "samples")
TILES = [
    "imageio_cockatoo.mp4",
    "dlc_tests_vid.avi",
    "imageio_calcium_imaging.tif",
    "mediaconch_ffv1_gray_coder-1_level-3.mkv",
]
OPTIONS = {"grid": "2x2", "cell": (360, 640), "sync": "index", "outside": "hold", "fps": 25.0}


def _mosaic(**extra):
    import napari_imseq as imseq

    return imseq.mosaic([os.path.join(SAMPLES, t) for t in TILES], **OPTIONS, **extra)


def per_frame() -> dict[str, float]:
    serial, parallel, every = _mosaic(threads=1), _mosaic(), _mosaic(lanes="all")
    lane = _mosaic()  # the default, but a frame read alone keeps its costliest tile in its lane
    lane._solo = False
    n = min(N, len(serial))
    sums, maxes, bounds, whole, per_tile = [], [], [], [], [[] for _ in TILES]
    whole_all, cpu_whole = [], []  # lanes="all"; the process CPU of the default's frames
    whole_lane = []
    cpus, cpu_bounds = [], []  # CPU seconds of the tiles' reads (decoders' own threads included)
    cores = os.cpu_count() or 1
    serial[0], parallel[0], every[0], lane[0]  # decoders opened, indexes built: not timed
    for k in range(1, n):
        frames = serial.tile_frames(k)
        times = []
        c0 = time.process_time()
        for s, j in enumerate(frames):
            t = time.perf_counter()
            serial._tiles[s].frame(j)
            times.append(time.perf_counter() - t)
            per_tile[s].append(times[-1])
        cpus.append(time.process_time() - c0)
        cpu_bounds.append(max(max(times), cpus[-1] / cores))
        # the thread layouts alternate frame by frame (in turn first and last), so all see
        # the same load
        layouts = ((parallel, whole), (every, whole_all), (lane, whole_lane))
        for m, into in layouts[k % 3 :] + layouts[: k % 3]:
            c, t = time.process_time(), time.perf_counter()
            m[k]
            into.append(time.perf_counter() - t)
            if m is parallel:
                cpu_whole.append(time.process_time() - c)
        sums.append(sum(times))
        maxes.append(max(times))
        bounds.append(max(max(times), sum(times) / cores))
    for m in (serial, parallel, every, lane):
        m.close()
    mean = statistics.fmean
    return {
        "frames": n - 1,
        "cores": cores,
        "tiles": [mean(v) * 1000 for v in per_tile],
        "sum": mean(sums) * 1000,
        "max": mean(maxes) * 1000,
        "bound": mean(bounds) * 1000,
        "cpu": mean(cpus) * 1000,
        "cpu_bound": mean(cpu_bounds) * 1000,
        "mosaic": mean(whole) * 1000,
        "mosaic_all": mean(whole_all) * 1000,
        "mosaic_lane": mean(whole_lane) * 1000,
        "mosaic_cpu": mean(cpu_whole) * 1000,
        "inline": sorted(parallel._inline or ()),
        "heavy": parallel._heavy,
        "shape": parallel.frame_shape,
        "dtype": str(parallel.dtype),
    }


def write_vs_compose() -> dict[str, float]:
    import napari_imseq as imseq

    cpu: dict[str, list[float]] = {"compose": [], "encode": [], "write": []}  # s per frame

    def compose() -> float:
        m = _mosaic()
        n = min(N, len(m))
        m[0]
        c, t = time.process_time(), time.perf_counter()
        for _ in m.iter_frames(1, n):  # streamed, as convert reads it (with read-ahead)
            pass
        seconds = time.perf_counter() - t
        cpu["compose"].append((time.process_time() - c) / (n - 1))
        m.close()
        return (n - 1) / seconds

    def write() -> float:
        with tempfile.TemporaryDirectory() as tmp, _mosaic() as m:
            n = min(N, len(m))
            out = os.path.join(tmp, "mosaic.mkv")
            c, t = time.process_time(), time.perf_counter()
            imseq.convert(m, out, stop=n, progress=False)
            seconds = time.perf_counter() - t
            cpu["write"].append((time.process_time() - c) / n)
            return n / seconds

    def encode() -> float:
        """FFV1 alone: the same frames, composed beforehand, written from memory."""
        with _mosaic() as m:
            n = min(N, len(m))
            frames = [m[k] for k in range(min(n, 30))]
        with tempfile.TemporaryDirectory() as tmp:
            c, t = time.process_time(), time.perf_counter()
            with imseq.open_writer(os.path.join(tmp, "e.mkv"), fps=OPTIONS["fps"]) as w:
                for k in range(n):
                    w.write(frames[k % len(frames)])
            seconds = time.perf_counter() - t
            cpu["encode"].append((time.process_time() - c) / n)
            return n / seconds

    before = compose()
    written = write()
    after = compose()
    encoded = encode()
    ms = {k: statistics.fmean(v) * 1000 for k, v in cpu.items()}
    return {"compose": (before + after) / 2, "write": written, "runs": (before, after),
            "encode": encoded, "cpu": ms}  # fmt: skip


def run() -> str:
    load = os.getloadavg()
    pf = per_frame()
    wc = write_vs_compose()
    load_after = os.getloadavg()
    ratio = pf["mosaic"] / pf["bound"]
    h, w = pf["shape"][:2]
    rows = [[name, f"{ms:.1f}"] for name, ms in zip(TILES, pf["tiles"], strict=True)]
    rows += [
        ["**sum of tiles** (one thread)", f"{pf['sum']:.1f}"],
        ["**slowest tile**", f"{pf['max']:.1f}"],
        [f"**parallel bound** max(slowest, sum / {pf['cores']} cores)", f"{pf['bound']:.1f}"],
        ["CPU of the tiles' reads (all threads, decoders' own included)", f"{pf['cpu']:.1f}"],
        [f"**CPU bound** max(slowest, tiles' CPU / {pf['cores']} cores)", f"{pf['cpu_bound']:.1f}"],
        [
            f'**mosaic frame** (`lanes="auto"`, a frame read alone: tile {pf["heavy"]} read in '
            f"the calling thread, tiles {pf['inline']} together in one other)",
            f"{pf['mosaic']:.1f}",
        ],
        [
            f"mosaic frame, tile {pf['heavy']} in its own thread and tiles {pf['inline']} in "
            "the calling one (the schedule before; alternated with the above)",
            f"{pf['mosaic_lane']:.1f}",
        ],
        [
            'mosaic frame, `lanes="all"` (a thread per tile; alternated with the above)',
            f"{pf['mosaic_all']:.1f}",
        ],  # fmt: skip
        ["process CPU of a mosaic frame (`auto`)", f"{pf['mosaic_cpu']:.1f}"],
        [
            "mosaic frame, streamed (`iter_frames`, 2 frames ahead; runs below)",
            f"{1000 / wc['compose']:.1f}",
        ],
    ]
    goal_time = "met" if ratio <= 1.25 else "not met"
    share = wc["write"] / wc["compose"]
    goal_write = "met" if share >= 0.9 else "not met"
    slowest = min(wc["compose"], wc["encode"])
    cores = pf["cores"]
    cpu = wc["cpu"]
    # no schedule writes faster than the cores can do both stages' CPU work
    cpu_rate = 1000 * cores / (cpu["compose"] + cpu["encode"])
    return "\n".join(
        [
            "## Mosaic (4 real files side by side)",
            "",
            f"`benchmarks/bench_mosaic.py`: {', '.join(TILES)} in a 2x2 grid of 360x640 cells "
            f"(synced by frame index, the 25-frame FFV1 file held after its end), a {w}x{h} "
            f"{pf['dtype']} RGB mosaic; {pf['frames']} frames. Load average "
            f"{load[0]:.1f} before, {load_after[0]:.1f} after (a shared machine).",
            "",
            "Per frame, each tile's read + fit timed alone and the mosaic frame timed right after "
            "(same run, separately opened files), mean ms:",
            "",
            table(["", "ms / frame"], rows),
            "",
            f"Mosaic / parallel bound: **{ratio:.2f}x** (goal <= 1.25x: {goal_time}; "
            f'`lanes="all"`: {pf["mosaic_all"] / pf["bound"]:.2f}x; the schedule before: '
            f"{pf['mosaic_lane'] / pf['bound']:.2f}x); streamed: "
            f"{1000 / wc['compose'] / pf['bound']:.2f}x. "
            f"Mosaic / sum of tiles: {pf['mosaic'] / pf['sum']:.2f}x. The tiles' reads used "
            f"{pf['cpu']:.1f} ms of CPU per frame ({pf['cpu'] / pf['sum']:.2f} CPU-seconds per "
            f"second of their wall time: decoders' own threads), so on {pf['cores']} cores no "
            f"schedule beats {pf['cpu_bound']:.1f} ms: mosaic / CPU bound "
            f"**{pf['mosaic'] / pf['cpu_bound']:.2f}x**.",
            "",
            f"Writing the mosaic to FFV1 (`convert`, reading and encoding in two threads): "
            f"{wc['write']:.1f} frames/s; composing alone (streamed, the same read-ahead): "
            f"{wc['compose']:.1f} frames/s (mean of "
            f"{wc['runs'][0]:.1f} before and {wc['runs'][1]:.1f} after the write): "
            f"**{share * 100:.0f}%** (goal >= 90%: {goal_write}). FFV1 encoding alone (the same "
            f"frames, composed beforehand, from memory): {wc['encode']:.1f} frames/s, so the "
            f"write runs at {wc['write'] / slowest * 100:.0f}% of its slower stage "
            f"(min(compose, encode) = {slowest:.1f} frames/s).",
            "",
            f"CPU per frame (process, all threads): composing {cpu['compose']:.1f} ms, FFV1 "
            f"encoding {cpu['encode']:.1f} ms ({cpu['encode'] / (1000 / wc['encode']):.2f} "
            f"CPU-seconds per second of encoding alone: its slice threads), writing "
            f"{cpu['write']:.1f} ms. On {cores} cores no schedule writes faster than "
            f"{cores} x 1000 / ({cpu['compose']:.1f} + {cpu['encode']:.1f}) = "
            f"{cpu_rate:.1f} frames/s; the write reaches **{wc['write'] / cpu_rate * 100:.0f}%** "
            f"of that CPU bound.",
            "",
        ]
    )


if __name__ == "__main__":
    print(run())
