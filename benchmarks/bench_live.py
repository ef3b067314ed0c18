"""Live streaming over loopback: throughput and latency of napari_imseq.live next to imagezmq.

    python benchmarks/bench_live.py            # prints the section (run.py writes it to docs)
    python benchmarks/bench_live.py --quick    # 2 s per run instead of 4

The sender runs in its own process (as acquisition code would), the receiver in this one.
Each run sends distinct frames (a moving pattern with noise, so compression has real work) at
a fixed rate for a few seconds. Latency = arrival at the consuming code minus the sender's
wall clock at sending (same machine, same clock). imagezmq runs on the same frames: REQ/REP
(its default: the sender waits for each reply) and PUB/SUB.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import table  # noqa: E402

SECONDS = 2.0 if "--quick" in sys.argv else 4.0
CASES = [("uint16 1024x1024", (1024, 1024), "uint16"), ("RGB 1080p", (1080, 1920, 3), "uint8")]
RATES = [30, 100, 200]


def make_frames(shape, dtype, n=8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    top = 4095 if dtype == "uint16" else 255
    out = []
    for i in range(n):
        img = (np.sin((xx + 9 * i) / 40.0) + np.cos(yy / 55.0) + 2) / 4 * top
        img = img + rng.normal(0, top * 0.01, (h, w))
        img = np.clip(img, 0, top).astype(dtype)
        if len(shape) == 3:
            img = np.stack([img, img[::-1], img[:, ::-1]], -1)
        out.append(img)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pace(fps, seconds, send) -> dict:
    """Call ``send(i)`` at ``fps`` for ``seconds``; time spent inside send (blocking)."""
    period = 1.0 / fps
    start = time.monotonic()
    i, blocked = 0, 0.0
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        delay = start + i * period - now
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter()
        send(i)
        blocked += time.perf_counter() - t
        i += 1
    return {"sent": i, "send_ms": blocked / max(i, 1) * 1000}


def _sender_ours(port_q, res_q, shape, dtype, fps, codec, seconds, copy=True):
    from napari_imseq.live import Sender

    frames = make_frames(shape, dtype)
    tx = Sender("127.0.0.1:0", codec=codec, quality=90, fps=fps)
    port_q.put(tx.port)
    deadline = time.monotonic() + 30
    while tx.receivers < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    res = _pace(fps, seconds, lambda i: tx.send(frames[i % len(frames)], copy=copy))
    res["dropped_by_sender"] = tx.stats["dropped_for_receivers"]
    tx.close()
    res_q.put(res)


def _sender_zmq(port, res_q, shape, dtype, fps, jpeg, reqrep, seconds):
    import cv2
    import imagezmq

    frames = make_frames(shape, dtype)
    if reqrep:
        tx = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}")
    else:  # PUB binds; give the subscriber time to join (ZMQ's slow-joiner)
        tx = imagezmq.ImageSender(connect_to=f"tcp://127.0.0.1:{port}", REQ_REP=False)
        time.sleep(1.0)

    def send(i):
        f = frames[i % len(frames)]
        if jpeg:
            ok, buf = cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            tx.send_jpg(repr(time.time()), buf)
        else:
            tx.send_image(repr(time.time()), f)

    res = _pace(fps, seconds, send)
    tx.zmq_socket.setsockopt(__import__("zmq").LINGER, 2000)
    for _ in range(3 if not reqrep else 1):
        tx.send_image("END", frames[0][:2, :2].copy())
    tx.close()
    res_q.put(res)


def _summary(lat: list[float], received: int, first: float, last: float, res: dict) -> dict:
    lat = lat[len(lat) // 20 :]  # warm-up (first 5% of frames) left out, for every transport
    lat_ms = np.array(lat) * 1000 if lat else np.array([np.nan])
    span = max(last - first, 1e-9)
    return {
        "sent": res["sent"],
        "received": received,
        "fps": (received - 1) / span if received > 1 else 0.0,
        "p50": float(np.percentile(lat_ms, 50)),
        "p99": float(np.percentile(lat_ms, 99)),
        "send_ms": res["send_ms"],
    }


def run_ours(shape, dtype, fps, codec, seconds=SECONDS, copy=True) -> dict:
    from napari_imseq.live import Receiver

    ctx = mp.get_context("spawn")
    port_q, res_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_sender_ours,
                       args=(port_q, res_q, shape, dtype, fps, codec, seconds, copy))  # fmt: skip
    proc.start()
    port = port_q.get(timeout=60)
    lat, n, first, last = [], 0, 0.0, 0.0
    with Receiver(f"127.0.0.1:{port}", buffer=256) as rx:
        deadline = time.monotonic() + seconds + 60
        for _frame, meta in rx:
            now = time.time()
            lat.append(now - meta["sent"])
            n += 1
            first = first or now
            last = now
            if time.monotonic() > deadline:
                break
    res = res_q.get(timeout=60)
    proc.join(30)
    return _summary(lat, n, first, last, res)


def run_zmq(shape, dtype, fps, jpeg, reqrep=True, seconds=SECONDS) -> dict:
    import cv2
    import imagezmq

    port = _free_port()
    if reqrep:
        hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}")
    ctx = mp.get_context("spawn")
    res_q = ctx.Queue()
    proc = ctx.Process(target=_sender_zmq,
                       args=(port, res_q, shape, dtype, fps, jpeg, reqrep, seconds))  # fmt: skip
    proc.start()
    if not reqrep:
        hub = imagezmq.ImageHub(open_port=f"tcp://127.0.0.1:{port}", REQ_REP=False)
    lat, n, first, last = [], 0, 0.0, 0.0
    deadline = time.monotonic() + seconds + 60
    while time.monotonic() < deadline:
        if not hub.zmq_socket.poll(1000):
            if not proc.is_alive():
                break
            continue
        if jpeg:
            msg, buf = hub.recv_jpg()
        else:
            msg, image = hub.recv_image()
        if reqrep:
            hub.send_reply(b"OK")
        if msg == "END":
            break
        if jpeg:  # decoded, as ours is when the consuming code gets it
            cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
        now = time.time()
        lat.append(now - float(msg))
        n += 1
        first = first or now
        last = now
    res = res_q.get(timeout=60)
    proc.join(30)
    hub.close()
    return _summary(lat, n, first, last, res)


def run_scenario(fps, seconds, *, display_hz=None, record=None) -> dict:
    """uint16 1024x1024 raw at ``fps``: a display polling latest() at ``display_hz`` and/or a
    recording; RSS of this (the receiving) process sampled throughout."""
    from napari_imseq.live import Receiver

    ctx = mp.get_context("spawn")
    port_q, res_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_sender_ours,
                       args=(port_q, res_q, (1024, 1024), "uint16", fps, "raw", seconds,
                             False))  # fmt: skip
    proc.start()
    port = port_q.get(timeout=60)
    rss = []  # (the scenario's sender uses copy=False, like a camera handing new arrays)
    page = os.sysconf("SC_PAGE_SIZE")
    rx = Receiver(f"127.0.0.1:{port}", record=record)
    t0 = time.monotonic()
    while proc.is_alive() and time.monotonic() - t0 < seconds + 60:
        if display_hz:
            rx.latest()
            time.sleep(1.0 / display_hz)
        else:
            time.sleep(0.1)
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * page)
    res = res_q.get(timeout=60)
    proc.join(30)
    time.sleep(0.5)
    stats = rx.stats
    t = time.monotonic()
    summary = rx.close(timeout=600)
    finalise = time.monotonic() - t
    skip = len(rss) // 5
    return {"sent": res["sent"], "stats": stats, "record": summary, "finalise_s": finalise,
            "rss_growth_mb": (max(rss[skip:]) - rss[skip]) / 2**20 if len(rss) > skip else 0.0,
            "rss_mb": rss[-1] / 2**20 if rss else 0.0}  # fmt: skip


def writer_rates(tmp: str, n: int = 40) -> dict[str, float]:
    """Frames/s of each writer alone on the same uint16 1024x1024 frames (no network)."""
    import warnings

    import napari_imseq as imseq

    frames = make_frames((1024, 1024), "uint16")
    out = {}
    for ext in (".mkv", ".tif", ".seq", ".zarr"):
        path = os.path.join(tmp, "alone" + ext)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with imseq.open_writer(path, fps=100) as w:
                for i in range(n):
                    w.write(frames[i % len(frames)], 1000.0 + i / 100)
        out[ext] = n / (time.perf_counter() - t)
    return out


def _fmt(r: dict) -> list:
    lost = r["sent"] - r["received"]
    return [f"{r['fps']:.1f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}", lost, f"{r['send_ms']:.2f}"]


def run() -> str:
    load_before = os.getloadavg()[0]
    rows = []
    ratios = []
    for label, shape, dtype in CASES:
        for fps in RATES:
            ours_raw = None
            for codec, copy, name in [
                ("raw", False, "raw, send(copy=False)"),
                ("raw", True, "raw (default: frame copied)"),
                ("lossless", True, "lossless (Blosc2 zstd)"),
                ("jpeg", True, "jpeg q90"),
            ]:
                if codec == "jpeg" and dtype != "uint8":
                    continue
                r = run_ours(shape, dtype, fps, codec, copy=copy)
                print(label, fps, name, r, flush=True)
                rows.append([label, fps, f"napari-imseq {name}", *_fmt(r)])
                ours_raw = r if codec == "raw" and not copy else ours_raw
            z = run_zmq(shape, dtype, fps, jpeg=False)
            print(label, fps, "zmq", z, flush=True)
            rows.append([label, fps, "imagezmq REQ/REP raw", *_fmt(z)])
            ratios.append((label, fps, ours_raw["fps"] / max(z["fps"], 1e-9)))
            if fps == 100:
                zp = run_zmq(shape, dtype, fps, jpeg=False, reqrep=False)
                print(label, fps, "zmq pubsub", zp, flush=True)
                rows.append([label, fps, "imagezmq PUB/SUB raw", *_fmt(zp)])
            if dtype == "uint8":
                zj = run_zmq(shape, dtype, fps, jpeg=True)
                print(label, fps, "zmq jpg", zj, flush=True)
                rows.append([label, fps, "imagezmq REQ/REP jpg (OpenCV q90)", *_fmt(zj)])
    tmp = tempfile.mkdtemp(prefix="imseq-bench-live-")
    scen = []
    for name, kw in [
        ("display polled at 60 Hz", {"display_hz": 60}),
        ("display limited to 10 fps", {"display_hz": 10}),
        ("record to FFV1 .mkv (default), display 60 Hz",
         {"display_hz": 60, "record": os.path.join(tmp, "rec.mkv")}),
        ("record to .tif, display 60 Hz",
         {"display_hz": 60, "record": os.path.join(tmp, "rec.tif")}),
        ("record to .seq, display 60 Hz",
         {"display_hz": 60, "record": os.path.join(tmp, "rec.seq")}),
    ]:  # fmt: skip
        s = run_scenario(100, max(SECONDS * 2.5, 10.0), **kw)
        print(name, s, flush=True)
        st, rec = s["stats"], s["record"]
        scen.append([
            name, s["sent"], st["received"], st["dropped_display"],
            st["display_latency_ms"]["p50"], st["display_latency_ms"]["p99"],
            "-" if rec is None else f"{rec['recorded']} / {rec['dropped']}",
            "-" if rec is None else f"{s['finalise_s']:.1f}",
            f"{s['rss_growth_mb']:+.1f}",
        ])  # fmt: skip
    writers = writer_rates(tmp)
    load_after = os.getloadavg()[0]
    ratio_txt = ", ".join(f"{lab} at {fps} fps {r:.2f}x" for lab, fps, r in ratios)
    return "\n".join(
        [
            "## Live streaming (loopback)",
            "",
            f"`benchmarks/bench_live.py`: sender in its own process, receiver in the "
            f"benchmark's; {SECONDS:g} s per run of distinct frames at a fixed rate; latency = "
            f"arrival in the consuming code minus the sender's clock at sending (first 5% of "
            f"frames left out as warm-up, for every transport). 'lost' = sent "
            f"minus received; 'send (ms)' = time the sending code spent inside the send call "
            f"(imagezmq REQ/REP waits for each reply). imagezmq on the same frames, same run.",
            "",
            table(
                [
                    "frames",
                    "fps asked",
                    "transport",
                    "received fps",
                    "latency p50 (ms)",
                    "p99 (ms)",
                    "lost",
                    "send (ms)",
                ],
                rows,
            ),  # fmt: skip
            "",
            f"Throughput, ours raw (copy=False, as imagezmq sends) / imagezmq REQ/REP raw: "
            f"{ratio_txt}.",
            "",
            f"Display and recording, uint16 1024x1024 raw at 100 fps for "
            f"{max(SECONDS * 2.5, 10.0):g} s: the display calls `latest()` at the given rate; "
            f"display latency = sender's clock to the frame handed to the display; RSS growth "
            f"of the receiving process after the first fifth of the run.",
            "",
            table(
                [
                    "scenario",
                    "sent",
                    "received",
                    "dropped for display",
                    "display latency p50 (ms)",
                    "p99 (ms)",
                    "recorded / dropped",
                    "finalise (s)",
                    "RSS growth (MB)",
                ],
                scen,
            ),  # fmt: skip
            "",
            "Each writer alone on the same frames (frames/s, in this process, no network): "
            + ", ".join(f"{ext} {fps:.1f}" for ext, fps in writers.items())
            + ". A recording keeps every frame only while its writer keeps up with the "
            "stream; beyond that the recording queue (512 frames, 512 MiB) fills, then frames "
            "are dropped for the recording and listed by index.",
            "",
            f"Load average of the machine (2 cores shared with other jobs) {load_before:.1f} "
            f"before, {load_after:.1f} after.",
        ]
    )


if __name__ == "__main__":
    print(run())
