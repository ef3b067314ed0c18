"""Socket helpers shared by the sender and the receiver: addresses, exact reads, the loopback rule."""

from __future__ import annotations

import ipaddress
import socket

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


def recv_exact(sock: socket.socket, n: int, into: bytearray | None = None) -> bytearray:
    """Read exactly ``n`` bytes (the caller validated ``n``); :class:`ConnectionLost` on EOF."""
    buf = into if into is not None else bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got)
        except TimeoutError as err:
            raise ConnectionLost(f"no data for {sock.gettimeout():g} s") from err
        except OSError as err:
            raise ConnectionLost(str(err) or type(err).__name__) from err
        if k == 0:
            raise ConnectionLost(
                "the peer closed the connection" if got == 0 else
                f"the peer closed the connection after {got} of {n} bytes"
            )  # fmt: skip
        got += k
    return buf


def tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 2**20)
        except OSError:  # pragma: no cover - a kernel limit
            pass


__all__ = ["ConnectionLost", "LiveProtocolError", "parse_address", "recv_exact"]
