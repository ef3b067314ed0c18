"""The Live dock widget, headless: connects, shows the stream in one layer updated in place with
contrast from the bit depth, counters move, records, reports sender loss and reconnects."""

from __future__ import annotations

import numpy as np

import napari_imseq as imseq
from napari_imseq._napari._live_widget import LiveWidget, contrast_for
from napari_imseq.live import Sender

from ._helpers import wait_for


def pump(qtbot, predicate, timeout=20.0) -> bool:
    """Let Qt run (timers, events) until ``predicate`` holds, for at most ``timeout`` s."""
    try:
        qtbot.waitUntil(predicate, timeout=int(timeout * 1000))
    except AssertionError:
        return False
    return True


def test_live_widget_connects_counts_records_and_reconnects(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = LiveWidget(viewer)
    viewer.window.add_dock_widget(widget)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 4096, (64, 80), dtype=np.uint16) for _ in range(40)]
    tx = Sender("127.0.0.1:0", codec="lossless", bit_depth=12, fps=50)
    port = tx.port
    try:
        assert widget.connect_to(tx.address)
        assert wait_for(lambda: tx.receivers == 1)
        tx.send(frames[0])
        assert pump(qtbot, lambda: widget.layer is not None)
        layer = widget.layer
        assert tuple(layer.contrast_limits) == (0, 4095)
        assert widget.start_recording(str(tmp_path / "rec.mkv"))
        for f in frames[1:]:
            tx.send(f)
            qtbot.wait(5)
        assert pump(qtbot, lambda: widget.receiver.stats["received"] == len(frames))
        assert pump(qtbot, lambda: "received 40" in widget.counters.text())
        assert widget.layer is layer and len(viewer.layers) == 1  # updated in place
        assert pump(qtbot, lambda: layer.metadata["live_index"] == len(frames) - 1)
        np.testing.assert_array_equal(layer.data, frames[-1])
        widget.stop_recording()
        assert pump(qtbot, lambda: "saved" in widget.record_status.text())
        assert widget.last_recording["recorded"] == len(frames) - 1  # all after Record
        assert widget.last_recording["dropped"] == 0
        # the sender goes away: status says so; it comes back on the same port: reconnects
        tx.close()
        assert pump(qtbot, lambda: any(word in widget.status.text()
                                       for word in ("ended", "lost", "waiting")))  # fmt: skip
        tx = Sender(f"127.0.0.1:{port}", codec="raw", bit_depth=12)
        assert wait_for(lambda: tx.receivers == 1, 20)
        tx.send(frames[3])
        assert pump(qtbot, lambda: widget.status.text().startswith("connected"))
        assert pump(qtbot, lambda: widget.receiver.stats["connections"] == 2)
    finally:
        widget.disconnect_stream()
        tx.close()
        if widget._closing is not None:
            widget._closing.join(20)
    with imseq.open_sequence(tmp_path / "rec.mkv") as seq:
        assert seq.dtype == np.uint16 and len(seq) == widget.last_recording["recorded"]
        np.testing.assert_array_equal(seq[-1], frames[-1])


def test_contrast_from_bit_depth():
    assert contrast_for(np.zeros((2, 2), np.uint16), 12) == (0, 4095)
    assert contrast_for(np.zeros((2, 2), np.uint8), None) == (0, 255)
    assert contrast_for(np.zeros((2, 2), np.int16), None) == (-32768, 32767)
    assert contrast_for(np.array([[0.5, np.nan], [2.0, 1.0]], np.float32), None) == (0.5, 2.0)
