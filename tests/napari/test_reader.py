"""The npe2 contributions through a real (headless) napari viewer."""

import subprocess
import sys

import numpy as np
import pytest

from napari_imseq._napari._reader import get_reader
from napari_imseq.io._base import SequenceWarning

from ..conftest import sample
from ..io import seqmaker


def test_manifest_validates():
    out = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-imseq"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_getter_returns_none_for_what_it_cannot_read(tmp_path):
    (tmp_path / "hiris.seq").write_text("[Sequence]\nbin=frame.bin\n")  # another program's .seq
    (tmp_path / "empty.seq").write_bytes(b"")
    assert get_reader(str(tmp_path / "hiris.seq")) is None
    assert get_reader(str(tmp_path / "empty.seq")) is None
    assert get_reader(str(tmp_path / "missing.tif")) is None
    assert get_reader(str(tmp_path)) is None  # a folder with no images
    assert get_reader(["a", "b"]) is None


def test_open_seq_in_viewer_is_lazy_with_bit_depth_contrast(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open(str(sample("celeritas_top_256.seq")), plugin="napari-imseq")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "celeritas_top_256.seq"
    assert type(layer.data).__module__.startswith("dask")
    # 12-bit data using a fraction of its range: limits from the data, the slider spans 12 bits
    lo, hi = layer.contrast_limits
    truth = layer.data.compute()
    assert truth.min() <= lo < hi <= truth.max()
    assert tuple(layer.contrast_limits_range) == (0, 4095)
    assert layer.metadata["bit_depth"] == 12 and layer.metadata["format"] == "norpix-seq"
    assert layer.metadata["display"]["source"] == "estimate"
    assert viewer.dims.axis_labels == ("t", "y", "x")
    viewer.dims.set_current_step(0, 3)
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), layer.data[3].compute())


def test_open_rgb_and_folder(make_napari_viewer, tmp_path):
    data = seqmaker.frames(3, (12, 10, 3), np.uint8)
    seqmaker.raw_seq(tmp_path / "c.seq", data, layout="BGR")
    import imagecodecs

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        imagecodecs.imwrite(tmp_path / "imgs" / f"im{i}.png", np.full((5, 6), i * 40, np.uint8))
    viewer = make_napari_viewer()
    [rgb] = viewer.open(str(tmp_path / "c.seq"), plugin="napari-imseq")
    assert rgb.rgb and rgb.data.shape == (3, 12, 10, 3)
    [folder] = viewer.open(str(tmp_path / "imgs"), plugin="napari-imseq")
    assert folder.data.shape == (3, 5, 6) and folder.name == "imgs"


def test_open_tiff_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("imageio_calcium_imaging.tif")), plugin="napari-imseq")
    assert layer.data.shape == (1000, 30, 40)
    # uint16 with no significant bit depth, values 38..16268: not black at 0..65535
    import tifffile

    truth = tifffile.imread(sample("imageio_calcium_imaging.tif"))
    lo, hi = layer.contrast_limits
    assert truth.min() <= lo < hi <= truth.max()
    assert tuple(layer.contrast_limits_range) == (0, 65535)  # full range still reachable
    assert len(layer.metadata["display"]["frames"]) > 1  # frames spread over the file
    # an ImageJ file's own display range wins
    [imagej] = viewer.open(str(sample("pims_tiff_stack.tif")), plugin="napari-imseq")
    assert imagej.metadata["display"]["source"] == "metadata"


def test_bad_file_raises_a_clear_error_in_viewer(make_napari_viewer, tmp_path):
    path = tmp_path / "short.seq"
    path.write_bytes(b"\xed\xfe\0\0" + b"\0" * 100)
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="short.seq"):
        viewer.open(str(path), plugin="napari-imseq")


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    layers = viewer.open_sample("napari-imseq", "synthetic-12bit")
    layer = layers[0]
    assert layer.data.dtype == np.uint16 and layer.data.shape[0] == 200
    assert tuple(layer.contrast_limits) == (0, 4095)
    assert int(layer.data[7].max().compute()) <= 4095


def test_open_video_in_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("imageio_realshort.mp4")), plugin="napari-imseq")
    assert layer.rgb and layer.data.shape == (36, 240, 320, 3)
    assert tuple(layer.contrast_limits) == (0, 255)
    assert layer.metadata["codec"] == "h264"
    [gray] = viewer.open(
        str(sample("mediaconch_ffv1_gray_coder-1_level-3.mkv")), plugin="napari-imseq"
    )
    assert not gray.rgb and gray.data.shape == (25, 480, 640)
    viewer.dims.set_current_step(0, 17)
    from ..io import videomaker as vm

    truth = vm.sequential(sample("mediaconch_ffv1_gray_coder-1_level-3.mkv"))
    np.testing.assert_array_equal(np.asarray(gray._slice.image.raw), truth[17])


