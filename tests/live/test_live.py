"""Live streaming over loopback: exact frames, newest-wins display, recording without loss,
reconnection, hostile headers, tokens. Every server binds 127.0.0.1 with a port the OS picks;
every wait is bounded."""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.live import (
    LiveAuthError,
    LiveFrameError,
    LiveProtocolError,
    Receiver,
    Recorder,
    Sender,
)
from napari_imseq.live import _wire as w

from ._helpers import FakeSender, wait_for

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")


def connected(tx: Sender, n: int = 1) -> None:
    assert wait_for(lambda: tx.receivers >= n), "the receiver did not connect"


def collect(rx: Receiver, out: list, started: threading.Event) -> threading.Thread:
    def run():
        it = iter(rx)
        started.set()
        for item in it:
            out.append(item)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def iterate_all(rx: Receiver, tx: Sender, frames, timestamps=None) -> list:
    out, started = [], threading.Event()
    started_iter = collect(rx, out, started)
    assert started.wait(5)
    assert wait_for(lambda: rx._iterating, 5)
    for i, f in enumerate(frames):
        tx.send(f, None if timestamps is None else timestamps[i])
    tx.close()
    started_iter.join(30)
    assert not started_iter.is_alive(), "iteration did not end with the stream"
    return out


# ---- end to end ---------------------------------------------------------------------------------
@pytest.mark.parametrize("codec, checksum", [("raw", None), ("raw", True), ("lossless", None)])
def test_uint16_1024_frames_arrive_bit_exact(codec, checksum):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1024, 0:1024]
    base = (xx * 3 + yy).astype(np.uint16) % 4096
    frames = [(base + rng.integers(0, 40, base.shape)).astype(np.uint16) for _ in range(6)]
    frames.append(rng.integers(0, 65536, base.shape, dtype=np.uint16))  # incompressible
    stamps = [1_700_000_000.0 + 0.01 * i for i in range(len(frames))]
    tx = Sender("127.0.0.1:0", codec=codec, bit_depth=12, checksum=checksum)
    with Receiver(tx.address) as rx:
        connected(tx)
        got = iterate_all(rx, tx, frames, stamps)
        assert len(got) == len(frames)
        for i, (frame, meta) in enumerate(got):
            assert frame.dtype == np.uint16 and frame.shape == (1024, 1024)
            np.testing.assert_array_equal(frame, frames[i])
            assert meta["index"] == i and meta["timestamp"] == stamps[i]
            assert meta["codec"] == codec and meta["bit_depth"] == 12
            assert meta["latency"] >= 0
        assert rx.stats["received"] == len(frames) and rx.stats["lost_in_transit"] == 0


DTYPES = ["uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64", ">u2", "?"]
SHAPES = [(17, 23), (9, 11, 3), (8, 5, 4), (6, 7, 1)]


@pytest.mark.parametrize("codec", ["raw", "lossless"])
def test_every_dtype_and_shape(codec):
    rng = np.random.default_rng(2)
    frames = [(rng.normal(0, 50, shape) + 60).astype(dt) for dt in DTYPES for shape in SHAPES]
    with Sender("127.0.0.1:0", codec=codec, checksum=True) as tx, Receiver(tx.address) as rx:
        connected(tx)
        got = iterate_all(rx, tx, frames, [12.5 + i for i in range(len(frames))])
    assert len(got) == len(frames)
    for i, (frame, (back, meta)) in enumerate(zip(frames, got, strict=True)):
        assert back.dtype == frame.dtype.newbyteorder("=") and back.shape == frame.shape
        np.testing.assert_array_equal(back, frame)
        assert meta["timestamp"] == 12.5 + i and not back.flags.writeable


def test_jpeg_only_8bit_and_close():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:120, 0:160]
    rgb = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    with Sender("127.0.0.1:0", codec="jpeg", quality=95) as tx, Receiver(tx.address) as rx:
        connected(tx)
        with pytest.raises(LiveFrameError, match="8-bit"):
            tx.send(rng.integers(0, 4096, (16, 16), dtype=np.uint16))
        tx.send(rgb)
        got, meta = rx.latest(timeout=10)
        assert got.shape == rgb.shape and got.dtype == np.uint8 and meta["codec"] == "jpeg"
        assert np.abs(got.astype(int) - rgb).mean() < 3


