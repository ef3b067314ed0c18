"""The receiving side: connect (and reconnect), validate, decode, then hand each frame to
three consumers with different needs:

- display (:meth:`Receiver.latest`): one slot, the newest frame wins; a frame replaced before
  anyone took it is counted as dropped for display, so latency never grows with a slow viewer;
- iteration (``for frame, meta in receiver``): every frame in order, from a bounded queue that
  holds the network thread back when full (TCP then pushes back to the sender, which drops for
  this receiver only and the gap shows in the indices);
- recording (:class:`~napari_imseq.live._record.Recorder`): every frame, from its own bounded
  queue; overflow is counted and listed by index.

All socket work runs in one background thread; nothing here blocks a caller for longer than
the timeout it passes.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from typing import Any

import numpy as np

from . import _wire as w
from ._net import ConnectionLost, blocking_with_timeouts, parse_address, recv_exact, tune
from ._record import Recorder

log = logging.getLogger("napari_imseq.live")

_STOP = object()


class _Rate:
    """Events per second over the last ``window`` seconds (bounded memory)."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self.times: collections.deque = collections.deque(maxlen=4096)

    def tick(self, t: float) -> None:
        self.times.append(t)

    def rate(self, now: float) -> float:
        times = self.times
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) < 2:
            return 0.0
        span = max(now - times[0], 1e-9)
        return (len(times) - 1) / span if span > 0.2 else 0.0


def _percentiles(values) -> dict:
    if not values:
        return {"p50": None, "p99": None}
    arr = np.fromiter(values, float) * 1000.0
    p50, p99 = np.percentile(arr, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}


