"""Recording a live stream: every received frame through one of our writers, off the network
thread, from a bounded queue. When the disk cannot keep up the queue's overflow is counted and
the lost frames are listed by index: never a silent loss, never unbounded memory."""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any

import numpy as np

from .. import Writer, open_writer

log = logging.getLogger("napari_imseq.live")


def add_index(ranges: list[list[int]], index: int) -> None:
    """Append ``index`` to a sorted list of ``[first, last]`` ranges (kept short)."""
    if ranges and ranges[-1][1] + 1 == index:
        ranges[-1][1] = index
    else:
        ranges.append([index, index])


def _lower_priority(step: int = 5) -> None:
    """Nice this thread (Linux: per thread; the encoder threads it starts inherit it), so a
    slow encoder never starves the network thread and the display; the queue absorbs it."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + step))
    except (AttributeError, OSError):  # not Linux, or not allowed: keep the priority
        pass


class Recorder:
    """Write frames handed to :meth:`put` to ``path`` in a background thread.

    ``path`` takes any extension our writers know (FFV1 in ``.mkv`` by default); ``options``
    go to :func:`napari_imseq.open_writer` (``overwrite``, ``codec``, ...). The writer is
    created here, so a refused path (an existing file without ``overwrite=True``) raises at
    once in the caller's thread.
    """

    def __init__(
        self,
        path: str | os.PathLike | Writer,
        *,
        fps: float | None = None,
        max_queue: int = 512,
        max_queue_bytes: int = 512 * 2**20,
        **options: Any,
    ):
        if isinstance(path, Writer):
            self.writer = path
        else:
            path = os.fspath(path)
            if not os.path.splitext(path)[1]:
                path += ".mkv"
            self.writer = open_writer(path, fps=fps or None, **options)
        self.path = self.writer.path
        self.max_queue, self.max_queue_bytes = max(1, int(max_queue)), int(max_queue_bytes)
        self._queue: collections.deque = collections.deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._stopping = False
        self.recorded = 0
        self.dropped = 0
        self.lost: list[list[int]] = []  # frame indices lost to the disk, as [first, last] ranges
        self.error: BaseException | None = None
        self.kept: str | None = None
        self._thread = threading.Thread(target=self._run, name="imseq-live-record", daemon=True)
        self._thread.start()

    def put(self, frame: np.ndarray, index: int, timestamp: float) -> bool:
        """Queue one frame; False (and the index listed as lost) when the queue is full."""
        with self._cond:
            full = len(self._queue) >= self.max_queue or (
                self._queue and self._queued_bytes + frame.nbytes > self.max_queue_bytes
            )
            if full or self._stopping or self.error is not None:
                self.dropped += 1
                add_index(self.lost, index)
                return False
            self._queue.append((frame, index, timestamp))
            self._queued_bytes += frame.nbytes
            self._cond.notify()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait(0.5)
                if not self._queue:
                    break
                frame, index, timestamp = self._queue.popleft()
                self._queued_bytes -= frame.nbytes
            if self.error is not None:
                with self._cond:
                    self.dropped += 1
                    add_index(self.lost, index)
                continue
            try:
                self.writer.write(frame, timestamp)
                self.recorded += 1
            except Exception as err:  # disk full, a frame that does not match the first ...
                log.error("live: recording to %s failed at frame %d: %s", self.path, index, err)
                self.error = err
                with self._cond:
                    self.dropped += 1
                    add_index(self.lost, index)

    def close(self, timeout: float | None = None) -> dict:
        """Write what is queued, finalise the file and return :attr:`summary`."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # pragma: no cover - a disk that hangs
            return self.summary
        if self.error is None:
            try:
                if self.writer.count:
                    self.writer.close()
                else:
                    self.writer.abort()
            except Exception as err:
                self.error = err
        else:
            self.kept = self.writer.abort() or getattr(self.error, "filename", None)
        return self.summary

    @property
    def summary(self) -> dict:
        return {
            "path": self.path,
            "recorded": self.recorded,
            "dropped": self.dropped,
            "lost_indices": [list(r) for r in self.lost],
            "error": None if self.error is None else str(self.error),
            "done": not self._thread.is_alive(),
        }
