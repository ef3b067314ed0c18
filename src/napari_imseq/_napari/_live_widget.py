"""Dock widget: watch a live stream (``imseq serve`` or any :class:`napari_imseq.live.Sender`).

All socket work happens in the :class:`~napari_imseq.live.Receiver`'s own thread; the GUI thread
only polls the receiver's newest-frame slot from a timer (a non-blocking call), so a slow or
vanished sender never freezes napari. The live layer is updated in place; its contrast limits
come from the stream's bit depth (0..4095 for a 12-bit camera in uint16). Disconnecting (and
with it finalising a recording) runs in a background thread too.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..live import LiveError, Receiver

POLL_MS = 15
COUNTERS_MS = 250


def _ms(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def contrast_for(frame: np.ndarray, bit_depth: int | None) -> tuple[float, float]:
    """Contrast limits from the stream's bit depth (integers), else from the frame."""
    if frame.dtype.kind in "ui":
        bits = bit_depth or frame.dtype.itemsize * 8
        lo = -(2 ** (bits - 1)) if frame.dtype.kind == "i" else 0
        hi = 2 ** (bits - 1) - 1 if frame.dtype.kind == "i" else 2**bits - 1
        return float(lo), float(hi)
    if frame.dtype == bool:
        return 0.0, 1.0
    finite = frame[np.isfinite(frame)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


class LiveWidget(QWidget):
    """Plugins > napari-imseq > Live stream."""

    def __init__(self, napari_viewer: Any):
        super().__init__()
        self.viewer = napari_viewer
        self.receiver: Receiver | None = None
        self.layer = None
        self.shown = 0
        self.last_error: str | None = None
        self._closing: threading.Thread | None = None

        self.address = QLineEdit("127.0.0.1:5555")
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("shared secret (if the sender has one)")
        self.connect_button = QPushButton("Connect")
        self.connect_button.setCheckable(True)
        self.connect_button.clicked.connect(self._toggle_connection)
        self.status = QLabel("not connected")
        self.status.setWordWrap(True)
        self.counters = QLabel("")
        self.counters.setWordWrap(True)
        self.record_path = QLineEdit("live.mkv")
        self.record_path.setToolTip(
            "FFV1 .mkv (lossless, compact, slow to encode) by default; for fast streams "
            "record to .tif or .seq"
        )
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        self.record_button = QPushButton("Record")
        self.record_button.setCheckable(True)
        self.record_button.setEnabled(False)
        self.record_button.clicked.connect(self._toggle_recording)
        self.record_status = QLabel("")
        self.record_status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Address", self.address)
        form.addRow("Token", self.token)
        row = QHBoxLayout()
        row.addWidget(self.record_path)
        row.addWidget(browse)
        form.addRow("Record to", row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.connect_button)
        layout.addWidget(self.status)
        layout.addWidget(self.counters)
        layout.addWidget(self.record_button)
        layout.addWidget(self.record_status)
        layout.addStretch(1)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._show_newest)
        self._stats = QTimer(self)
        self._stats.setInterval(COUNTERS_MS)
        self._stats.timeout.connect(self._update_counters)
        app = QApplication.instance()
        if app is not None:  # napari quits: finalise a recording rather than leave a .partial
            app.aboutToQuit.connect(self._shutdown_now)

    # ---- connection -----------------------------------------------------------------------
    def _toggle_connection(self, checked: bool) -> None:
        if checked:
            self.connect_to(self.address.text().strip(), self.token.text() or None)
        else:
            self.disconnect_stream()

    def connect_to(self, address: str, token: str | None = None) -> bool:
        """Start receiving from ``address`` (returns at once; the receiver connects in the
        background and reconnects by itself)."""
        if self.receiver is not None:
            self.disconnect_stream()
        try:
            self.receiver = Receiver(address, token=token)
        except LiveError as err:
            self._fail(str(err))
            return False
        self.address.setText(address)
        self.connect_button.setChecked(True)
        self.connect_button.setText("Disconnect")
        self.record_button.setEnabled(True)
        self.address.setEnabled(False)
        self.token.setEnabled(False)
        self.status.setText(f"connecting to {address} ...")
        self._poll.start()
        self._stats.start()
        return True

    def disconnect_stream(self) -> None:
        """Stop receiving; a recording is finalised in a background thread."""
        rx, self.receiver = self.receiver, None
        self._poll.stop()
        self.connect_button.setChecked(False)
        self.connect_button.setText("Connect")
        self.address.setEnabled(True)
        self.token.setEnabled(True)
        self.record_button.setChecked(False)
        self.record_button.setText("Record")
        self.record_button.setEnabled(False)
        if rx is None:
            return
        if rx.recording:
            self.record_status.setText(f"finalising {rx.recording} ...")
        self.status.setText("disconnected")

        def close():
            summary = rx.close()
            if summary is not None:
                self._last_summary = summary

        self._last_summary = None
        self._closing = threading.Thread(target=close, name="imseq-live-close", daemon=True)
        self._closing.start()
        self._stats.start()  # reports when the recording is finalised

    def _fail(self, message: str) -> None:
        self.last_error = message
        self.status.setText(message)
        self.connect_button.setChecked(False)
        self.connect_button.setText("Connect")

    # ---- display ------------------------------------------------------------------------------
    def _show_newest(self) -> None:
        rx = self.receiver
        if rx is None:
            return
        item = rx.latest()
        if item is None:
            return
        frame, meta = item
        layer = self.layer
        alive = layer is not None and layer in self.viewer.layers
        rgb = frame.ndim == 3 and frame.shape[2] in (3, 4)
        if frame.ndim == 3 and not rgb:  # 1 or 2 channels: the first is shown
            frame = frame[..., 0]
        if alive and layer.data.shape == frame.shape and layer.data.dtype == frame.dtype:
            layer.data = frame
        else:
            if alive:
                self.viewer.layers.remove(layer)
            name = f"live {rx.address}"
            self.layer = self.viewer.add_image(
                frame, name=name, rgb=rgb,
                contrast_limits=None if rgb and frame.dtype == np.uint8
                else contrast_for(frame, meta["bit_depth"]),
                metadata={"live": True, "bit_depth": meta["bit_depth"]},
            )  # fmt: skip
        self.layer.metadata["live_index"] = meta["index"]
        self.layer.metadata["live_timestamp"] = meta["timestamp"]
        self.shown += 1

    def _update_counters(self) -> None:
        if self._closing is not None and not self._closing.is_alive():
            self._closing = None
            summary = getattr(self, "_last_summary", None)
            if summary:
                self._report_recording(summary)
            if self.receiver is None:
                self._stats.stop()
        rx = self.receiver
        if rx is None:
            return
        s = rx.stats
        self.status.setText(s["status"])
        lat, disp = s["latency_ms"], s["display_latency_ms"]
        self.counters.setText(
            f"received {s['received']} ({s['fps_received']:.1f} fps), displayed "
            f"{s['displayed']} ({s['fps_displayed']:.1f} fps)\n"
            f"latency p50/p99 {_ms(lat['p50'])}/{_ms(lat['p99'])} ms, display "
            f"{_ms(disp['p50'])}/{_ms(disp['p99'])} ms\n"
            f"dropped for display {s['dropped_display']}, lost in transit "
            f"{s['lost_in_transit']}, dropped for recording {s['dropped_record']}"
        )
        if rx.recording:
            self.record_status.setText(
                f"recording {rx.recording}: {s['recorded']} frames written, "
                f"{s['record_queue']} queued, {s['dropped_record']} lost"
            )
        self.last_stats = s

    # ---- recording ----------------------------------------------------------------------------
    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Record to", self.record_path.text())
        if path:
            self.record_path.setText(path)

    def _toggle_recording(self, checked: bool) -> None:
        if checked:
            self.start_recording(self.record_path.text().strip())
        else:
            self.stop_recording()

    def start_recording(self, path: str) -> bool:
        rx = self.receiver
        if rx is None or not path:
            self.record_button.setChecked(False)
            return False
        try:
            target = rx.start_recording(path)
        except Exception as err:  # an existing file, a missing folder: say what to do
            self.record_status.setText(str(err))
            self.record_button.setChecked(False)
            return False
        self.record_button.setChecked(True)
        self.record_button.setText("Stop recording")
        self.record_status.setText(f"recording {target} ...")
        return True

    def stop_recording(self) -> None:
        rx = self.receiver
        self.record_button.setChecked(False)
        self.record_button.setText("Record")
        if rx is None or not rx.recording:
            return
        self.record_status.setText(f"finalising {rx.recording} ...")

        def finish():
            self._last_summary = rx.stop_recording()

        self._closing = threading.Thread(target=finish, name="imseq-live-finish", daemon=True)
        self._closing.start()

    def _report_recording(self, summary: dict) -> None:
        text = f"saved {summary['path']}: {summary['recorded']} frames"
        if summary["dropped"]:
            text += (
                f"; {summary['dropped']} frames could not be written (the disk did not keep "
                f"up): indices {summary['lost_indices']}"
            )
        if summary["error"]:
            text += f"; error: {summary['error']}"
        self.record_status.setText(text)
        self.last_recording = summary

    def _shutdown_now(self) -> None:
        rx, self.receiver = self.receiver, None
        if rx is not None:
            rx.close()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._shutdown_now()
        super().closeEvent(event)
