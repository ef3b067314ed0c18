"""Read-ahead for video layers: while napari draws frame i, the next frame is decoded.

A slider step on a video costs the decode plus napari's slicing and drawing. Stepping or
playing forward (or backward), the frame after the current one is almost always the next one
asked for, so one background thread decodes it into the reader's frame cache while the GUI
thread draws; the next step is then a cache hit. Only the newest request is kept (a fast drag
never queues work), only layers of video files (``metadata["codec"]``) are read ahead (SEQ and
TIFF frames are single reads already), and a failure is silent: the GUI thread's own read
reports it.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

from ._viewers import per_viewer


class Prefetcher:
    """One read-ahead thread for one viewer, started on first use."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = weakref.ref(viewer)
        self._last: dict[int, int] = {}  # id(layer) -> last frame shown, for the direction
        self._want: tuple[Any, int] | None = None  # (weakref to layer data, frame)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.done = 0  # frames read ahead (for tests and benchmarks)
        viewer.dims.events.current_step.connect(self._on_step)

    def _on_step(self, event: Any = None) -> None:
        viewer = self._viewer()
        if viewer is None:
            return
        for layer in reversed(viewer.layers):
            md = getattr(layer, "metadata", None)
            if not layer.visible or not isinstance(md, dict) or not md.get("codec"):
                continue
            if getattr(layer, "multiscale", False) or layer.ndim < 3:
                continue
            n = int(np.shape(layer.data)[0])
            i = int(np.clip(round(float(layer.world_to_data(viewer.dims.point)[0])), 0, n - 1))
            prev = self._last.get(id(layer))
            self._last[id(layer)] = i
            step = -1 if prev is not None and i < prev else 1
            j = i + step
            if 0 <= j < n:
                self._request(layer.data, j)
            return  # the top-most video layer only: one decoder's worth of work

    def _request(self, data: Any, index: int) -> None:
        with self._cond:
            self._want = (data, index)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="imseq-read-ahead", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._want is None:
                    if self._viewer() is None:
                        return
                    self._cond.wait(timeout=5.0)
                data, index = self._want
                self._want = None
            try:
                np.asarray(data[index])  # lands in the reader's frame cache
                self.done += 1
            except Exception:  # the GUI thread's own read of this frame reports errors
                pass
            del data


_ATTACHED: dict[int, Prefetcher] = {}


def attach_prefetch(viewer: Any) -> Prefetcher:
    """The viewer's :class:`Prefetcher`, created on first use."""
    return per_viewer(_ATTACHED, viewer, Prefetcher)
