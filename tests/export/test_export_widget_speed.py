"""The Export movie widget's encoder speed choice (headless napari, Xvfb)."""

import numpy as np

import napari_imseq as imseq
from napari_imseq._napari._export_widget import ExportWidget


def test_speed_preset_is_offered_for_h264_and_reaches_the_encoder(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).integers(0, 256, (4, 32, 48), dtype=np.uint8),
                     metadata={"fps": 10.0})  # fmt: skip
    widget = ExportWidget(viewer)
    qtbot.addWidget(widget)
    widget.path.setText(str(tmp_path / "a.mkv"))
    widget.preset.setCurrentText("veryfast")
    assert not widget.preset.isEnabled()  # FFV1 has no speed preset
    assert "preset" not in widget.options()
    widget.path.setText(str(tmp_path / "a.mp4"))
    assert widget.preset.isEnabled() and widget.options()["preset"] == "veryfast"
    widget.codec.setCurrentText("libvpx-vp9")
    assert not widget.preset.isEnabled() and "preset" not in widget.options()
    widget.codec.setCurrentText("auto")
    widget.run_button.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert widget.last_error is None, widget.message.text()
    with imseq.open_sequence(tmp_path / "a.mp4") as seq:
        assert len(seq) == 4
    # x264 records its settings in the stream: the preset's subpixel refinement level
    # (veryfast: subme=2; x264's default, medium: subme=7)
    with open(tmp_path / "a.mp4", "rb") as f:
        assert b"subme=2 " in f.read()
    widget.preset.setCurrentText("medium")
    assert widget.options()["preset"] == "medium"
    widget.preset.setCurrentIndex(0)  # export()'s default
    assert "preset" not in widget.options()
