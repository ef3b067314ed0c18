"""The sending side: listen, authenticate receivers, stream each frame to all of them.

``send()`` never blocks on a receiver: a frame is encoded once and handed to one small queue
per receiver, each drained by its own thread. A receiver that cannot keep up (slow network,
stalled process) loses frames from its own queue (counted, visible to it as a gap in the frame
indices) while the others and the acquisition code go on at full speed.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from typing import Any

import numpy as np

from . import _wire as w
from ._net import (
    ConnectionLost,
    blocking_with_timeouts,
    parse_address,
    recv_exact,
    require_token_off_loopback,
    tune,
)

log = logging.getLogger("napari_imseq.live")


class _Pool:
    """Reusable payload buffers for raw frames: no fresh (zero-filled) memory per frame.
    A buffer returns when every receiver it was queued for has sent it."""

    def __init__(self, keep: int):
        self.keep = keep
        self.free: list[np.ndarray] = []
        self.lock = threading.Lock()

    def take(self, nbytes: int) -> np.ndarray:
        with self.lock:
            while self.free:
                buf = self.free.pop()
                if buf.nbytes == nbytes:
                    return buf
        return np.empty(nbytes, np.uint8)

    def give(self, buf: np.ndarray) -> None:
        with self.lock:
            if len(self.free) < self.keep:
                self.free.append(buf)


class _Message:
    """One encoded frame shared by every receiver's queue."""

    __slots__ = ("head", "payload", "size", "refs", "buf", "pool")

    def __init__(self, head: bytes, payload=b"", buf=None, pool: _Pool | None = None):
        self.head, self.payload, self.buf, self.pool = head, payload, buf, pool
        self.size = len(head) + len(payload)
        self.refs = 1  # the sender's own, dropped after offering

    def hold(self) -> None:
        with self.pool.lock if self.pool else _NOLOCK:
            self.refs += 1

    def release(self) -> None:
        if self.pool is None:
            return
        with self.pool.lock:
            self.refs -= 1
            done = self.refs == 0
        if done:
            self.pool.give(self.buf)


class _NoLock:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_NOLOCK = _NoLock()


def _send_messages(sock: socket.socket, messages: list[_Message]) -> None:
    """Every header and payload of ``messages`` in as few system calls as the kernel allows
    (one, usually): each call costs this thread a fight for the GIL with the sending code."""
    bufs = [memoryview(b).cast("B") for m in messages for b in (m.head, m.payload) if len(b)]
    while bufs:
        sent = sock.sendmsg(bufs)
        while bufs and sent >= len(bufs[0]):
            sent -= len(bufs[0])
            bufs.pop(0)
        if bufs and sent:
            bufs[0] = bufs[0][sent:]


class _Peer:
    """One connected receiver: its socket, its bounded queue and the thread that drains it."""

    def __init__(self, sender: Sender, sock: socket.socket, addr):
        self.sender, self.sock, self.addr = sender, sock, addr
        self.name = f"{addr[0]}:{addr[1]}"
        self.queue: collections.deque = collections.deque()
        self.queued_bytes = 0
        self.cond = threading.Condition()
        self.closing = False
        self.ready = False
        self.sent = 0
        self.dropped = 0
        self.thread = threading.Thread(target=self._run, name=f"imseq-live-peer-{self.name}",
                                       daemon=True)  # fmt: skip

    def offer(self, message: _Message) -> bool:
        size = message.size
        with self.cond:
            s = self.sender
            if self.closing or (self.queue and (
                len(self.queue) >= s.max_queue or self.queued_bytes + size > s.max_queue_bytes
            )):  # fmt: skip
                self.dropped += 1
                return False
            message.hold()
            self.queue.append(message)
            self.queued_bytes += size
            self.cond.notify()
        return True

    def _discard(self) -> None:
        with self.cond:
            while self.queue:
                self.queue.popleft().release()
            self.queued_bytes = 0

    def close(self, *, flush: bool) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify()
        if not flush:
            self._discard()

    def _handshake(self) -> None:
        s = self.sender
        self.sock.settimeout(s.handshake_timeout)
        server_nonce = w.nonce()
        flags = w.FLAG_TOKEN if s.token else 0
        self.sock.sendall(w.HELLO.pack(w.HELLO_MAGIC, w.VERSION, flags, 0, server_nonce,
                                       float(s.fps or 0.0)))  # fmt: skip
        magic, version, _flags, _r, mac, client_nonce = w.AUTH.unpack(
            recv_exact(self.sock, w.AUTH.size)
        )
        if magic != w.AUTH_MAGIC:
            raise w.LiveProtocolError(f"bad handshake magic {magic!r}: not an imseq receiver")
        if version != w.VERSION:
            raise w.LiveProtocolError(f"receiver speaks wire version {version}, not {w.VERSION}")
        ok = not s.token or w.same(mac, w.client_proof(s.token, server_nonce, client_nonce))
        proof = w.server_proof(s.token, server_nonce, client_nonce) if ok else bytes(32)
        self.sock.sendall(w.RESULT.pack(w.RESULT_MAGIC, w.VERSION, 0 if ok else 1, 0, proof))
        if not ok:
            raise w.LiveAuthError("wrong or missing token")

    def _run(self) -> None:
        s = self.sender
        try:
            self._handshake()
            blocking_with_timeouts(self.sock, s.send_timeout)
            self.ready = True
            log.info("live: receiver %s connected", self.name)
            while True:
                with self.cond:
                    if not self.queue and not self.closing:
                        self.cond.wait(s.heartbeat)
                    batch = list(self.queue)  # all that waits: one send for the lot
                    self.queue.clear()
                    self.queued_bytes = 0
                    if not batch:
                        batch = [_Message(w.pack_header(w.END))] if self.closing else [
                            _Message(w.pack_header(w.HEARTBEAT, sent=time.time()))
                        ]  # fmt: skip
                try:
                    _send_messages(self.sock, batch)
                finally:
                    for message in batch:
                        message.release()
                kinds = [m.head[5] & ~w.KIND_CHECKSUM for m in batch]
                self.sent += kinds.count(w.FRAME)
                if w.END in kinds:
                    break
        except (ConnectionLost, OSError, w.LiveError) as err:
            if not self.closing or not isinstance(err, (ConnectionLost, OSError)):
                log.warning("live: receiver %s disconnected: %s", self.name, err)
        finally:
            self.ready = False
            self._discard()
            try:
                self.sock.close()
            except OSError:  # pragma: no cover
                pass
            s._forget(self)


