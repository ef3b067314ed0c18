"""Helpers for the live tests: bounded waits, a fake sender that speaks only the handshake."""

from __future__ import annotations

import socket
import threading
import time

from napari_imseq.live import _wire as w


def wait_for(predicate, timeout: float = 20.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


class FakeSender:
    """A loopback server that greets like a Sender (no token), then sends ``messages[k]``
    (raw bytes) to its k-th connection and closes it. Connections and what receivers sent
    in the handshake are recorded."""

    def __init__(self, messages: list[bytes]):
        self.messages = list(messages)
        self.connections = 0
        self.auth_bytes: list[bytes] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.sendall(w.HELLO.pack(w.HELLO_MAGIC, w.VERSION, 0, 0, w.nonce(), 0.0))
                    got = b""
                    while len(got) < w.AUTH.size:
                        chunk = conn.recv(w.AUTH.size - len(got))
                        if not chunk:
                            break
                        got += chunk
                    self.auth_bytes.append(got)
                    conn.sendall(w.RESULT.pack(w.RESULT_MAGIC, w.VERSION, 0, 0, bytes(32)))
                    k = self.connections
                    self.connections += 1
                    if k < len(self.messages):
                        conn.sendall(self.messages[k])
                    time.sleep(0.05)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)