def test_send_refuses_what_cannot_travel():
    with Sender("127.0.0.1:0") as tx:
        for bad in (np.zeros((4, 4), complex), np.zeros((2, 3, 4, 5), np.uint8),
                    np.zeros((4, 4, 7), np.uint8), np.zeros(5, np.uint8),
                    np.array([["a"]])):  # fmt: skip
            with pytest.raises(LiveFrameError):
                tx.send(bad)
        with pytest.raises(LiveFrameError, match="max_frame_bytes"):
            Sender("127.0.0.1:0", max_frame_bytes=100).send(np.zeros((20, 20), np.uint8))
        with pytest.raises(LiveFrameError, match="timestamp"):
            tx.send(np.zeros((4, 4), np.uint8), timestamp=float("nan"))
    with pytest.raises(LiveFrameError, match="codec"):
        Sender("127.0.0.1:0", codec="png")


# ---- display, recording -------------------------------------------------------------------------
def test_slow_display_drops_are_counted_and_recording_keeps_every_frame(tmp_path):
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 4096, (128, 160), dtype=np.uint16) for _ in range(80)]
    tx = Sender("127.0.0.1:0", codec="lossless", fps=200)
    rx = Receiver(tx.address, record=tmp_path / "rec.mkv")
    try:
        connected(tx)
        shown = []
        stop = threading.Event()

        def display():  # a viewer at about 20 fps
            while not stop.is_set():
                item = rx.latest(timeout=0.5)
                if item is not None:
                    shown.append(item[1]["index"])
                time.sleep(0.05)

        viewer = threading.Thread(target=display, daemon=True)
        viewer.start()
        for f in frames:
            tx.send(f)
            time.sleep(0.005)
        assert wait_for(lambda: rx.stats["received"] == len(frames))
        time.sleep(0.2)
        stop.set()
        viewer.join(5)
        s = rx.stats
        assert s["dropped_display"] > 0 and s["displayed"] == len(shown)
        assert s["displayed"] + s["dropped_display"] in (len(frames), len(frames) - 1)
        assert shown == sorted(shown) and len(set(shown)) == len(shown)
        assert s["latency_ms"]["p99"] is not None and s["display_latency_ms"]["p50"] is not None
    finally:
        tx.close()
        summary = rx.close()
    assert summary["recorded"] == len(frames) and summary["dropped"] == 0
    assert summary["lost_indices"] == [] and summary["error"] is None
    with imseq.open_sequence(tmp_path / "rec.mkv") as seq:
        assert len(seq) == len(frames) and seq.dtype == np.uint16
        for i in (0, 33, 79):
            np.testing.assert_array_equal(seq[i], frames[i])
        ts = seq.metadata["timestamps"]
        assert np.all(np.diff(ts) > 0)


def test_recording_overflow_is_counted_by_index(tmp_path):
    writer = imseq.open_writer(tmp_path / "slow.tif")
    real_write = writer.write
    gate = threading.Event()

    def slow_write(frame, timestamp=None):  # a disk that stalls until the gate opens
        gate.wait(10)
        real_write(frame, timestamp)

    writer.write = slow_write
    rec = Recorder(writer, max_queue=3)
    frame = np.zeros((8, 8), np.uint8)
    accepted = [rec.put(frame + i, i, 100.0 + i) for i in range(10)]
    gate.set()
    summary = rec.close(timeout=20)
    # the thread took frame 0, the queue held 1..3, everything after was lost
    assert accepted.count(True) == summary["recorded"]
    assert summary["dropped"] == 10 - summary["recorded"] > 0
    lost = [i for a, b in summary["lost_indices"] for i in range(a, b + 1)]
    assert lost == [i for i, ok in enumerate(accepted) if not ok]
    with imseq.open_sequence(tmp_path / "slow.tif") as seq:
        assert len(seq) == summary["recorded"]
        np.testing.assert_array_equal(seq[1], frame + 1)


def test_recording_refuses_to_overwrite_at_once(tmp_path):
    (tmp_path / "taken.mkv").write_bytes(b"mine")
    with Receiver("127.0.0.1:9", reconnect=False) as rx:
        with pytest.raises(imseq.OverwriteRefusedError):
            rx.start_recording(tmp_path / "taken.mkv")
    assert (tmp_path / "taken.mkv").read_bytes() == b"mine"