class Sender:
    """Listen on ``address`` and stream frames to every connected :class:`Receiver`.

    Parameters
    ----------
    address : str
        ``"HOST:PORT"``; port 0 lets the OS choose (read it back from :attr:`address`).
        Only loopback is allowed without a ``token``.
    codec : {"raw", "lossless", "jpeg"}
        ``raw`` sends the samples as they are; ``lossless`` compresses them exactly (Blosc2:
        byte shuffle + zstd); ``jpeg`` is lossy and only for 8-bit gray or RGB frames.
    token : str or bytes, optional
        Shared secret: receivers prove they know it (HMAC-SHA256 challenge) before they get a
        frame. It is never sent. Frames themselves are not encrypted.
    fps : float, optional
        Nominal frame rate, told to receivers (used by recordings).
    bit_depth : int, optional
        Significant bits of integer samples (12 for a 12-bit camera in uint16); receivers take
        their contrast from it. Default: the dtype's size.
    quality : int
        JPEG quality (1-100).
    checksum : bool, optional
        Send each payload's CRC-32 for the receivers to check. Default: on for the
        compressed codecs, off for raw (TCP's own checksums cover the transfer, and a CRC
        costs a pass over the frame's memory at both ends, which limits raw throughput).
    max_queue, max_queue_bytes : int
        Per receiver: frames waiting to be sent; beyond them a frame is dropped for that
        receiver only (counted in :attr:`stats`).

    Examples
    --------
    >>> with Sender("127.0.0.1:5555", codec="lossless") as tx:   # doctest: +SKIP
    ...     for frame in camera:
    ...         tx.send(frame)
    """

    def __init__(
        self,
        address: str = "127.0.0.1:5555",
        *,
        codec: str = "raw",
        token: str | bytes | None = None,
        fps: float | None = None,
        bit_depth: int | None = None,
        quality: int = 90,
        checksum: bool | None = None,
        max_queue: int = 64,
        max_queue_bytes: int = 64 * 2**20,
        max_frame_bytes: int = w.MAX_FRAME_BYTES,
        heartbeat: float = 1.0,
        handshake_timeout: float = 5.0,
        send_timeout: float = 10.0,
    ):
        if codec not in w.CODECS:
            raise w.LiveFrameError(f"codec {codec!r} is not one of {', '.join(w.CODECS)}")
        if not 1 <= int(quality) <= 100:
            raise w.LiveFrameError(f"JPEG quality {quality} is not in 1..100")
        host, port = parse_address(address)
        require_token_off_loopback(host, token)
        self.codec, self.token, self.fps, self.bit_depth = codec, token, fps, bit_depth
        self.quality = int(quality)
        self.checksum = codec != "raw" if checksum is None else bool(checksum)
        self.max_queue, self.max_queue_bytes = max(1, int(max_queue)), int(max_queue_bytes)
        self.max_frame_bytes = int(max_frame_bytes)
        self.heartbeat, self.handshake_timeout = heartbeat, handshake_timeout
        self.send_timeout = send_timeout
        self._peers: list[_Peer] = []
        self._pool = _Pool(self.max_queue + 4)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._index = 0
        self._sent_frames = 0
        self._dropped_total = 0
        self._refused = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as err:
            self._sock.close()
            raise w.LiveError(
                f"cannot listen on {host}:{port}: {err.strerror or err}; choose another port "
                f"(port 0 lets the system choose) or stop the program that uses it"
            ) from err
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        bound = self._sock.getsockname()
        self.host, self.port = bound[0], bound[1]
        self._thread = threading.Thread(target=self._accept, name="imseq-live-accept", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """``HOST:PORT`` actually listened on (the OS's port when 0 was asked for)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def receivers(self) -> int:
        """Receivers connected and authenticated now."""
        with self._lock:
            return sum(p.ready for p in self._peers)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                sock, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            tune(sock)
            peer = _Peer(self, sock, addr)
            with self._lock:
                if self._closed.is_set():
                    sock.close()
                    break
                self._peers.append(peer)
            peer.thread.start()

    def _forget(self, peer: _Peer) -> None:
        with self._lock:
            if peer in self._peers:
                self._peers.remove(peer)
                self._dropped_total += peer.dropped

    def send(self, frame: Any, timestamp: float | None = None, *, copy: bool = True) -> int:
        """Stream one frame to every connected receiver; return its index in the stream.

        Never waits for a receiver. ``timestamp``: seconds since the epoch (default: now).
        The frame is copied (or encoded) before this returns, so the caller may reuse it.
        ``copy=False`` (raw codec) skips that copy and queues the array itself: only for
        arrays nobody changes afterwards, such as the new array a reader or camera returns
        for each frame; it saves one pass over the frame's memory.
        """
        if self._closed.is_set():
            raise w.LiveError("the sender is closed; create a new Sender to stream again")
        frame = np.asarray(frame)
        w.check_frame(frame, self.codec, self.max_frame_bytes)
        now = time.time()
        ts = now if timestamp is None else float(timestamp)
        if not np.isfinite(ts):
            raise w.LiveFrameError(f"timestamp {timestamp!r} is not a finite number of seconds")
        index = self._index
        self._index += 1
        with self._lock:
            peers = [p for p in self._peers if p.ready]
        if not peers:
            return index
        buf = pool = None
        dt = frame.dtype.newbyteorder("<") if frame.dtype.itemsize > 1 else frame.dtype
        if self.codec == "raw" and not copy and frame.flags.c_contiguous and frame.dtype == dt:
            payload = frame.reshape(-1).view(np.uint8).data  # the caller's array, no copy
        elif self.codec == "raw":  # one copy, into a reused buffer
            buf, pool = self._pool.take(frame.nbytes), self._pool
            np.copyto(buf.view(dt).reshape(frame.shape), frame)
            payload = buf.data
        else:
            payload = w.encode_payload(frame, self.codec, quality=self.quality)
        bits = self.bit_depth or (frame.dtype.itemsize * 8 if frame.dtype.kind in "ui" else 0)
        head = w.pack_header(w.FRAME, index, ts, now, frame.dtype, self.codec, frame.shape,
                             min(bits, frame.dtype.itemsize * 8), payload,
                             checksum=self.checksum)  # fmt: skip
        message = _Message(head, payload, buf, pool)
        for peer in peers:
            peer.offer(message)
        message.release()
        self._sent_frames += 1
        return index

    @property
    def stats(self) -> dict:
        """Frames offered, receivers, and frames dropped for slow receivers."""
        with self._lock:
            peers = list(self._peers)
            dropped = self._dropped_total + sum(p.dropped for p in peers)
        return {
            "frames": self._index,
            "streamed": self._sent_frames,
            "receivers": sum(p.ready for p in peers),
            "dropped_for_receivers": dropped,
            "per_receiver": {p.name: {"sent": p.sent, "dropped": p.dropped} for p in peers},
        }

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), tell receivers the stream ended,
        and stop listening."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._sock.close()
        except OSError:  # pragma: no cover
            pass
        self._thread.join(timeout)
        with self._lock:
            peers = list(self._peers)
        for p in peers:
            p.close(flush=True)
        deadline = time.monotonic() + timeout
        for p in peers:
            p.thread.join(max(0.0, deadline - time.monotonic()))
            if p.thread.is_alive():  # a stalled receiver: stop waiting for it
                p.close(flush=False)
                try:
                    p.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                p.thread.join(1.0)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # pragma: no cover - best effort
        try:
            if not self._closed.is_set():
                self._closed.set()
                self._sock.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<Sender {self.address} codec={self.codec} receivers={self.receivers}>"
