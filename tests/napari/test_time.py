"""Time in seconds in the viewer: playback fps, the time axis and the current frame's time."""

from fractions import Fraction

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq._napari._time import OVERLAY_KEY, attach, format_time

from ..conftest import sample
from ..io import seqmaker
from ..io import videomaker as vm


def test_playback_runs_at_the_files_fps(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("dlc_tests_vid.avi")), plugin="napari-imseq")
    display = attach(viewer)
    with imseq.open_sequence(sample("dlc_tests_vid.avi")) as seq:
        fps = seq.metadata["fps"]
    assert fps == pytest.approx(30.0, rel=1e-3)
    sliders = viewer.window._qt_viewer.dims.slider_widgets
    assert sliders[0].fps == pytest.approx(fps)
    assert display.playback_fps(0) == pytest.approx(fps)
    assert viewer.dims.axis_labels[0] == "t"
    # a second recording at another rate becomes the reference when it is active
    fast = tmp_path / "fast.seq"
    seqmaker.raw_seq(fast, seqmaker.frames(4, (16, 12), np.uint8), fps=250.0)
    viewer.open(str(fast), plugin="napari-imseq")
    with imseq.open_sequence(fast) as seq:
        assert seq.metadata["fps"] != pytest.approx(fps)
        assert sliders[0].fps == pytest.approx(seq.metadata["fps"])
    viewer.layers.selection.active = layer
    assert sliders[0].fps == pytest.approx(fps)


def test_vfr_video_shows_true_times(make_napari_viewer, tmp_path):
    # variable frame rate: gaps of 40, 40, 200, 40, 1000, 40 ms
    pts = [0, 40, 80, 280, 320, 1320, 1360]
    path = tmp_path / "vfr.mkv"
    frames = vm.pattern(len(pts), 32, 48)
    vm.write(path, frames, codec="ffv1", pix_fmt="gray", fmt_in="gray", pts=pts,
             time_base=Fraction(1, 1000))  # fmt: skip
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin="napari-imseq")
    stamps = np.asarray(layer.metadata["timestamps"], dtype=float)
    np.testing.assert_allclose(stamps - stamps[0], np.array(pts) / 1000, atol=1e-6)
    display = attach(viewer)
    fps = layer.metadata["fps"]
    for i in (0, 3, 5, 6, 2):
        viewer.dims.set_current_step(0, i)
        text = display.label.text()  # the status bar label
        assert display.label.isVisibleTo(viewer.window._qt_window)
        assert text.startswith(f"t = {format_time(pts[i] / 1000, fps)} /"), text
        assert text.endswith(f"frame {i}")
    overlay = viewer.canvas.overlays[OVERLAY_KEY]
    assert not overlay.visible  # the canvas overlay is opt-in (a vispy redraw per step)
    display.show_on_canvas(True)
    viewer.dims.set_current_step(0, 4)
    assert overlay.visible and overlay.text == display.label.text() and "frame 4" in overlay.text
    display.show_on_canvas(False)
    assert not overlay.visible
    # the user's own text overlay is left alone
    assert viewer.canvas.overlays["text"].text == ""


def test_overlay_follows_layers_and_survives_removal(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((5, 8, 8), np.uint8), name="no time")
    display = attach(viewer)
    assert display.text == ""  # a layer without fps or timestamps
    seqmaker.raw_seq(tmp_path / "a.seq", seqmaker.frames(6, (16, 12), np.uint8), fps=50.0)
    [layer] = viewer.open(str(tmp_path / "a.seq"), plugin="napari-imseq")
    viewer.dims.set_current_step(0, 4)
    assert "frame 4" in display.text and display.label.text() == display.text
    viewer.layers.remove(layer)
    assert display.text == "" and not display.label.isVisibleTo(viewer.window._qt_window)
    viewer.dims.set_current_step(0, 2)  # no error, still empty
    assert display.text == ""
    [layer] = viewer.open(str(tmp_path / "a.seq"), plugin="napari-imseq")
    assert display.text
    viewer.layers.clear()
    assert display.text == ""
    assert attach(viewer) is display  # one display per viewer


def test_contrast_range_spans_the_bit_depth(make_napari_viewer):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("rustav_ffv1_v3_gbrp16le.mkv")), plugin="napari-imseq")
    assert layer.rgb
    [gray] = viewer.open(str(sample("celeritas_top_256.seq")), plugin="napari-imseq")
    assert tuple(gray.contrast_limits_range) == (0, 4095)
    lo, hi = gray.contrast_limits
    assert 0 <= lo < hi <= 4095
    gray.contrast_limits = (0, 4095)  # the user can still reach the whole 12-bit range
    assert tuple(gray.contrast_limits) == (0, 4095)


def test_layers_without_usable_time_are_ignored(make_napari_viewer):
    from types import SimpleNamespace

    from napari_imseq._napari._time import _time_layer_info

    empty = SimpleNamespace(metadata={"fps": 10.0}, ndim=3, data=np.zeros((0, 4, 4)))
    assert _time_layer_info(empty) is None
    viewer = make_napari_viewer()
    display = attach(viewer)
    viewer.add_image(np.zeros((3, 4, 4), np.uint8), metadata={"fps": None}, name="no fps")
    viewer.add_image(np.zeros((4, 4), np.uint8), metadata={"fps": 10.0}, name="2-D")
    assert display.text == ""
    viewer.add_image(np.zeros((3, 4, 4), np.uint8), metadata={"fps": 4.0}, name="ok")
    viewer.dims.set_current_step(0, 2)
    assert display.text.startswith("t = 0.5 s / 0.5 s")
    layers = viewer.open_sample("napari-imseq", "synthetic-12bit")
    assert viewer.dims.axis_labels[0] == "t" and layers[0].metadata["fps"] == 30.0
    assert display.text.endswith("frame 2")
