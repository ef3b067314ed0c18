"""Frame sources for ``imseq serve``: any readable file, an OpenCV camera, a synthetic pattern.

Each source is an iterator of ``(frame, timestamp_or_None)`` with ``fps`` and ``bit_depth``
attributes; :func:`serve` paces it and hands it to a :class:`~napari_imseq.live.Sender`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator

import numpy as np

from ._sender import Sender
from ._wire import LiveError


class PatternSource:
    """A moving test pattern: diagonal ramp, a bright square that travels, the frame number
    as a bar code in the first row, and a little noise (so compression has work to do)."""

    reuses_arrays = False

    def __init__(self, shape=(1024, 1024), dtype="uint16", bit_depth=12, fps=30.0, seed=0):
        self.shape, self.dtype, self.fps = tuple(shape), np.dtype(dtype), float(fps)
        self.bit_depth = bit_depth if self.dtype.kind in "ui" else 0
        top = (2**self.bit_depth - 1) if self.dtype.kind in "ui" else 1.0
        h, w = self.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        self._ramp = (xx + yy) / max(h + w - 2, 1) * top * 0.6
        self._top = top
        self._rng = np.random.default_rng(seed)
        self._noise = self._rng.normal(0, top * 0.01, (h, w))

    def __iter__(self) -> Iterator[tuple[np.ndarray, float | None]]:
        h, w = self.shape[:2]
        side = max(4, min(h, w) // 8)
        for i in itertools.count():
            img = self._ramp + np.roll(self._noise, i * 7, axis=1)
            y = (i * 3) % max(h - side, 1)
            x = (i * 5) % max(w - side, 1)
            img[y : y + side, x : x + side] = self._top * 0.95
            bits = [(i >> b) & 1 for b in range(min(32, w // 4))]
            img[0, : 4 * len(bits)] = np.repeat(bits, 4) * self._top
            img = np.clip(img, 0, self._top)
            frame = img.astype(self.dtype)
            if len(self.shape) == 3:
                frame = np.repeat(frame[..., None], self.shape[2], axis=2)
                frame[..., 0] = frame[..., 0][:, ::-1]
            yield frame, None


class FileSource:
    """Frames of any file :func:`napari_imseq.open_sequence` reads, with its timestamps."""

    reuses_arrays = False  # every frame read is a new array: sent without a copy

    def __init__(self, path: str, *, loop: bool = False):
        from .. import open_sequence

        self.seq = open_sequence(path)
        self.loop = loop
        self.fps = self.seq.fps or 30.0
        self.bit_depth = self.seq.bit_depth

    def __iter__(self):
        n = len(self.seq)
        while True:
            for i, frame in enumerate(self.seq.iter_frames()):
                yield frame, None
                if i >= n - 1:
                    break
            if not self.loop:
                return


class CameraSource:
    """An OpenCV camera (``camera`` or ``camera:N``); BGR frames are sent as RGB."""

    reuses_arrays = False

    def __init__(self, number: int = 0):
        import cv2

        self.cap = cv2.VideoCapture(number)
        if not self.cap.isOpened():
            raise LiveError(
                f"camera {number}: OpenCV cannot open it (no camera, or it is in use); try "
                f"another number (camera:1) or stream a file or the test pattern"
            )
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and math.isfinite(fps) and fps > 0 else 30.0
        self.bit_depth = 8
        self._cv2 = cv2

    def __iter__(self):
        try:
            while True:
                ok, frame = self.cap.read()
                if not ok:
                    return
                if frame.ndim == 3:
                    frame = self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)
                yield frame, time.time()
        finally:
            self.cap.release()


def open_source(spec: str, *, loop: bool = False, shape=None, dtype=None, fps=None):
    """``pattern[:HxW]``, ``camera[:N]`` or a path."""
    if spec == "pattern" or spec.startswith("pattern:"):
        size = spec.partition(":")[2]
        if size:
            try:
                h, w = (int(v) for v in size.lower().split("x"))
            except ValueError:
                raise LiveError(
                    f"{spec!r}: the pattern size is HxW, e.g. pattern:1024x1024"
                ) from None
            shape = (h, w) + tuple((shape or ())[2:])
        dt = np.dtype(dtype or "uint16")
        bits = 12 if dt == np.uint16 else dt.itemsize * 8
        return PatternSource(shape or (1024, 1024), dt, bits, fps or 30.0)
    if spec == "camera" or spec.startswith("camera:"):
        number = spec.partition(":")[2] or "0"
        return CameraSource(int(number))
    return FileSource(spec, loop=loop)


def serve(
    source,
    sender: Sender,
    *,
    fps: float | None = None,
    count: int | None = None,
    transform: Callable | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Send ``source``'s frames at ``fps`` (default: the source's); return frames sent."""
    rate = fps or getattr(source, "fps", None) or 30.0
    reused = getattr(source, "reuses_arrays", True)  # else each frame is a new array
    period = 1.0 / rate
    start = time.monotonic()
    sent = 0
    for i, (frame, ts) in enumerate(source):
        if count is not None and sent >= count:
            break
        if stop is not None and stop():
            break
        if transform is not None:
            frame = transform(frame, index=i, timestamp=ts)
        delay = start + i * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:  # far behind (slow source): do not burst to catch up
            start = time.monotonic() - i * period
        sender.send(frame, ts, copy=not reused)
        sent += 1
    return sent