class Receiver:
    """Connect to a :class:`Sender` at ``address`` and receive its frames.

    Parameters
    ----------
    address : str
        ``"HOST:PORT"`` of the sender.
    token : str or bytes, optional
        The sender's shared secret (proven with HMAC, never sent). With a token, a sender that
        cannot prove it knows the token too is refused.
    record : path, optional
        Record every received frame to this file (FFV1 ``.mkv`` unless the extension says
        otherwise); see :meth:`start_recording`.
    reconnect : bool
        Reconnect (with back-off up to 2 s) when the sender goes away; default True.
    max_frame_bytes : int
        Largest decoded frame accepted; a bigger one closes the connection before anything
        is allocated for it.
    buffer : int
        Frames held for iteration before the network thread waits for the iterating code.
        Until iteration begins, the last ``buffer`` frames (at most ``PRE_ITER_BYTES``) are
        kept, so a loop started just after the constructor misses nothing.
    timeout : float
        Silence (no frame, no heartbeat) after which the sender is taken as gone.

    Frames are read-only numpy arrays shared by the display slot, the iteration queue and
    the recording; copy one to change it. ``meta`` holds ``index``, ``timestamp`` (seconds
    since the epoch, from the sender), ``sent`` and ``received`` (wall clock), ``latency``
    (seconds from sending to arrival; exact only when both sides share a clock), ``codec``
    and ``bit_depth``.
    """

    #: bytes of frames kept for an iteration that has not begun yet
    PRE_ITER_BYTES = 64 * 2**20

    def __init__(
        self,
        address: str = "127.0.0.1:5555",
        *,
        token: str | bytes | None = None,
        record: str | os.PathLike | None = None,
        record_options: dict | None = None,
        reconnect: bool = True,
        max_frame_bytes: int = w.MAX_FRAME_BYTES,
        buffer: int = 64,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ):
        self.host, self.port = parse_address(address)
        self.address = f"{self.host}:{self.port}"
        self.token = token
        self.reconnect = reconnect
        self.max_frame_bytes = int(max_frame_bytes)
        self.timeout, self.connect_timeout = float(timeout), float(connect_timeout)
        self.fps: float | None = None
        self.status = "connecting"
        self.connected = False
        self.last_error: str | None = None
        self.bit_depth: int | None = None
        self._closed = threading.Event()
        self._sock: socket.socket | None = None
        # display slot
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, dict] | None = None
        self._latest_taken = True
        # iteration
        self._iter_queue: collections.deque = collections.deque()
        self._iter_cond = threading.Condition()
        self._iterating = False
        self._iter_bytes = 0
        self._buffer = max(1, int(buffer))
        # recording
        self._recorder: Recorder | None = None
        self._rec_lock = threading.Lock()
        self.recording_summary: dict | None = None
        # counters
        self._received = 0
        self._displayed = 0
        self._dropped_display = 0
        self._lost_in_transit = 0
        self._rec_dropped_earlier = 0
        self._connections = 0
        self._bytes = 0
        self._last_index: int | None = None
        self._lat = collections.deque(maxlen=2000)
        self._disp_lat = collections.deque(maxlen=2000)
        self._rx_rate, self._disp_rate = _Rate(), _Rate()
        if record is not None:
            self.start_recording(record, **(record_options or {}))
        self._thread = threading.Thread(target=self._run, name="imseq-live-receive", daemon=True)
        self._thread.start()

    # ---- network thread -------------------------------------------------------------------
    def _set_status(self, text: str) -> None:
        if text != self.status:
            self.status = text
            log.info("live %s: %s", self.address, text)

    def _handshake(self, sock: socket.socket) -> None:
        magic, version, flags, _r, server_nonce, fps = w.HELLO.unpack(
            recv_exact(sock, w.HELLO.size)
        )
        if magic != w.HELLO_MAGIC:
            raise w.LiveProtocolError(
                f"bad greeting {magic!r}: {self.address} is not an imseq sender"
            )
        if version != w.VERSION:
            raise w.LiveProtocolError(
                f"the sender speaks wire version {version}, this receiver {w.VERSION}; use the "
                f"same napari-imseq version on both sides"
            )
        if self.token and not flags & w.FLAG_TOKEN:
            raise w.LiveAuthError(
                "the sender does not use a token, so it cannot prove who it is; refusing it "
                "(start it with the same token, or connect without one)"
            )
        client_nonce = w.nonce()
        mac = w.client_proof(self.token, server_nonce, client_nonce)
        sock.sendall(w.AUTH.pack(w.AUTH_MAGIC, w.VERSION, 0, 0, mac, client_nonce))
        magic, version, status, _r, proof = w.RESULT.unpack(recv_exact(sock, w.RESULT.size))
        if magic != w.RESULT_MAGIC:
            raise w.LiveProtocolError(f"bad handshake answer {magic!r}")
        if status != 0:
            raise w.LiveAuthError(
                "the sender refused this receiver: wrong or missing token (pass token=...)"
                if flags & w.FLAG_TOKEN else "the sender refused this receiver"
            )  # fmt: skip
        if self.token and not w.same(proof, w.server_proof(self.token, server_nonce, client_nonce)):
            raise w.LiveAuthError("the sender could not prove it knows the token; refusing it")
        self.fps = fps if fps > 0 and np.isfinite(fps) else None

    def _run(self) -> None:
        delay = 0.1
        while not self._closed.is_set():
            ended = False
            try:
                sock = socket.create_connection((self.host, self.port), self.connect_timeout)
            except OSError as err:
                self.last_error = f"cannot connect: {err.strerror or err}"
                self._set_status(f"waiting for the sender at {self.address} ({self.last_error})")
            else:
                self._sock = sock
                try:
                    tune(sock)
                    sock.settimeout(self.timeout)
                    self._handshake(sock)
                    blocking_with_timeouts(sock, self.timeout)
                    self._connections += 1
                    self._last_index = None
                    with self._iter_cond:  # a new stream: an old end mark is stale
                        if (
                            not self._iterating
                            and self._iter_queue
                            and self._iter_queue[-1] is _STOP
                        ):
                            self._iter_queue.pop()
                    self.connected = True
                    delay = 0.1
                    self._set_status(f"connected to {self.address}")
                    ended = self._read(sock)
                except (ConnectionLost, OSError, w.LiveError) as err:
                    if not self._closed.is_set():
                        self.last_error = str(err)
                        level = logging.WARNING if isinstance(err, w.LiveError) else logging.INFO
                        if isinstance(err, ConnectionLost):
                            level = logging.INFO
                        log.log(level, "live %s: connection closed: %s", self.address, err)
                        what = "refused" if isinstance(err, w.LiveAuthError) else "lost"
                        self._set_status(f"sender {what} ({err}); reconnecting")
                finally:
                    self.connected = False
                    self._sock = None
                    try:
                        sock.close()
                    except OSError:  # pragma: no cover
                        pass
            if ended:
                self._set_status("the sender ended the stream; waiting for it to come back")
            if not self.reconnect or self._closed.is_set():
                break
            self._closed.wait(delay)
            delay = min(2.0, delay * 2)
        with self._iter_cond:
            self._iter_queue.append(_STOP)
            self._iter_cond.notify_all()
        if not self._closed.is_set():
            self._set_status("disconnected")

    def _read(self, sock: socket.socket) -> bool:
        """Read messages until the connection ends; True when the sender ended the stream."""
        head = bytearray(w.HEADER_SIZE)
        while not self._closed.is_set():
            recv_exact(sock, w.HEADER_SIZE, head)
            header = w.parse_header(bytes(head), self.max_frame_bytes)
            if header.kind == w.HEARTBEAT:
                continue
            if header.kind == w.END:
                with self._iter_cond:
                    self._iter_queue.append(_STOP)
                    self._iter_cond.notify_all()
                return True
            payload = recv_exact(sock, header.payload_length)
            frame = w.decode_payload(header, payload)
            frame.flags.writeable = False
            self._deliver(frame, header)
        return False

    def _deliver(self, frame: np.ndarray, header: w.Header) -> None:
        now = time.time()
        index = header.index
        if self._last_index is not None and index > self._last_index + 1:
            self._lost_in_transit += index - self._last_index - 1
        self._last_index = index
        meta = {
            "index": index,
            "timestamp": header.timestamp,
            "sent": header.sent,
            "received": now,
            "latency": now - header.sent,
            "codec": header.codec,
            "bit_depth": header.bit_depth or None,
        }
        self.bit_depth = header.bit_depth or None
        self._received += 1
        self._bytes += w.HEADER_SIZE + header.payload_length
        self._lat.append(now - header.sent)
        self._rx_rate.tick(time.monotonic())
        with self._rec_lock:
            rec = self._recorder
            if rec is not None:
                rec.put(frame, index, header.timestamp)
        with self._cond:
            if not self._latest_taken:
                self._dropped_display += 1
            self._latest = (frame, meta)
            self._latest_taken = False
            self._cond.notify_all()
        with self._iter_cond:
            queue = self._iter_queue
            if self._iterating:  # hold the network back until the iterating code catches up
                while len(queue) >= self._buffer and self._iterating and not self._closed.is_set():
                    self._iter_cond.wait(0.1)
            else:  # nobody iterates yet: keep only the newest few
                while queue and (
                    len(queue) >= self._buffer
                    or self._iter_bytes + frame.nbytes > self.PRE_ITER_BYTES
                ):
                    self._pop_iter()
            queue.append((frame, meta))
            self._iter_bytes += frame.nbytes
            self._iter_cond.notify_all()

    def _pop_iter(self):
        item = self._iter_queue.popleft()
        if item is not _STOP:
            self._iter_bytes -= item[0].nbytes
        return item

    # ---- consumers --------------------------------------------------------------------------
    def latest(self, timeout: float | None = None) -> tuple[np.ndarray, dict] | None:
        """The newest ``(frame, meta)`` not returned before, or None.

        ``timeout``: seconds to wait for one (None or 0: do not wait). Frames that arrived
        after the previous call and before the newest are dropped for display (counted).
        """
        with self._cond:
            if self._latest_taken and timeout:
                self._cond.wait_for(lambda: not self._latest_taken or self._closed.is_set(),
                                    timeout)  # fmt: skip
            if self._latest_taken or self._latest is None:
                return None
            self._latest_taken = True
            frame, meta = self._latest
        now = time.time()
        self._displayed += 1
        self._disp_lat.append(now - meta["sent"])
        self._disp_rate.tick(time.monotonic())
        return frame, meta

    def __iter__(self):
        """Every frame from now on, in order, until the sender ends the stream or
        :meth:`close` is called (a connection lost by accident waits for the reconnection)."""
        with self._iter_cond:
            self._iterating = True
        try:
            while True:
                with self._iter_cond:
                    while not self._iter_queue:
                        self._iter_cond.wait(0.25)
                    item = self._pop_iter()
                    self._iter_cond.notify_all()
                if item is _STOP:
                    return
                yield item
        finally:
            with self._iter_cond:
                self._iterating = False
                self._iter_queue.clear()
                self._iter_bytes = 0
                self._iter_cond.notify_all()

    # ---- recording --------------------------------------------------------------------------
    @property
    def recording(self) -> str | None:
        """Path being recorded to, or None."""
        rec = self._recorder
        return rec.path if rec is not None else None

    def start_recording(self, path: str | os.PathLike, **options: Any) -> str:
        """Record every frame received from now on to ``path`` (FFV1 ``.mkv`` by default).

        ``options`` go to :func:`napari_imseq.open_writer` (``overwrite``, ``codec``, ...) and
        to the recorder (``max_queue``, ``max_queue_bytes``: its bounded queue)."""
        if self._recorder is not None:
            raise w.LiveError(f"already recording to {self._recorder.path}; stop that first")
        options.setdefault("fps", self.fps)
        rec = Recorder(path, **options)
        with self._rec_lock:
            self._recorder = rec
        return rec.path

    def stop_recording(self, timeout: float | None = None) -> dict | None:
        """Write what is queued, finalise the file, and return the recording's summary
        (``recorded``, ``dropped``, ``lost_indices`` as ``[first, last]`` ranges, ``error``)."""
        with self._rec_lock:
            rec, self._recorder = self._recorder, None
        if rec is None:
            return self.recording_summary
        summary = rec.close(timeout)
        self._rec_dropped_earlier += rec.dropped
        self.recording_summary = summary
        if summary["dropped"]:
            log.warning(
                "live: %d frame(s) could not be recorded to %s (the disk did not keep up): "
                "indices %s", summary["dropped"], summary["path"], summary["lost_indices"]
            )  # fmt: skip
        return summary

    # ---- state ------------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        """Counters and latencies (milliseconds) over the last 2000 frames."""
        now = time.monotonic()
        rec = self._recorder
        last = self.recording_summary or {}
        return {
            "status": self.status,
            "connected": self.connected,
            "connections": self._connections,
            "received": self._received,
            "displayed": self._displayed,
            "dropped_display": self._dropped_display,
            "lost_in_transit": self._lost_in_transit,
            "recorded": rec.recorded if rec is not None else last.get("recorded", 0),
            "dropped_record": (rec.dropped if rec is not None else 0) + self._rec_dropped_earlier,
            "lost_record_indices": [list(r) for r in rec.lost] if rec is not None
            else last.get("lost_indices", []),
            "record_queue": rec.queued if rec is not None else 0,
            "bytes_received": self._bytes,
            "fps_received": round(self._rx_rate.rate(now), 2),
            "fps_displayed": round(self._disp_rate.rate(now), 2),
            "latency_ms": _percentiles(list(self._lat)),
            "display_latency_ms": _percentiles(list(self._disp_lat)),
        }  # fmt: skip

    def close(self, timeout: float | None = 10.0) -> dict | None:
        """Disconnect and finalise a recording (returns its summary, or None)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout)
        self.connected = False
        self._set_status("closed")
        with self._iter_cond:
            self._iter_queue.append(_STOP)
            self._iter_cond.notify_all()
        return self.stop_recording(timeout)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Receiver {self.address} {self.status!r} received={self._received}>"
