"""Socket helpers shared by the sender and the receiver: addresses, exact reads, the loopback rule."""

from __future__ import annotations

import ipaddress
import socket
import struct

import numpy as np

from ._wire import LiveAuthError, LiveError, LiveProtocolError


class ConnectionLost(LiveError, ConnectionError):
    """The peer went away (end of file, reset, or silence beyond the timeout)."""


def parse_address(address: str | tuple[str, int]) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:5555"`` for IPv6) or ``(host, port)`` as ``(host, port)``."""
    if isinstance(address, tuple):
        host, port = address
    else:
        text = str(address).strip()
        host, sep, port = text.rpartition(":")
        if not sep:
            raise LiveError(f"address {address!r} needs a port: HOST:PORT, e.g. 127.0.0.1:5555")
        host = host.strip("[]")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise LiveError(f"address {address!r}: the port {port!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise LiveError(f"address {address!r}: the port must be 0..65535")
    return host or "0.0.0.0", port


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def require_token_off_loopback(host: str, token) -> None:
    if not token and not is_loopback(host):
        raise LiveAuthError(
            f"refusing to listen on {host!r} without a token: anyone on the network could "
            f"watch the stream. Pass token=... (imseq serve --token-file FILE, or the "
            f"IMSEQ_LIVE_TOKEN environment variable) and give the same token to the receivers, "
            f"or listen on 127.0.0.1"
        )


#: one system call (GIL released) for a whole payload where the platform allows it
_WAITALL = getattr(socket, "MSG_WAITALL", 0)


def recv_exact(sock: socket.socket, n: int, into=None) -> np.ndarray | bytearray:
    """Read exactly ``n`` bytes (the caller validated ``n``) into ``into`` or a new uint8
    array (not zero-filled first); :class:`ConnectionLost` on EOF."""
    buf = into if into is not None else np.empty(n, np.uint8)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got, _WAITALL)
        except (TimeoutError, BlockingIOError) as err:  # Python's timeout, or SO_RCVTIMEO
            raise ConnectionLost("no data within the timeout: the peer is gone or stalled") from err
        except OSError as err:
            raise ConnectionLost(str(err) or type(err).__name__) from err
        if k == 0:
            raise ConnectionLost(
                "the peer closed the connection" if got == 0 else
                f"the peer closed the connection after {got} of {n} bytes"
            )  # fmt: skip
        got += k
    return buf


def blocking_with_timeouts(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking with kernel send/receive timeouts: a whole payload then moves
    in one system call with the GIL released (a Python-level timeout makes the socket
    non-blocking, and every partial transfer would have to win the GIL back)."""
    sec = int(seconds)
    timeval = struct.pack("ll", sec, int((seconds - sec) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except OSError:  # pragma: no cover - a platform without them: Python's timeout
        sock.settimeout(seconds)
        return
    sock.settimeout(None)


def tune(sock: socket.socket) -> None:
    """No Nagle delay. The buffer sizes are left to the kernel's autotuning: fixing them
    (SO_SNDBUF/SO_RCVBUF) turns autotuning off and measured 40% slower on 6 MB frames."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


__all__ = ["ConnectionLost", "LiveProtocolError", "parse_address", "recv_exact"]