def test_several_receivers_and_a_stalled_one_does_not_block_the_sender():
    frame = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)  # 300 x 128 KiB: more than
    # the kernel buffers the stalled connection can hold, so its queue must overflow
    with Sender("127.0.0.1:0", max_queue=4) as tx:
        stalled = socket.create_connection(("127.0.0.1", tx.port))  # never reads
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.recv(w.HELLO.size)
        stalled.sendall(w.AUTH.pack(w.AUTH_MAGIC, w.VERSION, 0, 0, bytes(32), w.nonce()))
        with Receiver(tx.address) as a, Receiver(tx.address) as b:
            connected(tx, 3)
            for _ in range(300):  # returns although one receiver never reads
                tx.send(frame)
            assert wait_for(lambda: a.stats["received"] >= 1 and b.stats["received"] >= 1)
            mine = tx.stats["per_receiver"][f"127.0.0.1:{stalled.getsockname()[1]}"]
            assert mine["dropped"] > 0  # the stalled one lost frames, counted
        stalled.close()


# ---- reconnection ---------------------------------------------------------------------------------
def _serve(port: int = 0) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_imseq.cli", "serve", "pattern:48x64", "--fps", "40",
         "--address", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    line = proc.stdout.readline()
    m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"imseq serve did not start: {line!r} {proc.stderr.read()!r}")
    return proc, int(m.group(1))


def test_sender_killed_and_restarted_receiver_reconnects():
    proc, port = _serve()
    try:
        with Receiver(f"127.0.0.1:{port}", timeout=3) as rx:
            assert wait_for(lambda: rx.stats["received"] >= 3, 30)
            proc.kill()
            proc.wait(10)
            assert wait_for(lambda: not rx.connected, 10)
            assert "lost" in rx.status or "waiting" in rx.status
            before = rx.stats["received"]
            proc, _ = _serve(port)
            assert wait_for(lambda: rx.stats["received"] >= before + 3, 30)
            assert rx.stats["connections"] == 2 and rx.connected
    finally:
        proc.kill()
        proc.wait(10)


# ---- hostile input --------------------------------------------------------------------------------
def _header(**change) -> bytes:
    """A valid 64-byte frame header (uint16 4x4 raw) with fields changed; CRC recomputed
    unless ``crc`` is given."""
    fields = dict(magic=w.MAGIC, version=w.VERSION, kind=w.FRAME | w.KIND_CHECKSUM, size=64, index=0,
                  timestamp=1.0, sent=1.0, dtype=2, codec=0, ndim=2, bits=16,
                  d0=4, d1=4, d2=0, length=32, pcrc=zlib.crc32(bytes(32)))  # fmt: skip
    crc = change.pop("crc", None)
    fields.update(change)
    body = w.HEADER.pack(*fields.values(), 0)[:-4]
    return body + struct.pack("<I", zlib.crc32(body) if crc is None else crc)


HOSTILE = {
    "truncated": _header()[:30],
    "wrong magic": _header(magic=b"JUNK") + bytes(32),
    "wrong version": _header(version=9) + bytes(32),
    "bad header crc": _header(crc=1234) + bytes(32),
    "huge shape": _header(d0=65535, d1=65535, d2=4, ndim=3, dtype=8, length=2**40),
    "lying length raw": _header(length=2**40),
    "lying length short": _header(length=32) + bytes(10),
    "lossless claims more": _header(codec=1, length=2**33),
    "lossless bomb": _header(
        codec=1,
        length=32,
        pcrc=zlib.crc32(b"\x05\x01\x85\x08" + struct.pack("<3i", 2**30, 2**30, 32) + bytes(16)),
    )
    + b"\x05\x01\x85\x08"
    + struct.pack("<3i", 2**30, 2**30, 32)
    + bytes(16),
    "unknown dtype": _header(dtype=77) + bytes(32),
    "unknown codec": _header(codec=9) + bytes(32),
    "unknown kind": _header(kind=7 | w.KIND_CHECKSUM) + bytes(32),
    "jpeg of uint16": _header(codec=2) + bytes(32),
    "zero side": _header(d0=0, length=0),
    "four dims": _header(ndim=4),
    "bad payload crc": _header(pcrc=99) + bytes(32),
    "crc without flag": _header(kind=w.FRAME) + bytes(32),
    "nan timestamp": _header(timestamp=float("nan")) + bytes(32),
}


