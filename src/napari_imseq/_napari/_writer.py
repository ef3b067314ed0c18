"""npe2 writer (File > Save Layers): an image layer to any format of ``napari_imseq``, streamed.

napari calls a writer hook synchronously on the GUI thread (``QtViewer._save_layers_dialog`` ->
``layers.save`` -> ``npe2.write_layers`` -> this function) and only uses the returned paths
(the save history; an empty list is reported as a failure). It offers no progress and no
cancel, so:

* **short jobs** (in-memory data, or lazy data under :data:`BACKGROUND_BYTES` that is read
  straight from an imseq file) are written here, before returning, as before;
* **long jobs**, when napari runs with its GUI, are handed to the *Export movie* dock widget
  (opened if needed) which streams them in a worker thread with progress in the widget and in
  napari's activity dock, and a Cancel button; this function returns the path at once and a
  notification says so. The file appears under its name only when complete (``NAME.partial``
  meanwhile; a cancelled or failed save leaves only the partial file).

Long means more than :data:`BACKGROUND_BYTES` of frames, or a lazy layer that is not a plain
imseq file (processed layers cost an unknown time per frame) with more than
:data:`BACKGROUND_FRAMES` frames. Scripts that need the file when the call returns use
``napari_imseq.export(layer, path, mode="data")``, which blocks.

Formats that hold only 8 bits (.mp4, .webm, .gif) receive what the viewer shows: the layer's
contrast limits map wider data to 8 bits. fps is the layer's recording rate; when the layer
has none, :data:`~napari_imseq.export.DEFAULT_FPS` is used and a notification says so (never a
silent 1 fps).
"""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..export import DEFAULT_FPS, backing_sequence
from ..io._writer import imwrite

_EIGHT_BIT_EXTENSIONS = (".mp4", ".m4v", ".webm", ".gif")
#: frames larger than this (in bytes, in total) are saved in the background from the GUI
BACKGROUND_BYTES = 256 * 2**20
#: processed lazy layers longer than this are saved in the background from the GUI
BACKGROUND_FRAMES = 100


def _options(path: str, data: Any, meta: dict) -> tuple[dict[str, Any], bool]:
    md = meta.get("metadata") or {}
    options: dict[str, Any] = {"overwrite": True}  # napari's save dialog asked already
    fps = md.get("fps")
    defaulted = not fps
    options["fps"] = float(fps) if fps else DEFAULT_FPS
    if md.get("bit_depth") and path.lower().endswith(".seq"):
        options["bit_depth"] = int(md["bit_depth"])
    if path.lower().endswith(_EIGHT_BIT_EXTENSIONS) and np.dtype(data.dtype) != np.uint8:
        lo, hi = meta.get("contrast_limits") or (0, 1)
        options["display_range"] = (float(lo), float(hi))
    return options, defaulted


def is_long(data: Any) -> bool:
    """True when a save of ``data`` should not run on the GUI thread."""
    nbytes = int(np.prod(data.shape, dtype=np.int64)) * np.dtype(data.dtype).itemsize
    if nbytes > BACKGROUND_BYTES:
        return True
    lazy = hasattr(data, "dask")
    return lazy and backing_sequence(data) is None and data.shape[0] > BACKGROUND_FRAMES


def _gui_viewer() -> Any:
    """The current napari viewer when this runs on the GUI thread of a live napari."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        from qtpy.QtWidgets import QApplication

        import napari
    except ImportError:  # pragma: no cover - napari is installed with the plugin
        return None
    if QApplication.instance() is None:
        return None
    viewer = napari.current_viewer()
    return viewer if viewer is not None and getattr(viewer, "window", None) is not None else None


def export_widget(viewer: Any) -> Any:
    """The viewer's *Export movie* dock widget, added if it is not there yet."""
    try:
        _, widget = viewer.window.add_plugin_dock_widget("napari-imseq", "Export movie")
    except Exception:  # pragma: no cover - a viewer without our manifest registered
        return None
    return widget


def _notify(text: str) -> None:
    try:
        from napari.utils.notifications import show_info

        show_info(text)
    except Exception:  # pragma: no cover - notifications are a courtesy
        pass


def write_image(path: str, data: Any, meta: dict) -> list[str]:
    if isinstance(data, list):  # multiscale: the full-resolution level
        data = data[0]
    options, defaulted = _options(path, data, meta)
    if getattr(data, "ndim", 0) == 2 or (meta.get("rgb") and data.ndim == 3):
        data = data[np.newaxis]  # a single image is a one-frame sequence
    name = os.path.basename(path)
    fps_note = (
        f" No frame rate is recorded for this layer: written at {DEFAULT_FPS:g} fps (set one in "
        f"the Export movie widget to change it)."
        if defaulted
        else ""
    )
    viewer = _gui_viewer() if is_long(data) else None
    widget = export_widget(viewer) if viewer is not None else None
    if widget is not None:
        if widget.running:
            raise OSError(
                f"{name}: an export is running in the Export movie panel; wait for it or cancel "
                f"it, then save again"
            )
        layer = SimpleNamespace(
            data=data, name=str(meta.get("name") or name), metadata=dict(meta.get("metadata") or {}),
            rgb=bool(meta.get("rgb")), multiscale=False, _type_string="image",
            contrast_limits=meta.get("contrast_limits"),
        )  # fmt: skip
        # export() takes fps and per-frame timestamps from the layer's metadata itself
        opts = {k: v for k, v in options.items() if k != "fps"}
        widget.start_save(layer, os.path.abspath(path), {"mode": "data", **opts})
        _notify(
            f"Saving {name} in the background: progress and Cancel in the Export movie panel "
            f"(and the activity dock). The file is {name}.partial until it is complete." + fps_note
        )
        return [os.path.abspath(path)]
    writer = imwrite(path, data, **options)
    if defaulted:
        _notify(f"Saved {name}." + fps_note)
    return [os.fspath(writer.path)]
