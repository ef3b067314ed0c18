"""Time in seconds in the viewer: playback at the recording's fps and the current frame's time.

:func:`attach` hooks one viewer (idempotent; the reader calls it). For every layer that carries
``fps`` or per-frame ``timestamps`` in its metadata (our reader's layers, and layers our widgets
derive from them) it

* sets the dims slider's playback speed to the layer's fps (the play button's own setting, so
  the user can still change it),
* applies the layer's ``contrast_limits_range`` from its metadata (napari's Image layer takes
  only contrast limits when it is created, and would cap the slider at them), and
* shows the current frame's time in the status bar (a label of its own, right of napari's
  status text). The time comes from the per-frame timestamps, so a variable-frame-rate file
  shows its true times; updating it is an array lookup and a label text, never a decode.
  ``show_on_canvas(True)`` also writes it into a canvas text overlay of its own (napari's
  ``viewer.text_overlay`` is left to the user): a vispy text costs a redraw of the overlay per
  slider step (about 40-70 ms with software OpenGL), so it is off by default.

The layer that decides is the active layer when it carries time, else the top-most visible one.
Removing layers, or all of them, clears the read-out; nothing holds a layer or the viewer alive.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from ._viewers import per_viewer

OVERLAY_KEY = "napari_imseq_time"
_ATTACHED: dict[int, TimeDisplay] = {}


def frame_times(metadata: dict[str, Any], n_frames: int) -> np.ndarray | None:
    """Seconds since the first frame for each frame, or None when the layer has no time."""
    stamps = metadata.get("timestamps")
    if stamps is not None:
        t = np.asarray(stamps, dtype=np.float64).ravel()
        if t.size == n_frames and t.size and np.all(np.isfinite(t)):
            return t - t[0]
    fps = metadata.get("fps")
    if fps and fps > 0:
        return np.arange(n_frames, dtype=np.float64) / float(fps)
    return None


def format_time(seconds: float, fps: float | None) -> str:
    """``seconds`` with enough decimals to tell neighbouring frames apart.

    >>> format_time(0.6, 100.0), format_time(1 / 3, 29.97), format_time(0.0125, 2000.0)
    ('0.60 s', '0.33 s', '0.0125 s')
    """
    decimals = 3 if not fps else min(6, max(1, math.ceil(math.log10(float(fps)) - 1e-3)))
    return f"{seconds:.{decimals}f} s"


def _time_layer_info(layer: Any) -> tuple[np.ndarray, float | None] | None:
    md = getattr(layer, "metadata", None)
    if not isinstance(md, dict) or getattr(layer, "ndim", 0) < 3:
        return None
    if not ("fps" in md or "timestamps" in md) or getattr(layer, "multiscale", False):
        return None
    n = int(np.shape(layer.data)[0])
    if n == 0:
        return None
    times = frame_times(md, n)
    if times is None:
        return None
    fps = md.get("fps")
    if not fps and n > 1 and times[-1] > 0:
        fps = (n - 1) / times[-1]
    return times, (float(fps) if fps else None)


class TimeDisplay:
    """The time read-out and playback speed of one viewer."""

    def __init__(self, viewer: Any) -> None:
        from napari.components.overlays import TextOverlay

        self._viewer = weakref.ref(viewer)
        self._fps_for: tuple[int, int] | None = None  # (id(layer), axis) whose fps is set
        self.text = ""
        self.on_canvas = False
        self.overlay = TextOverlay(visible=False, position="top_left", font_size=12)
        viewer.canvas.overlays[OVERLAY_KEY] = self.overlay
        self.label = self._status_label(viewer)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._refresh)
        viewer.layers.events.moved.connect(self._refresh)
        viewer.layers.selection.events.active.connect(self._refresh)
        viewer.dims.events.current_step.connect(self._update_text)
        for layer in viewer.layers:
            self._prepare(layer)
        self._refresh()

    # ---- which layer tells the time ---------------------------------------------------------
    def reference(self) -> Any | None:
        viewer = self._viewer()
        if viewer is None:
            return None
        active = viewer.layers.selection.active
        if active is not None and _time_layer_info(active) is not None:
            return active
        for layer in reversed(viewer.layers):
            if layer.visible and _time_layer_info(layer) is not None:
                return layer
        return None

    def time_axis(self, layer: Any) -> int:
        viewer = self._viewer()
        return viewer.dims.ndim - layer.ndim if viewer is not None else 0

    def current_frame(self, layer: Any) -> int:
        viewer = self._viewer()
        coords = layer.world_to_data(viewer.dims.point)
        n = int(layer.data.shape[0])
        return int(np.clip(round(float(coords[0])), 0, n - 1))

    def current_text(self) -> str:
        layer = self.reference()
        if layer is None:
            return ""
        times, fps = _time_layer_info(layer)
        i = self.current_frame(layer)
        total = format_time(float(times[-1]), fps)
        return f"t = {format_time(float(times[i]), fps)} / {total}   frame {i}"

    # ---- events -----------------------------------------------------------------------------
    def _on_inserted(self, event: Any) -> None:
        self._prepare(event.value)
        self._refresh()

    def _prepare(self, layer: Any) -> None:
        display = (getattr(layer, "metadata", None) or {}).get("display")
        if not isinstance(display, dict) or getattr(layer, "rgb", False):
            return
        rng = display.get("contrast_limits_range")
        if rng is not None and hasattr(layer, "contrast_limits_range"):
            limits = tuple(layer.contrast_limits)
            layer.contrast_limits_range = (float(rng[0]), float(rng[1]))
            layer.contrast_limits = limits

    def _refresh(self, event: Any = None) -> None:
        layer = self.reference()
        if layer is None:
            self._fps_for = None
            self._update_text()
            return
        self._set_playback_fps(layer)
        self._update_text()

    def _update_text(self, event: Any = None) -> None:
        text = self.current_text()
        if text == self.text:
            return
        self.text = text
        if self.label is not None:
            try:
                self.label.setText(text)
                self.label.setVisible(bool(text))
            except RuntimeError:  # the window (and its status bar) is gone
                self.label = None
        if self.on_canvas:
            self.overlay.text = text
            self.overlay.visible = bool(text)

    def show_on_canvas(self, on: bool = True) -> None:
        """Also show the time in a text overlay on the canvas (it costs a redraw per step)."""
        self.on_canvas = bool(on)
        self.overlay.text = self.text if on else ""
        self.overlay.visible = bool(on and self.text)

    @staticmethod
    def _status_label(viewer: Any) -> Any | None:
        try:  # napari's status bar (a QStatusBar): a permanent label of our own
            from qtpy.QtWidgets import QLabel

            bar = viewer.window._qt_window.statusBar()
        except (AttributeError, ImportError):  # a viewer model without Qt
            return None
        label = QLabel(bar)
        label.setObjectName("napari_imseq_time")
        label.setToolTip("time of the current frame (napari-imseq)")
        label.setVisible(False)
        bar.addPermanentWidget(label)
        return label

    def _set_playback_fps(self, layer: Any) -> None:
        axis = self.time_axis(layer)
        if self._fps_for == (id(layer), axis):
            return
        _, fps = _time_layer_info(layer)
        sliders = self._sliders()
        if fps and sliders is not None and axis < len(sliders):
            sliders[axis].fps = float(fps)
            self._fps_for = (id(layer), axis)

    def _sliders(self) -> list | None:
        viewer = self._viewer()
        window = getattr(viewer, "window", None)
        try:  # the Qt dims widget: napari has no public setter for one axis' playback speed
            return window._qt_viewer.dims.slider_widgets
        except AttributeError:  # a viewer model without Qt: no playback to set
            return None

    def playback_fps(self, axis: int) -> float | None:
        sliders = self._sliders()
        return float(sliders[axis].fps) if sliders is not None and axis < len(sliders) else None


def attach(viewer: Any) -> TimeDisplay:
    """The viewer's :class:`TimeDisplay`, created on first use."""
    return per_viewer(_ATTACHED, viewer, TimeDisplay)


def attach_open_viewers() -> None:
    """Attach the time read-out and the video read-ahead to every open napari viewer (the
    reader cannot know which one it is reading for)."""
    try:
        from napari._qt.qt_main_window import _QtMainWindow

        import napari
    except ImportError:  # pragma: no cover - napari without Qt
        return
    viewers = [napari.current_viewer()]
    viewers += [w._qt_viewer.viewer for w in list(getattr(_QtMainWindow, "_instances", []))]
    from ._prefetch import attach_prefetch

    for viewer in viewers:
        if viewer is not None:
            attach(viewer)
            attach_prefetch(viewer)