def test_non_video_with_video_extension_is_not_claimed(tmp_path):
    (tmp_path / "x.mp4").write_text("hello")
    assert get_reader(str(tmp_path / "x.mp4")) is None


def test_save_layers_streams_with_our_writer(make_napari_viewer, tmp_path):
    import napari
    import napari_imseq as imseq

    viewer = make_napari_viewer()
    [layer] = viewer.open(str(sample("celeritas_top_256.seq")), plugin="napari-imseq")
    out = napari.save_layers(str(tmp_path / "c.mkv"), [layer], plugin="napari-imseq")
    assert out == [str(tmp_path / "c.mkv")]
    with imseq.open_sequence(tmp_path / "c.mkv") as seq:
        np.testing.assert_array_equal(seq[:], layer.data.compute())
    layer.contrast_limits = (400, 600)
    napari.save_layers(str(tmp_path / "c.mp4"), [layer], plugin="napari-imseq")
    with imseq.open_sequence(tmp_path / "c.mp4") as seq:
        assert seq.dtype == np.uint8 and len(seq) == 5
    for ext in ("tif", "zarr", "seq"):
        napari.save_layers(str(tmp_path / f"c.{ext}"), [layer], plugin="napari-imseq")
        assert len(imseq.open_sequence(tmp_path / f"c.{ext}")) == 5
    # this camera's rate (0.99996 fps) is not a whole number of GIF centiseconds: said so
    with pytest.warns(SequenceWarning, match="GIF frame delays"):
        napari.save_layers(str(tmp_path / "c.gif"), [layer], plugin="napari-imseq")
    assert len(imseq.open_sequence(tmp_path / "c.gif")) == 5


def test_truncated_seq_warns_in_a_notification_and_has_the_readable_frames(
    make_napari_viewer, tmp_path
):
    from napari.utils.notifications import notification_manager

    data = seqmaker.frames(5, (16, 12), np.uint16)
    seqmaker.raw_seq(tmp_path / "cut.seq", data, allocated=5, cut=8000)  # last frame partial
    viewer = make_napari_viewer()
    before = len(notification_manager.records)
    [layer] = viewer.open(str(tmp_path / "cut.seq"), plugin="napari-imseq")
    assert layer.data.shape[0] == 4
    np.testing.assert_array_equal(layer.data.compute(), data[:4])
    shown = [str(n.message) for n in notification_manager.records[before:]]
    assert any("cut.seq" in m for m in shown), shown
    assert layer.metadata["warnings"]


def _cut(path, fraction):
    blob = path.read_bytes()
    out = path.with_name("cut" + path.suffix)
    out.write_bytes(blob[: int(len(blob) * fraction)])
    return out


def _open_damaged(viewer, path):
    from napari.utils.notifications import notification_manager

    before = len(notification_manager.records)
    [layer] = viewer.open(str(path), plugin="napari-imseq")
    shown = [str(n.message) for n in notification_manager.records[before:]]
    return layer, shown


def test_truncated_tiff_warns_and_has_the_readable_frames(make_napari_viewer, tmp_path):
    import tifffile

    data = (np.arange(20 * 64 * 48, dtype=np.uint32).reshape(20, 64, 48) % 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "full.tif", data)
    cut = _cut(tmp_path / "full.tif", 0.6)
    viewer = make_napari_viewer()
    layer, shown = _open_damaged(viewer, cut)
    n = layer.data.shape[0]
    assert 0 < n < 20
    assert layer.metadata["frames_declared"] == 20 and layer.metadata["truncated"]
    np.testing.assert_array_equal(layer.data.compute(), data[:n])  # every frame it has is whole
    assert any("cut.tif" in m and str(n) in m and "20" in m for m in shown), shown


def test_truncated_avi_warns_and_has_the_readable_frames(make_napari_viewer, tmp_path):
    from ..io import videomaker as vm

    frames = vm.pattern(40, 64, 48)
    vm.write(tmp_path / "full.avi", frames, codec="mjpeg", pix_fmt="yuvj420p", fmt_in="gray")
    cut = _cut(tmp_path / "full.avi", 0.5)
    decoded = vm.sequential(cut)  # a plain decode: the last frame may come from a cut packet
    viewer = make_napari_viewer()
    layer, shown = _open_damaged(viewer, cut)
    n = layer.data.shape[0]
    assert len(decoded) - 1 <= n <= len(decoded) < 40  # whole frames only
    assert layer.metadata["frames_declared"] == 40 and layer.metadata["truncated"]
    viewer.dims.set_current_step(0, n - 1)  # the last frame it claims is readable
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), decoded[n - 1])
    np.testing.assert_array_equal(layer.data.compute(), decoded[:n])
    assert any("cut.avi" in m and f"only {n} " in m for m in shown), shown