def test_hostile_headers_close_the_connection_and_the_receiver_goes_on(caplog):
    good = np.arange(16, dtype=np.uint16).reshape(4, 4)
    good_msg = w.pack_header(w.FRAME, 5, 2.0, 2.0, good.dtype, "raw", good.shape, 16,
                             good.tobytes()) + good.tobytes()  # fmt: skip
    fake = FakeSender([*HOSTILE.values(), good_msg])
    tracemalloc.start()
    try:
        with caplog.at_level(logging.INFO, logger="napari_imseq.live"):
            with Receiver(fake.address, max_frame_bytes=2**20, timeout=2) as rx:
                item = rx.latest(timeout=60)
                assert item is not None, rx.status
                np.testing.assert_array_equal(item[0], good)
                assert item[1]["index"] == 5 and rx.stats["received"] == 1
                assert fake.connections == len(HOSTILE) + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        fake.close()
    assert peak < 16 * 2**20, f"peak {peak} bytes: something allocated beyond the limit"
    text = caplog.text
    for reason in ("bad magic", "version 9", "checksum mismatch", "exceeds max_frame_bytes",
                   "raw payload", "without the flag", "unknown dtype", "unknown codec", "unknown message kind",
                   "JPEG frame", "impossible frame shape", "not a finite",
                   "does not decode"):  # fmt: skip
        assert reason in text, f"no logged reason {reason!r}"


def test_random_headers_never_pass_unchecked():
    rng = np.random.default_rng(7)
    limit = 2**20
    for _ in range(3000):
        buf = bytearray(_header())
        for _ in range(rng.integers(1, 4)):  # random fields, CRC made valid again
            pos = int(rng.integers(4, 60))
            buf[pos] = int(rng.integers(0, 256))
        buf[60:] = struct.pack("<I", zlib.crc32(bytes(buf[:60])))
        try:
            h = w.parse_header(bytes(buf), limit)
        except LiveProtocolError:
            continue
        if h.kind == w.FRAME:
            assert h.nbytes <= limit and h.payload_length <= limit + 65536
            assert len(h.shape) in (2, 3) and h.dtype in w.DTYPES.values()
    for _ in range(500):
        junk = rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8).tobytes()
        with pytest.raises(LiveProtocolError):
            w.parse_header(junk, limit)


def test_malformed_receiver_is_dropped_and_others_keep_their_stream(caplog):
    frame = np.ones((8, 8), np.uint8)
    with Sender("127.0.0.1:0") as tx, Receiver(tx.address) as good:
        connected(tx)
        with caplog.at_level(logging.WARNING, logger="napari_imseq.live"):
            bad = socket.create_connection(("127.0.0.1", tx.port))
            bad.recv(w.HELLO.size)
            bad.sendall(b"GET / HTTP/1.1\r\n" * 5)
            assert wait_for(lambda: "not an imseq receiver" in caplog.text, 10)
            bad.close()
        tx.send(frame)
        assert good.latest(timeout=10) is not None and tx.receivers == 1


# ---- tokens --------------------------------------------------------------------------------------
def test_listening_off_loopback_without_token_is_refused():
    with pytest.raises(LiveAuthError, match="token"):
        Sender("0.0.0.0:0")
    with pytest.raises(LiveAuthError):
        Sender(":0")


def test_token_handshake():
    frame = np.full((8, 8), 7, np.uint8)
    with Sender("127.0.0.1:0", token="s3cret") as tx:
        right = Receiver(tx.address, token="s3cret")
        wrong = Receiver(tx.address, token="guess")
        missing = Receiver(tx.address)
        try:
            connected(tx)
            assert wait_for(lambda: "refused" in wrong.status and "refused" in missing.status)
            for _ in range(3):
                tx.send(frame)
            assert right.latest(timeout=10) is not None
            time.sleep(0.3)
            assert wrong.stats["received"] == 0 and missing.stats["received"] == 0
            assert tx.receivers == 1
        finally:
            for rx in (right, wrong, missing):
                rx.close()
    # a receiver with a token refuses a sender that cannot prove it knows it
    with Sender("127.0.0.1:0") as open_tx, Receiver(open_tx.address, token="s3cret") as rx:
        assert wait_for(lambda: "refused" in rx.status and "token" in rx.status)
        open_tx.send(frame)
        time.sleep(0.2)
        assert rx.stats["received"] == 0


