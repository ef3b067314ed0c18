"""Dock widget: several layers or files side by side, in sync, as one lazy mosaic layer.

The widget arranges :func:`napari_imseq.mosaic` and nothing else: which sources (image layers
of the viewer, files added with *Add files...*), their time offsets and labels, grid, cell,
gap, fit, sync mode, span, output fps. Every change rebuilds the mosaic off the GUI thread
(opening files, reading the current frame's tiles) and then creates the one mosaic layer, or
updates it in place: the layout shows at once on the current frame, and the layer stays a
lazy dask array over the mosaic (frames are composed when napari shows them).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..io._base import Sequence
from ..io.array import ArraySequence
from ..io.display import frame_display_range
from ..mosaic import FITS, OUTSIDE, PROMOTIONS, SPANS, SYNC_MODES, MosaicSequence, mosaic

#: name of the layer the widget makes (made unique by napari if taken)
LAYER_NAME = "mosaic"
GRAYS = ["replicate", "gray", "viridis", "magma", "inferno", "green", "magenta", "cyan"]
_COL_NAME, _COL_OFFSET, _COL_FPS, _COL_LABEL, _COL_POSITION, _COL_BITS = 0, 1, 2, 3, 4, 5


def parse_position(text: str, name: str) -> tuple[int, ...] | None:
    """A table cell's position: empty (None), ``y,x`` or ``y,x,h,w`` in whole pixels."""
    text = text.strip()
    if not text:
        return None
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) not in (2, 4):
        raise ValueError(
            f"position {text!r} of {name} is not 'y,x' or 'y,x,height,width' in whole pixels"
        )
    return values


def parse_bits(text: str, name: str) -> int | str | None:
    """A bit depth cell: empty (the source's own), ``estimate`` or a whole number of bits."""
    text = text.strip().lower()
    if not text or text == "estimate":
        return text or None
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"bits {text!r} of {name} is not a whole number of bits or 'estimate' (empty: its own)"
        ) from None


def layer_source(layer) -> ArraySequence:
    """An image layer's frames as a Sequence: its (lazy) data with the fps, timestamps and
    bit depth its metadata records."""
    if getattr(layer, "multiscale", False):
        raise ValueError(f"layer {layer.name!r} is multiscale; mosaics take single-scale layers")
    md = layer.metadata or {}
    ts = md.get("timestamps")
    if ts is not None and len(ts) != layer.data.shape[0]:
        ts = None  # the metadata belongs to other frames (a layer edited since): not used
    bits = md.get("bit_depth")
    full = np.dtype(layer.data.dtype).itemsize * 8
    return ArraySequence(
        layer.data, fps=md.get("fps") or None, timestamps=ts, name=layer.name,
        bit_depth=bits if isinstance(bits, int) and 0 < bits <= full else None,
    )  # fmt: skip


