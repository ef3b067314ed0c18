"""Dock widget: export what the viewer shows (or a layer's values) to a movie, off the GUI thread.

The widget arranges :func:`napari_imseq.export` and nothing else: layer choice (or all visible),
mode, frame range and step, fps (the recording's by default, stated), output path with the
format from its extension, codec and quality, overlays. The export runs in a napari worker
thread; progress (frames/s, time left) is shown in the widget and in napari's activity dock;
Cancel stops within a fraction of a second and leaves only the ``.partial`` file. Errors are
shown in the widget with what to do.

:meth:`ExportWidget.start_save` is how File > Save hands long writes to this machinery
(see ``_writer.py``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..export import DEFAULT_FPS, ExportCancelled, ExportProgress, LayerView, export

#: what each extension writes by default (shown next to the path)
FORMATS = {
    ".mkv": "Matroska, FFV1 lossless",
    ".avi": "AVI, FFV1 lossless",
    ".mov": "QuickTime, PNG lossless",
    ".mp4": "MP4, H.264 (lossy, 8-bit)",
    ".webm": "WebM, VP9 (lossy, 8-bit)",
    ".gif": "animated GIF (256 colours)",
    ".tif": "TIFF (ImageJ), lossless",
    ".tiff": "TIFF (ImageJ), lossless",
    ".zarr": "zarr v3, lossless",
    ".seq": "Norpix SEQ (data mode)",
}
CODECS = ["auto", "ffv1", "png", "rawvideo", "libx264", "libvpx-vp9", "mjpeg"]
_LOSSY = ("libx264", "libvpx-vp9", "mjpeg")
#: x264's speed presets, fastest first ("default": export()'s, DEFAULT_H264_PRESET)
PRESETS = ["default (faster)", "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
           "slower", "veryslow"]  # fmt: skip


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def advice(err: BaseException) -> str:
    """One line for the user: what went wrong and what to do."""
    msg = str(err) or type(err).__name__
    if isinstance(err, ExportCancelled):
        return f"Cancelled: {msg}. The .partial file can be deleted or read back as it is."
    if isinstance(err, FileExistsError):
        return f"{msg}. Tick 'Overwrite' or choose another file name."
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return f"{msg}. Choose a folder that exists."
    if isinstance(err, PermissionError):
        return f"{msg}. Choose a folder you may write to."
    if isinstance(err, OSError):
        return f"{msg}. Free disk space or choose another disk, then export again."
    if isinstance(err, ValueError):  # our errors say what to do
        return msg
    return f"{type(err).__name__}: {msg}"


def _fit_text(box, text: str) -> None:
    """Keep a spin box wide enough to show ``text`` beside napari's +/- buttons (a narrow dock
    otherwise squeezes it until "default" reads "fault"). A style sheet, because napari's own sets
    every spin box's minimum width when the widget is docked."""
    box.setStyleSheet(f"min-width: {box.fontMetrics().horizontalAdvance(text) + 24}px;")


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (queued signal)."""

    progressed = Signal(object)


class ExportWidget(QWidget):
    """Plugins > napari-imseq > Export movie."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.cancel_event = threading.Event()
        self.last_summary: dict | None = None
        self.last_error: BaseException | None = None
        self.last_progress: ExportProgress | None = None
        self._activity = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)

        self.all_visible = QCheckBox("All visible layers")
        self.all_visible.setChecked(True)
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(110)
        self.mode = QComboBox()
        self.mode.addItems(["rendered", "data"])
        self.region = QComboBox()
        self.region.addItems(["data (full resolution)", "current view"])
        self.start, self.stop, self.step = QSpinBox(), QSpinBox(), QSpinBox()
        self.step.setMinimum(1)
        for box in (self.start, self.stop, self.step):
            box.setMaximum(2**31 - 1)
            _fit_text(box, "0000000")
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 100000.0)
        self.fps.setDecimals(3)
        self.fps.setSpecialValueText("recording")
        self.path = QLineEdit()
        self.path.setPlaceholderText("output file: .mkv .mov .mp4 .webm .gif .tif .zarr ...")
        self.browse = QPushButton("…")
        self.format_label = QLabel("")
        self.codec = QComboBox()
        self.codec.addItems(CODECS)
        self.crf = QSpinBox()
        self.crf.setRange(-1, 63)
        self.crf.setValue(-1)
        self.crf.setSpecialValueText("default")
        _fit_text(self.crf, "default")
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        self.preset.setToolTip(
            "H.264 encoder speed. The default, faster, needs 1.5-2x less encoder CPU than x264's "
            "own default (medium) for slightly lower quality at the same CRF; slower presets "
            "give better quality per byte, faster ones save more time"
        )
        self.overwrite = QCheckBox("Overwrite")
        self.ov_time = QCheckBox("timestamp")
        self.ov_bar = QCheckBox("scale bar")
        self.ov_text = QLineEdit()
        self.ov_text.setPlaceholderText("text ({index}, {timestamp:.2f})")
        self.run_button = QPushButton("Export")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.rate_label = QLabel("")
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow(self.all_visible)
        form.addRow(self.layer_list)
        form.addRow("Mode", self.mode)
        form.addRow("Region", self.region)
        frames = QHBoxLayout()
        for label, box in (("from", self.start), ("to", self.stop), ("step", self.step)):
            frames.addWidget(QLabel(label))
            frames.addWidget(box)
        form.addRow("Frames", frames)
        form.addRow("fps", self.fps)
        where = QHBoxLayout()
        where.addWidget(self.path)
        where.addWidget(self.browse)
        form.addRow("File", where)
        form.addRow("", self.format_label)
        quality = QHBoxLayout()
        quality.addWidget(self.codec)
        quality.addWidget(QLabel("CRF"))
        quality.addWidget(self.crf)
        form.addRow("Codec", quality)
        form.addRow("Speed", self.preset)
        overlays = QHBoxLayout()
        overlays.addWidget(self.ov_time)
        overlays.addWidget(self.ov_bar)
        form.addRow("Overlays", overlays)
        form.addRow("", self.ov_text)
        form.addRow(self.overwrite)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.rate_label)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self.run_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel)
        self.browse.clicked.connect(self._browse)
        self.path.textChanged.connect(self._describe_format)
        self.path.textChanged.connect(lambda *_: self._enable_preset())
        self.codec.currentTextChanged.connect(lambda *_: self._enable_preset())
        self.all_visible.toggled.connect(self._refresh)
        self.mode.currentTextChanged.connect(self._refresh)
        self.layer_list.itemChanged.connect(lambda *_: self._describe_plan())
        for event in ("inserted", "removed", "reordered"):
            getattr(self.viewer.layers.events, event).connect(self._refresh)
        self.viewer.dims.events.ndim.connect(self._refresh)
        self._refresh()
        self._enable_preset()

    # ---- state shown in the widget -----------------------------------------------------------
    def _refresh(self, *_: Any) -> None:
        checked = {
            self.layer_list.item(i).text()
            for i in range(self.layer_list.count())
            if self.layer_list.item(i).checkState() == Qt.CheckState.Checked
        }
        self.layer_list.blockSignals(True)
        self.layer_list.clear()
        for layer in reversed(list(self.viewer.layers)):  # top first, as napari lists them
            item = QListWidgetItem(layer.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = layer.name in checked or (not checked and layer in self.viewer.layers.selection)
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)
        self.layer_list.blockSignals(False)
        rendered = self.mode.currentText() == "rendered"
        self.all_visible.setEnabled(rendered)
        self.layer_list.setEnabled(not (rendered and self.all_visible.isChecked()))
        for w in (self.ov_time, self.ov_bar, self.ov_text, self.region):
            w.setEnabled(rendered)
        dims = self.viewer.dims
        free = [d for d in range(dims.ndim) if d not in dims.displayed]
        n = int(dims.nsteps[free[0]]) if free else 1
        if self.stop.value() in (0, self.stop.maximum()) or self.stop.value() > n:
            self.stop.setValue(n)
        self.start.setMaximum(max(n - 1, 0))
        self._describe_plan()

    def chosen_layers(self) -> list[Any]:
        if self.mode.currentText() == "rendered" and self.all_visible.isChecked():
            return [layer for layer in self.viewer.layers if layer.visible]
        names = {
            self.layer_list.item(i).text()
            for i in range(self.layer_list.count())
            if self.layer_list.item(i).checkState() == Qt.CheckState.Checked
        }
        return [layer for layer in self.viewer.layers if layer.name in names]

    def _describe_format(self, text: str) -> None:
        ext = os.path.splitext(text.rstrip("/"))[1].lower()
        self.format_label.setText(FORMATS.get(ext, "folder of images" if text.endswith("/") else
                                               "unknown extension"))  # fmt: skip

    def _h264(self) -> bool:
        """Whether the output is H.264 (the codec chosen, or .mp4's default)."""
        codec = self.codec.currentText()
        ext = os.path.splitext(self.path.text().strip())[1].lower()
        return codec == "libx264" or (codec == "auto" and ext in (".mp4", ".m4v"))

    def _enable_preset(self) -> None:
        self.preset.setEnabled(self._h264())

    def _describe_plan(self) -> None:
        """State the fps that will be used and the layers napari's renderer will draw."""
        layers = self.chosen_layers()
        notes = []
        fps = next((lyr.metadata.get("fps") for lyr in layers if lyr.metadata.get("fps")), None)
        if fps:
            self.fps.setSpecialValueText(f"recording ({float(fps):g})")
        else:
            self.fps.setSpecialValueText(f"default ({DEFAULT_FPS:g})")
            notes.append(f"No layer records a frame rate: {DEFAULT_FPS:g} fps unless you set one.")
        if self.mode.currentText() == "rendered":
            slow = [v for v in map(LayerView.from_layer, layers) if v.why_unsupported]
            if slow or self.viewer.dims.ndisplay == 3:
                why = "; ".join(f"{v.name}: {v.why_unsupported}" for v in slow) or "3-D view"
                notes.append(
                    f"Drawn by napari's renderer ({why}): slower, one screenshot per frame on the "
                    f"GUI thread, at the chosen size."
                )
        self.message.setText(" ".join(notes))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.path.text() or os.getcwd(),
            "Video (*.mkv *.mov *.mp4 *.webm *.avi *.gif);;TIFF (*.tif);;zarr (*.zarr)",
        )  # fmt: skip
        if path:
            self.path.setText(path)

    # ---- running --------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`export` the widget's controls describe."""
        rendered = self.mode.currentText() == "rendered"
        opts: dict[str, Any] = {
            "mode": self.mode.currentText(),
            "frames": (self.start.value(), self.stop.value(), self.step.value()),
            "overwrite": self.overwrite.isChecked(),
        }
        if self.fps.value() > 0:
            opts["fps"] = self.fps.value()
        if self.codec.currentText() != "auto":
            opts["codec"] = self.codec.currentText()
        if self.crf.value() >= 0:
            opts["crf"] = self.crf.value()
        if self._h264() and self.preset.currentIndex() > 0:
            opts["preset"] = self.preset.currentText()
        if rendered:
            if self.region.currentIndex() == 1:
                opts["region"] = "view"
            overlays = {}
            if self.ov_time.isChecked():
                overlays["timestamp"] = True
            if self.ov_bar.isChecked():
                overlays["scale_bar"] = True
            if self.ov_text.text().strip():
                overlays["text"] = self.ov_text.text()
            if overlays:
                opts["overlays"] = overlays
        return opts

    def start_export(self) -> None:
        path = self.path.text().strip()
        if not path:
            self._show_error("Choose an output file first (the extension picks the format).")
            return
        layers = self.chosen_layers()
        if not layers:
            self._show_error("No layer to export: tick a layer or make one visible.")
            return
        opts = self.options()
        if opts["mode"] == "rendered" and self.all_visible.isChecked():
            source: Any = self.viewer
        else:
            source = layers if opts["mode"] == "rendered" else layers[:1]
            if opts["mode"] == "data" and len(layers) > 1:
                self._show_error("Data mode writes one layer's values: tick exactly one layer.")
                return
        self.run(source, os.path.expanduser(path), opts)

    def start_save(self, source: Any, path: str, opts: dict[str, Any]) -> None:
        """Run a File > Save job handed over by the writer hook."""
        self.path.setText(path)
        self.mode.setCurrentText(opts.get("mode", "data"))
        self.run(source, path, opts)

    def run(self, source: Any, path: str, opts: dict[str, Any]) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress as activity

        if self.worker is not None:
            self._show_error("An export is running; cancel it or wait for it to finish.")
            return
        self.cancel_event = threading.Event()
        self.last_summary = self.last_error = self.last_progress = None
        self.bar.setValue(0)
        self.rate_label.setText("starting…")
        self.message.setStyleSheet("")
        self._activity = activity(total=0, desc=f"Export {os.path.basename(path)}")
        self.worker = create_worker(
            export, source, path, progress=self._relay.progressed.emit,
            cancel=self.cancel_event, _start_thread=False, _ignore_errors=True, **opts,
        )  # fmt: skip
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.start()

    def cancel(self) -> None:
        self.cancel_event.set()
        self.rate_label.setText("cancelling…")

    @property
    def running(self) -> bool:
        return self.worker is not None

    def _on_progress(self, p: ExportProgress) -> None:
        self.last_progress = p
        self.bar.setValue(int(round(100 * p.fraction)))
        self.rate_label.setText(
            f"{p.done}/{p.total} frames, {p.rate:.1f} frames/s, {_fmt_seconds(p.remaining)} left"
        )
        if self._activity is not None:
            if self._activity.total != p.total:
                self._activity.total = p.total
            self._activity.update(p.done - self._activity.n)

    def _on_done(self, summary: dict) -> None:
        self.last_summary = summary
        self.bar.setValue(100)
        lossy = " (lossy)" if summary.get("lossy") else ""
        text = (
            f"Saved {summary['frames']} frames to {summary['path']}{lossy} at {summary['fps']:g} "
            f"fps ({summary['fps_source']}), {summary['frames_per_second']} frames/s."
        )
        if summary.get("fallback"):
            text += f" {summary['fallback']}."
        self.message.setStyleSheet("")
        self.message.setText(text)

    def _on_error(self, err: BaseException) -> None:
        self.last_error = err
        self._show_error(advice(err))

    def _show_error(self, text: str) -> None:
        self.message.setStyleSheet("color: #e05050;")
        self.message.setText(text)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        p = self.last_progress
        if p is not None and self.last_summary is not None:
            self.rate_label.setText(f"{p.done} frames in {p.elapsed:.1f} s ({p.rate:.1f} frames/s)")
        elif self.last_error is not None:
            self.rate_label.setText("stopped")
        if self._activity is not None:
            self._activity.close()
            self._activity = None