def test_token_is_never_on_the_wire():
    fake = FakeSender([])
    token = "correct horse battery staple"
    try:
        with Receiver(fake.address, token=token, reconnect=False):
            wait_for(lambda: fake.auth_bytes, 10)
    finally:
        fake.close()
    # the fake sender claims no token, so the receiver refuses before sending anything
    assert all(token.encode() not in b for b in fake.auth_bytes)
    server_nonce, client_nonce = w.nonce(), w.nonce()
    proof = w.client_proof(token, server_nonce, client_nonce)
    assert token.encode() not in proof and proof != w.client_proof(
        "other", server_nonce, client_nonce
    )


# ---- soak ------------------------------------------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize(
    "seconds, shape",
    [
        (3, (256, 256)),
        pytest.param(600, (1024, 1024), marks=pytest.mark.skipif(
            os.environ.get("NAPARI_IMSEQ_LONG") != "1", reason="10-minute soak: NAPARI_IMSEQ_LONG=1"
        )),
    ],
)  # fmt: skip
def test_soak_display_at_10fps(seconds, shape):
    """A sender at 100 fps, a display at 10 fps: every frame received, the display drops the
    rest, memory stays flat (the long version checks RSS growth < 20 MB)."""
    frame = np.random.default_rng(0).integers(0, 4096, shape, dtype=np.uint16)
    with Sender("127.0.0.1:0", codec="raw") as tx, Receiver(tx.address) as rx:
        connected(tx)
        rss = []
        t0 = time.monotonic()
        next_show = t0
        sent = 0
        while time.monotonic() - t0 < seconds:
            tx.send(frame)
            sent += 1
            now = time.monotonic()
            if now >= next_show:
                rx.latest()
                next_show = now + 0.1
                if sent % 50 == 0 or not rss:
                    rss.append(_rss())
            time.sleep(max(0.0, t0 + sent / 100 - time.monotonic()))
        assert wait_for(lambda: rx.stats["received"] + tx.stats["dropped_for_receivers"] >= sent)
        s = rx.stats
        assert s["received"] + s["lost_in_transit"] == sent
        assert s["displayed"] + s["dropped_display"] in (s["received"], s["received"] - 1)
        if seconds >= 600:
            growth = max(rss[len(rss) // 10 :]) - rss[len(rss) // 10]
            print(f"soak: sent {sent}, {s}, RSS growth {growth / 2**20:.1f} MB")
            assert growth < 20 * 2**20


# ---- imseq serve -----------------------------------------------------------------------------------
def test_serve_a_file_streams_its_frames_exactly(tmp_path):
    rng = np.random.default_rng(9)
    frames = rng.integers(0, 4096, (12, 40, 56), dtype=np.uint16)
    imseq.imwrite(tmp_path / "clip.tif", frames)
    env = dict(os.environ, PYTHONPATH=os.path.abspath(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_imseq.cli", "serve", str(tmp_path / "clip.tif"),
         "--address", "127.0.0.1:0", "--codec", "lossless", "--fps", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        m = re.search(r"on 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert m, proc.stderr.read()
        with Receiver(f"127.0.0.1:{m.group(1)}") as rx:
            got = []
            for frame, meta in rx:  # ends when the file has been sent
                got.append((frame, meta["index"]))
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    # the server starts sending when the first receiver has connected, so nothing is missed
    assert [i for _, i in got] == list(range(len(frames)))
    for (frame, _), want in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame, want)


def test_serve_refuses_other_interfaces_without_token(capsys):
    from napari_imseq.cli import main

    assert main(["serve", "pattern:16x16", "--address", "0.0.0.0:0", "--count", "1"]) == 1
    assert "token" in capsys.readouterr().err
