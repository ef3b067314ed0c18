"""Live streaming: send frames over TCP, show the newest in napari, record every one.

    from napari_imseq.live import Sender, Receiver

    with Sender("127.0.0.1:5555", codec="lossless") as tx:      # acquisition side
        for frame in camera:
            tx.send(frame)

    with Receiver("127.0.0.1:5555", record="run.mkv") as rx:     # viewer / recorder side
        item = rx.latest(timeout=1.0)                            # newest frame, or None
        for frame, meta in rx:                                   # or every frame, in order
            ...

Wire format, transport choice and security: docs/live.md. Nothing is pickled.
"""

from ._net import ConnectionLost
from ._receiver import Receiver
from ._record import Recorder
from ._sender import Sender
from ._wire import (
    CODECS,
    MAX_FRAME_BYTES,
    LiveAuthError,
    LiveError,
    LiveFrameError,
    LiveProtocolError,
)

__all__ = [
    "CODECS",
    "MAX_FRAME_BYTES",
    "ConnectionLost",
    "LiveAuthError",
    "LiveError",
    "LiveFrameError",
    "LiveProtocolError",
    "Receiver",
    "Recorder",
    "Sender",
]
