"""Export through a real napari viewer (headless, Xvfb): fidelity against napari's own
screenshot, the dock widget (progress, cancel, errors, a responsive GUI) and File > Save."""

import os
import time

import dask.array as da
import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq._napari._export_widget import ExportWidget

T, H, W = 6, 120, 160


def three_layer_viewer(make_napari_viewer):
    """The issue's case: uint16 gray (limits, gamma), uint8 magma additive at 0.7, RGB at 0.5."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    gray = ((yy * 20 + xx * 10)[None] + rng.integers(0, 400, (T, H, W))).astype(np.uint16)
    ramp = ((xx * 255 // W)[None] + rng.integers(0, 30, (T, H, W))).clip(0, 255).astype(np.uint8)
    rgb = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(gray, contrast_limits=(200, 3500), gamma=0.6, name="gray",
                     metadata={"fps": 25.0})  # fmt: skip
    viewer.add_image(ramp, colormap="magma", blending="additive", opacity=0.7, name="magma")
    viewer.add_image(rgb, rgb=True, opacity=0.5, name="rgb")
    return viewer


def screenshot(viewer, t):
    viewer.dims.set_current_step(0, t)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    camera.zoom = 1
    camera.center = (0, (H - 1) / 2, (W - 1) / 2)
    return viewer.screenshot(canvas_only=True, size=(H, W), flash=False)[..., :3]


@pytest.mark.parametrize("ext", [".mkv", ".mov"])
def test_rendered_export_matches_napari_screenshot(make_napari_viewer, tmp_path, ext):
    viewer = three_layer_viewer(make_napari_viewer)
    summary = imseq.export(viewer, tmp_path / f"r{ext}", progress=False)
    assert summary["frames"] == T and not summary["lossy"] and "fallback" not in summary
    assert summary["fps"] == 25.0 and summary["fps_source"] == "recording"
    with imseq.open_sequence(tmp_path / f"r{ext}") as seq:
        assert seq.frame_shape == (H, W, 3) and seq.fps == pytest.approx(25.0)
        for t in (1, 4):
            diff = np.abs(seq[t].astype(int) - screenshot(viewer, t).astype(int)) / 255
            assert diff.mean(axis=(0, 1)).max() <= 2 / 255, diff.mean(axis=(0, 1))
            assert diff.max() <= 8 / 255


def test_labels_layer_matches_napari_screenshot(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(5)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(rng.integers(0, 256, (T, H, W), dtype=np.uint8), name="base")
    blobs = np.zeros((T, H, W), np.int32)
    blobs[:, 20:60, 30:90] = 1
    blobs[:, 50:100, 70:140] = 7
    viewer.add_labels(blobs, opacity=0.7)
    imseq.export(viewer, tmp_path / "l.mkv", progress=False)
    with imseq.open_sequence(tmp_path / "l.mkv") as seq:
        diff = np.abs(seq[2].astype(int) - screenshot(viewer, 2).astype(int)) / 255
    assert diff.mean(axis=(0, 1)).max() <= 2 / 255 and diff.max() <= 8 / 255


def test_region_and_size(make_napari_viewer, tmp_path):
    viewer = three_layer_viewer(make_napari_viewer)
    summary = imseq.export(viewer, tmp_path / "a.mkv", region=(10, 50, 20, 100), progress=False)
    assert summary["size"] == [40, 80]
    with imseq.open_sequence(tmp_path / "a.mkv") as seq:
        full = imseq.export(viewer, tmp_path / "b.mkv", progress=False)
        assert full["size"] == [H, W]
        with imseq.open_sequence(tmp_path / "b.mkv") as whole:
            np.testing.assert_array_equal(seq[2], whole[2][10:50, 20:100])
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    ch, cw = viewer.canvas.size
    camera.zoom = max(ch, cw) / 40  # the view spans about 40 data pixels
    camera.center = (0, H / 2, W / 2)
    view = imseq.export(viewer, tmp_path / "v.mkv", region="view", progress=False)
    expected = [round(ch / camera.zoom), round(cw / camera.zoom)]
    assert all(abs(a - b) <= 1 for a, b in zip(view["size"], expected, strict=True)), expected
    small = imseq.export(viewer, tmp_path / "s.mkv", size=(60, 80), progress=False)
    assert small["size"] == [60, 80]


def test_other_dims_held_at_the_viewer_position(make_napari_viewer, tmp_path):
    data = np.arange(3 * 4 * 8 * 10, dtype=np.uint16).reshape(3, 4, 8, 10)
    viewer = make_napari_viewer()
    layer = viewer.add_image(data, contrast_limits=(0, data.max()))
    viewer.dims.set_current_step(1, 2)  # z = 2; the time axis is dims 0
    viewer.layers.selection.active = layer
    summary = imseq.export(viewer, tmp_path / "z.tif", mode="data", progress=False)
    assert summary["frames"] == 3
    np.testing.assert_array_equal(imseq.imread(tmp_path / "z.tif").compute(), data[:, 2])


def test_layers_napari_must_draw_fall_back_and_say_so(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((3, 40, 50), np.uint8))
    viewer.add_points([[0, 10, 10], [1, 20, 30]], size=6, face_color="red")
    summary = imseq.export(viewer, tmp_path / "p.mkv", progress=False)
    assert "fallback" in summary and "points" in summary["fallback"]
    with imseq.open_sequence(tmp_path / "p.mkv") as seq:
        assert len(seq) == 3 and seq.frame_shape == (40, 50, 3)
        assert seq[0][..., 0].max() > 200  # the red point is drawn


def make_widget(viewer, qtbot):
    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def wait_done(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def slow_layer(viewer, n=200, delay=0.02):
    """A processed (lazy, slow) layer: each frame takes ``delay`` seconds to compute."""
    base = da.from_array(np.random.default_rng(4).integers(0, 4096, (n, 64, 80), np.uint16),
                         chunks=(1, 64, 80))  # fmt: skip

    def slow(block):
        time.sleep(delay)
        return block

    return viewer.add_image(base.map_blocks(slow, dtype=np.uint16), contrast_limits=(0, 4095),
                            name="slow", metadata={"fps": 100.0})  # fmt: skip


def test_widget_export_progress_and_responsive_gui(make_napari_viewer, qtbot, tmp_path):
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    layer = slow_layer(viewer, n=60)
    widget = make_widget(viewer, qtbot)
    widget.path.setText(str(tmp_path / "w.mp4"))
    assert "H.264" in widget.format_label.text()
    assert "100" in widget.fps.specialValueText()  # the recording's rate, stated
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(widget.last_progress))
    timer.start(20)
    widget.run_button.click()
    assert widget.running and widget.cancel_button.isEnabled()
    wait_done(qtbot, widget)
    timer.stop()
    assert widget.last_error is None, widget.message.text()
    assert widget.bar.value() == 100 and widget.last_progress.done == 60
    # the GUI thread ran callbacks while frames were being written
    assert any(p is not None and 0 < p.done < 60 for p in ticks)
    assert "frames/s" in widget.rate_label.text()
    assert "Saved 60 frames" in widget.message.text() and "100 fps" in widget.message.text()
    with imseq.open_sequence(tmp_path / "w.mp4") as seq:
        assert len(seq) == 60 and seq.fps == pytest.approx(100.0, rel=1e-2)
        assert seq.frame_shape == (64, 80, 3)
    del layer


def test_widget_cancel_leaves_no_complete_looking_file(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    slow_layer(viewer, n=300)
    widget = make_widget(viewer, qtbot)
    widget.mode.setCurrentText("data")
    widget.layer_list.item(0).setCheckState(widget.layer_list.item(0).checkState().Checked)
    out = tmp_path / "c.mkv"
    widget.path.setText(str(out))
    widget.run_button.click()
    qtbot.waitUntil(lambda: widget.last_progress is not None and widget.last_progress.done >= 5,
                    timeout=30000)  # fmt: skip
    widget.cancel_button.click()
    wait_done(qtbot, widget, timeout=10000)
    assert isinstance(widget.last_error, imseq.ExportCancelled)
    assert widget.message.text().startswith("Cancelled")
    assert not out.exists() and os.path.exists(str(out) + ".partial")
    with imseq.open_sequence(str(out) + ".partial") as seq:
        assert 5 <= len(seq) < 300


def test_widget_errors_say_what_to_do(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 16, 16), np.uint8), name="z")
    widget = make_widget(viewer, qtbot)

    def attempt(path):
        widget.path.setText(str(path))
        widget.run_button.click()
        wait_done(qtbot, widget)
        return widget.message.text()

    assert "Choose a folder that exists" in attempt(tmp_path / "no" / "such" / "a.mkv")
    (tmp_path / "there.mkv").write_bytes(b"x")
    assert "Overwrite" in attempt(tmp_path / "there.mkv")
    widget.start.setValue(3)
    widget.stop.setValue(3)
    assert "selects no frame" in attempt(tmp_path / "empty.mkv")
    widget.start.setValue(0)
    widget.stop.setValue(4)

    from napari_imseq.io.video import VideoWriter

    def full_disk(self, frame, timestamp):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VideoWriter, "_write", full_disk)
    text = attempt(tmp_path / "full.mkv")
    assert "No space left" in text and "Free disk space" in text
    assert not (tmp_path / "full.mkv").exists()


def test_save_layers_small_is_written_at_once(make_napari_viewer, tmp_path):
    import napari

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.arange(5 * 8 * 8, dtype=np.uint16).reshape(5, 8, 8),
                             metadata={"fps": 20.0})  # fmt: skip
    out = napari.save_layers(str(tmp_path / "s.mkv"), [layer], plugin="napari-imseq")
    assert out == [str(tmp_path / "s.mkv")]
    with imseq.open_sequence(tmp_path / "s.mkv") as seq:
        np.testing.assert_array_equal(seq[:], layer.data)
        assert seq.fps == pytest.approx(20.0)


def test_save_layers_long_job_runs_in_the_background(make_napari_viewer, qtbot, tmp_path,
                                                     monkeypatch):  # fmt: skip
    import napari
    from napari_imseq._napari import _writer

    monkeypatch.setattr(_writer, "BACKGROUND_BYTES", 100_000)  # this 3 MB layer is "long"
    viewer = make_napari_viewer()
    layer = slow_layer(viewer, n=300, delay=0.005)
    out = tmp_path / "bg.mkv"
    t0 = time.perf_counter()
    written = napari.save_layers(str(out), [layer], plugin="napari-imseq")
    returned_after = time.perf_counter() - t0
    assert written == [str(out)]
    widget = _writer.export_widget(viewer)
    assert widget is not None and widget.running  # napari's activity dock shows it too
    assert returned_after < 300 * 0.005 and not out.exists()
    wait_done(qtbot, widget)
    assert widget.last_error is None, widget.message.text()
    with imseq.open_sequence(out) as seq:
        np.testing.assert_array_equal(seq[::50], layer.data[::50].compute())
        assert seq.fps == pytest.approx(100.0)


def test_widget_spin_boxes_show_their_text_in_a_narrow_dock(make_napari_viewer, qtbot):
    """A docked widget squeezed to its minimum still shows "default" in the CRF box and the
    frame numbers (a narrow dock once turned "default" into "fault")."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((300, 64, 64), np.uint16))
    widget = ExportWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.resize(widget.minimumSizeHint())
    qtbot.wait(50)
    metrics = widget.crf.fontMetrics()
    assert widget.crf.specialValueText() == "default"
    assert widget.crf.width() >= metrics.horizontalAdvance("default") + 40
    for box in (widget.start, widget.stop, widget.step):
        assert box.width() >= metrics.horizontalAdvance("0000000") + 40