class MosaicWidget(QWidget):
    """Plugins > napari-imseq > Mosaic; ``napari_viewer`` is injected by napari."""

    #: wait this long after the last change before rebuilding (typing in a field)
    debounce_ms = 150

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = None  # the one mosaic layer
        self.mosaic: MosaicSequence | None = None
        self.last_error: BaseException | None = None
        self._files: dict[str, Sequence] = {}  # files the widget opened (closed on cleanup)
        self._worker = None
        self._pending: dict | None = None
        self._closed = False
        self._filling = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.update_mosaic)

        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(
            ["source", "offset (s)", "fps", "label", "position", "bits"]
        )
        self.table.setToolTip(
            "tick the sources; offset: seconds added to its clock; fps: its frame rate when it "
            "states none or a wrong one (empty: its own); label: text drawn in its cell; "
            "position: 'y,x' (its own size) or 'y,x,height,width' in pixels, given for every "
            "ticked source to place them explicitly instead of on the grid; bits: its "
            "significant bit depth when it states none (a 16-bit TIFF whose data uses 14), "
            "'estimate' to estimate it from 16 frames, empty: its own"
        )
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(110)
        self.add_files_button = QPushButton("Add files...")
        self.grid = QLineEdit("auto")
        self.grid.setToolTip("rows x columns, e.g. 1x3; 'auto' for near-square")
        self.cell = QLineEdit("auto")
        self.cell.setToolTip("cell height x width in pixels; 'auto': the largest frame")
        self.gap = QSpinBox()
        self.gap.setRange(0, 10000)
        self.fit = QComboBox()
        self.fit.addItems(list(FITS))
        self.interpolation = QComboBox()
        self.interpolation.addItems(["area", "linear", "cubic", "nearest"])
        self.sync = QComboBox()
        self.sync.addItems(list(SYNC_MODES))
        self.span = QComboBox()
        self.span.addItems(list(SPANS))
        self.outside = QComboBox()
        self.outside.addItems(list(OUTSIDE))
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 1e6)
        self.fps.setDecimals(3)
        self.fps.setSpecialValueText("fastest source")
        self.labels = QCheckBox("names")
        self.time_labels = QCheckBox("time stamps")
        self.gray = QComboBox()
        self.gray.addItems(GRAYS)
        self.gray.setToolTip("gray tiles in a colour mosaic: replicated, or through a colormap")
        self.promote = QComboBox()
        self.promote.addItems(list(PROMOTIONS))
        self.promote.setToolTip(
            "tiles of fewer bits beside deeper ones: scale (span the deepest tile's range, "
            "invertible) or keep (values as they are: 8-bit tiles look dim)"
        )
        self.cache = QLineEdit("")
        self.cache.setPlaceholderText("none (composed frames not kept)")
        self.cache.setToolTip(
            "a folder for a zarr store of the frames composed so far: scrubbing back reads "
            "them from there (one store per mosaic, never overwritten)"
        )
        self.cache_button = QPushButton("...")
        self.update_button = QPushButton("Create / update mosaic layer")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow(self.table)
        form.addRow(self.add_files_button)
        form.addRow("Grid", self.grid)
        cells = QHBoxLayout()
        cells.addWidget(self.cell)
        cells.addWidget(QLabel("gap"))
        cells.addWidget(self.gap)
        form.addRow("Cell", cells)
        fits = QHBoxLayout()
        fits.addWidget(self.fit)
        fits.addWidget(self.interpolation)
        form.addRow("Fit", fits)
        form.addRow("Sync", self.sync)
        spans = QHBoxLayout()
        spans.addWidget(self.span)
        spans.addWidget(self.outside)
        form.addRow("Span", spans)
        form.addRow("fps", self.fps)
        labels = QHBoxLayout()
        labels.addWidget(self.labels)
        labels.addWidget(self.time_labels)
        form.addRow("Labels", labels)
        form.addRow("Gray in colour", self.gray)
        form.addRow("Fewer bits", self.promote)
        caches = QHBoxLayout()
        caches.addWidget(self.cache)
        caches.addWidget(self.cache_button)
        form.addRow("Cache folder", caches)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.update_button)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.add_files_button.clicked.connect(self._add_files_dialog)
        self.cache_button.clicked.connect(self._cache_dialog)
        self.update_button.clicked.connect(self.update_mosaic)
        self.table.itemChanged.connect(self._changed)
        for edit in (self.grid, self.cell):
            edit.textChanged.connect(self._changed)
        self.cache.editingFinished.connect(self._changed)  # not on every key: a folder is made
        boxes = (self.fit, self.interpolation, self.sync, self.span, self.outside, self.gray,
                 self.promote)  # fmt: skip
        for box in boxes:
            box.currentTextChanged.connect(self._changed)
        for spin in (self.gap, self.fps):
            spin.valueChanged.connect(self._changed)
        for check in (self.labels, self.time_labels):
            check.toggled.connect(self._changed)
        self._connections = [
            (self.viewer.layers.events.inserted, self._refresh_layers),
            (self.viewer.layers.events.removed, self._on_removed),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)
        from ._time import attach_open_viewers

        attach_open_viewers()  # the mosaic layer's time read-out and playback at its fps
        self._refresh_layers()

    # ---- sources -----------------------------------------------------------------------------
    def _candidate_layers(self) -> list:
        from napari.layers import Image

        out = []
        for layer in self.viewer.layers:
            if not isinstance(layer, Image) or layer is self.layer:
                continue
            if getattr(layer, "multiscale", False):
                continue
            if layer.data.ndim - (1 if layer.rgb else 0) < 3:
                continue  # a single image has no time axis
            out.append(layer)
        return out

    def _rows(self) -> list[tuple[str, str]]:
        return [
            self.table.item(r, _COL_NAME).data(Qt.ItemDataRole.UserRole)
            for r in range(self.table.rowCount())
        ]

    def _add_row(self, key: tuple[str, str], text: str, checked: bool) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        item = QTableWidgetItem(text)
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
        item.setData(Qt.ItemDataRole.UserRole, key)
        item.setToolTip(key[1])
        self.table.setItem(r, _COL_NAME, item)
        self.table.setItem(r, _COL_OFFSET, QTableWidgetItem("0"))
        self.table.setItem(r, _COL_FPS, QTableWidgetItem(""))
        self.table.setItem(r, _COL_LABEL, QTableWidgetItem(""))
        self.table.setItem(r, _COL_POSITION, QTableWidgetItem(""))
        self.table.setItem(r, _COL_BITS, QTableWidgetItem(""))

    def _refresh_layers(self, *_: Any) -> None:
        """Rows for the viewer's image layers (kept: checks, offsets, labels) and files."""
        layers = self._candidate_layers()
        names = [layer.name for layer in layers]
        # another mosaic (its metadata lists tiles) is offered but not ticked
        nested = {layer.name for layer in layers if "tiles" in (layer.metadata or {})}
        self._filling = True
        try:
            for r in reversed(range(self.table.rowCount())):
                kind, name = self.table.item(r, _COL_NAME).data(Qt.ItemDataRole.UserRole)
                if kind == "layer" and name not in names:
                    self.table.removeRow(r)
            have = set(self._rows())
            for name in names:
                if ("layer", name) not in have:
                    self._add_row(("layer", name), name, checked=name not in nested)
        finally:
            self._filling = False

    def add_files(self, paths: list[str | os.PathLike]) -> None:
        """Add files as sources (opened when the mosaic is built, off the GUI thread)."""
        have = set(self._rows())
        self._filling = True
        try:
            for p in paths:
                path = os.path.abspath(os.fspath(p))
                if ("file", path) not in have:
                    self._add_row(("file", path), os.path.basename(path), checked=True)
        finally:
            self._filling = False
        self._changed()

    def _add_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add recordings to the mosaic")
        if paths:
            self.add_files(paths)

    def _cache_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the mosaic's frame cache")
        if path:
            self.cache.setText(path)
            self._changed()

    def set_row(self, name: str, *, use: bool | None = None, offset: float | None = None,
                fps: float | None = None, label: str | None = None,
                position: Any = None, bits: int | str | None = None) -> None:  # fmt: skip
        """Set a source's check, offset (seconds), rate, label text, position (``(y, x)``,
        ``(y, x, h, w)`` or ``""`` for none) or bit depth (a number, ``"estimate"`` or ``""``
        for its own), by its shown name."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, _COL_NAME).text() != name:
                continue
            if use is not None:
                state = Qt.CheckState.Checked if use else Qt.CheckState.Unchecked
                self.table.item(r, _COL_NAME).setCheckState(state)
            if offset is not None:
                self.table.item(r, _COL_OFFSET).setText(repr(float(offset)))
            if fps is not None:
                self.table.item(r, _COL_FPS).setText(repr(float(fps)) if fps else "")
            if label is not None:
                self.table.item(r, _COL_LABEL).setText(label)
            if position is not None:
                text = ",".join(str(int(v)) for v in position) if position != "" else ""
                self.table.item(r, _COL_POSITION).setText(text)
            if bits is not None:
                self.table.item(r, _COL_BITS).setText(str(bits))
            return
        raise KeyError(f"no source named {name!r} in the mosaic widget")

    # ---- building ----------------------------------------------------------------------------
    def _changed(self, *_: Any) -> None:
        if self._filling or self._closed:
            return
        self._timer.start(self.debounce_ms)

    def request(self) -> dict[str, Any]:
        """What the mosaic is made of (read on the GUI thread; the worker builds it)."""
        sources, offsets, rates, labels, positions, depths = [], [], [], [], [], []
        for r in range(self.table.rowCount()):
            item = self.table.item(r, _COL_NAME)
            if item.checkState() != Qt.CheckState.Checked:
                continue
            kind, key = item.data(Qt.ItemDataRole.UserRole)
            if kind == "layer":
                if key not in self.viewer.layers:
                    continue
                sources.append(layer_source(self.viewer.layers[key]))
            else:
                sources.append(("file", key))
            text = self.table.item(r, _COL_OFFSET).text().strip() or "0"
            try:
                offsets.append(float(text))
            except ValueError:
                raise ValueError(
                    f"offset {text!r} of {item.text()} is not a number of seconds"
                ) from None
            text = self.table.item(r, _COL_FPS).text().strip()
            try:
                rates.append(float(text) if text and float(text) != 0 else None)
            except ValueError:
                raise ValueError(
                    f"fps {text!r} of {item.text()} is not a number (empty: its own rate)"
                ) from None
            labels.append(self.table.item(r, _COL_LABEL).text().strip() or None)
            positions.append(parse_position(self.table.item(r, _COL_POSITION).text(), item.text()))
            depths.append(parse_bits(self.table.item(r, _COL_BITS).text(), item.text()))
        if not sources:
            raise ValueError("choose at least one source: tick a layer or add files")
        placed = [p is not None for p in positions]
        if any(placed) and not all(placed):
            raise ValueError(
                "give a position to every ticked source (explicit placement), or to none (grid)"
            )
        use_names = self.labels.isChecked()
        options: dict[str, Any] = {
            "grid": self.grid.text().strip() or None,
            "gap": self.gap.value(),
            "fit": self.fit.currentText(),
            "interpolation": self.interpolation.currentText(),
            "sync": self.sync.currentText(),
            "span": self.span.currentText(),
            "outside": self.outside.currentText(),
            "fps": self.fps.value() or None,
            "offsets": offsets,
            "source_fps": rates,
            "labels": [t if t else (True if use_names else None) for t in labels],
            "time_labels": self.time_labels.isChecked(),
            "gray": self.gray.currentText(),
            "promote": self.promote.currentText(),
            "bit_depths": depths,
            "recent": 2,  # the frame composed in the worker is shown without composing again
        }
        cell = self.cell.text().strip()
        if cell and cell.lower() != "auto":
            options["cell"] = cell
        if all(placed):  # explicit positions replace the grid (and its cell and gap)
            options["positions"] = positions
            options["grid"] = None
        cache = self.cache.text().strip()
        if cache:
            options["cache"] = os.path.expanduser(cache)
        return {"sources": sources, "options": options, "index": self._current_index()}

    def _current_index(self) -> int:
        step = self.viewer.dims.current_step
        return int(step[0]) if len(step) else 0

    def _build(self, req: dict[str, Any]) -> tuple:
        """In the worker: open files, make the mosaic, compose the current frame."""
        start = time.perf_counter()
        sources = []
        for src in req["sources"]:
            if isinstance(src, tuple):
                path = src[1]
                seq = self._files.get(path)
                if seq is None or seq.closed:
                    from ..io._registry import open_sequence

                    seq = self._files[path] = open_sequence(path)
                src = seq
            sources.append(src)
        opts = dict(req["options"])
        names = [os.path.basename(s.path) if not isinstance(s, ArraySequence) else s.path
                 for s in sources]  # fmt: skip
        opts["labels"] = [n if t is True else t for t, n in zip(opts["labels"], names, strict=True)]
        m = mosaic(sources, **opts)
        data = m.to_dask()  # its name hashes in-memory layers' data: here, not on the GUI thread
        k = min(max(req["index"], 0), len(m) - 1)
        frame = m[k]  # composed here, kept by the mosaic: napari shows it without waiting
        return m, data, k, frame, time.perf_counter() - start

    def update_mosaic(self) -> None:
        """Rebuild the mosaic from the widget's settings, off the GUI thread."""
        self._timer.stop()
        if self._closed:
            return
        try:
            req = self.request()
        except Exception as err:
            self._error(err)
            return
        if self._worker is not None:  # one build at a time; only the newest waits
            self._pending = req
            return
        from napari.qt.threading import create_worker

        worker = create_worker(self._build, req, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._done)
        worker.errored.connect(self._failed)
        self._worker = worker
        self.status.setText("composing...")
        self.status.setStyleSheet("")
        worker.start()

    def _next(self) -> bool:
        self._worker = None
        pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self._pending = None
            self.update_mosaic()
            return True
        return False

    def _failed(self, err: BaseException) -> None:
        if not self._next():
            self._error(err)

    def _done(self, result: tuple) -> None:
        m, data, k, frame, seconds = result
        if self._next() or self._closed:
            m.close()
            return
        self._show(m, data, frame, k)
        h, w = m.frame_shape[:2]
        grid = "x".join(map(str, m.grid)) if m.grid else "positions"
        if m.cache_path:
            grid += f", cache {m.cache_path}"
        self.status.setText(
            f"{len(m.sources)} tiles ({grid}), {w}x{h} {m.dtype}, {len(m)} frames at "
            f"{m.fps:.4g} fps; frame {k} composed in {seconds * 1000:.0f} ms"
        )
        self.last_error = None

    def _show(self, m: MosaicSequence, data: Any, frame: np.ndarray, k: int = 0) -> None:
        # from the frame just composed (no further reads): a 16-bit mosaic of 8-bit videos
        # would show black with limits at its bit depth
        # (without the alpha of an RGBA mosaic: opacity at the type's top, not a value)
        colour = frame[..., :3] if m.rgb and frame.shape[-1] == 4 else frame
        display = frame_display_range(colour, m.bit_depth, rgb=m.rgb)
        limits = display.limits
        md = {k: v for k, v in m.metadata.items() if k != "source"}
        old, self.mosaic = self.mosaic, m
        layer = self.layer
        if layer is not None and (layer not in self.viewer.layers or layer.rgb != m.rgb):
            if layer in self.viewer.layers:  # napari cannot switch a layer between gray and RGB
                self.viewer.layers.remove(layer)
            layer = self.layer = None
        if layer is None:
            self.layer = self.viewer.add_image(
                data, name=LAYER_NAME, rgb=m.rgb, metadata=md, contrast_limits=limits
            )
            self.layer.contrast_limits_range = display.range
            self.viewer.reset_view()
        else:
            layer.data = data
            layer.metadata = md
            layer.contrast_limits_range = display.range
            layer.contrast_limits = limits
        # show the frame just composed: napari moves the time slider of a new layer (to its
        # middle), where a short recording's tile would be background
        step = list(self.viewer.dims.current_step)
        if step and step[0] != k:
            step[0] = k
            self.viewer.dims.current_step = tuple(step)
        if old is not None and old is not m:
            old.close()  # the widget's files stay open: the mosaic only borrows them
        self._refresh_layers()

    def _error(self, err: Any) -> None:
        self.last_error = err if isinstance(err, BaseException) else None
        self.status.setText(f"error: {err}")
        self.status.setStyleSheet("color: #e04040")

    def wait(self, timeout: float = 60.0) -> None:
        """Process events until no build is pending (for scripts and tests)."""
        from qtpy.QtWidgets import QApplication

        end = time.monotonic() + timeout
        while time.monotonic() < end and (
            self._timer.isActive() or self._worker is not None or self._pending is not None
        ):
            QApplication.processEvents()
            time.sleep(0.005)

    # ---- lifetime ----------------------------------------------------------------------------
    def _on_removed(self, event: Any = None) -> None:
        if event is not None and event.value is self.layer:
            self.layer = None
        self._refresh_layers()

    def closeEvent(self, event) -> None:
        self.cleanup()
        super().closeEvent(event)

    def cleanup(self) -> None:
        """Stop following the viewer; close the files the widget opened unless the mosaic
        layer still reads them (they close with it, when it is garbage collected)."""
        self._closed = True
        self._timer.stop()
        self._pending = None
        if self._worker is not None:
            self._worker.quit()
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        self._connections = []
        if self.layer is None or self.layer not in self.viewer.layers:
            for seq in self._files.values():  # else the layer still reads them
                seq.close()
        self._files.clear()
