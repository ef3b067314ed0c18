"""Headless export: the compositor against a float reference, data round trips, streaming
safety (cancel, progress, errors), fps and timestamps. No napari: layers are duck-typed."""

import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.export import Compositor, ExportError, LayerView, Scene

from ..io import seqmaker


class Ramp:
    """A colormap with napari's ``map`` API: black to ``color``, optional alpha ramp."""

    def __init__(self, color=(1.0, 0.5, 0.25), alpha_ramp=False):
        self.color = np.asarray(color, np.float32)
        self.alpha_ramp = alpha_ramp

    def map(self, n):
        n = np.asarray(n, np.float32)
        rgba = np.empty((len(n), 4), np.float32)
        rgba[:, :3] = n[:, None] * self.color
        rgba[:, 3] = n if self.alpha_ramp else 1.0
        return rgba


class LabelColours:
    def map(self, values):
        values = np.asarray(values)
        rgba = np.zeros((len(values), 4), np.float32)
        rgba[:, 0] = (values * 37 % 256) / 255
        rgba[:, 1] = (values * 91 % 256) / 255
        rgba[:, 2] = (values * 53 % 256) / 255
        rgba[:, 3] = values != 0  # label 0 is transparent
        return rgba


def layer(data, kind="image", **kw):
    """A duck-typed napari layer."""
    ndim = data.ndim - (1 if kw.get("rgb") else 0)
    attrs = dict(
        data=data, name=kw.pop("name", "L"), rgb=False, contrast_limits=(0, 255), gamma=1.0,
        colormap=Ramp((1, 1, 1)), opacity=1.0, blending="translucent", scale=np.ones(ndim),
        translate=np.zeros(ndim), metadata={}, multiscale=False, visible=True, _type_string=kind,
    )  # fmt: skip
    attrs.update(kw)
    return SimpleNamespace(**attrs)


def reference(layers, t):
    """napari's model in float64, straight from docs/export.md."""
    out = None
    for lyr in layers:
        f = np.asarray(lyr.data[t], np.float64)
        if lyr._type_string == "labels":
            rgba = lyr.colormap.map(f.ravel().astype(np.int64)).reshape(*f.shape, 4)
        else:
            lo, hi = lyr.contrast_limits
            n = np.clip((f - lo) / (hi - lo), 0, 1) ** lyr.gamma
            if lyr.rgb:
                rgba = np.concatenate([n, np.ones((*n.shape[:2], 1))], axis=-1)
            else:
                rgba = lyr.colormap.map(n.ravel()).reshape(*n.shape, 4)
        rgb, a = rgba[..., :3], rgba[..., 3:] * lyr.opacity
        if out is None:
            out = np.zeros_like(rgb)
        if lyr.blending == "additive":
            out = np.clip(out + rgb * a, 0, 1)
        elif lyr.blending == "opaque":
            out = rgb
        else:
            out = out * (1 - a) + rgb * a
    return np.rint(out * 255)


def three_layers(T=4, h=30, w=44, seed=0):
    rng = np.random.default_rng(seed)
    gray = layer(
        rng.integers(0, 4096, (T, h, w), dtype=np.uint16), contrast_limits=(300, 3500), gamma=0.6,
        name="gray", metadata={"fps": 40.0},
    )  # fmt: skip
    magma = layer(
        rng.integers(0, 256, (T, h, w), dtype=np.uint8), colormap=Ramp((1, 0.3, 0.6)),
        blending="additive", opacity=0.7, name="magma",
    )  # fmt: skip
    rgb = layer(rng.integers(0, 256, (T, h, w, 3), dtype=np.uint8), rgb=True, opacity=0.5)
    return [gray, magma, rgb]


def composite(layers, t):
    views = [LayerView.from_layer(lyr) for lyr in layers]
    comp = Compositor(Scene(views).grid())
    return comp([np.asarray(lyr.data[t]) for lyr in layers])


def test_composite_matches_the_float_model():
    layers = three_layers()
    for t in range(2):
        got = composite(layers, t).astype(int)
        diff = np.abs(got - reference(layers, t))
        assert diff.max() <= 2 and diff.mean() < 0.6


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.int32, np.uint8])
def test_composite_other_dtypes_and_alpha(dtype):
    rng = np.random.default_rng(1)
    data = (rng.random((2, 16, 20)) * 200 - (50 if dtype != np.uint8 else 0)).astype(dtype)
    base = layer(rng.integers(0, 256, (2, 16, 20), dtype=np.uint8))
    top = layer(data, contrast_limits=(-20, 150), gamma=1.3, colormap=Ramp(alpha_ramp=True),
                opacity=0.8)  # fmt: skip
    diff = np.abs(composite([base, top], 1).astype(int) - reference([base, top], 1))
    assert diff.max() <= 2


def test_labels_are_drawn_with_their_colours_and_transparent_background():
    rng = np.random.default_rng(2)
    base = layer(rng.integers(0, 256, (2, 12, 14), dtype=np.uint8))
    for dtype in (np.uint8, np.int32):
        labels = layer(
            rng.integers(0, 4, (2, 12, 14)).astype(dtype), kind="labels",
            colormap=LabelColours(), opacity=0.7,
        )  # fmt: skip
        got = composite([base, labels], 0).astype(int)
        assert np.abs(got - reference([base, labels], 0)).max() <= 2
        background = labels.data[0] == 0
        assert (got[background] == np.asarray(base.data[0])[background][:, None]).all()


def test_layers_with_offsets_and_scales_share_one_grid():
    big = layer(np.full((1, 8, 10), 255, np.uint8), name="big", colormap=Ramp((1, 0, 0)))
    small = layer(
        np.full((1, 2, 3), 255, np.uint8), name="small", colormap=Ramp((0, 1, 0)),
        blending="additive", scale=np.array([1.0, 2.0, 2.0]), translate=np.array([0, 2.5, 4.5]),
    )  # fmt: skip
    views = [LayerView.from_layer(x) for x in (big, small)]
    comp = Compositor(Scene(views).grid())
    out = comp([big.data[0], small.data[0]])
    assert out.shape == (8, 10, 3)
    green = out[..., 1] == 255
    # 2 x 3 data pixels of 2 x 2 world pixels from (1.5, 3.5) to (5.5, 9.5)
    assert green.sum() == 4 * 6 and green[2:6, 4:10].all()


def test_rendered_export_round_trip_lossless(tmp_path):
    layers = three_layers(T=5)
    summary = imseq.export(layers, tmp_path / "r.mkv", progress=False)
    assert summary["frames"] == 5 and not summary["lossy"] and summary["fps"] == 40.0
    assert summary["fps_source"] == "recording"
    with imseq.open_sequence(tmp_path / "r.mkv") as seq:
        assert seq.dtype == np.uint8 and seq.frame_shape == (30, 44, 3)
        np.testing.assert_array_equal(seq[3], composite(layers, 3))


def test_data_export_is_bit_exact_with_fps_and_timestamps(tmp_path):
    data = seqmaker.frames(12, (24, 32), np.uint16)
    ts = np.cumsum(np.r_[0, np.full(11, 0.01)]) + np.r_[0, 0, 0.002, np.zeros(9)].cumsum()
    src = layer(data, metadata={"fps": 100.0, "timestamps": ts, "bit_depth": 12})
    for ext in (".mkv", ".tif", ".zarr"):
        out = tmp_path / f"d{ext}"
        summary = imseq.export(src, out, mode="data", progress=False)
        assert summary["frames"] == 12
        with imseq.open_sequence(out) as seq:
            np.testing.assert_array_equal(seq[:], data)
            assert seq.fps == pytest.approx(100.0, rel=1e-3)
            if ext != ".tif":  # ImageJ TIFF holds a frame interval, not per-frame times
                np.testing.assert_allclose(seq.timestamps, ts - ts[0], atol=1e-4)


def test_data_export_reads_an_imseq_layer_through_its_sequence(tmp_path, monkeypatch):
    data = seqmaker.frames(10, (16, 20), np.uint16)
    seqmaker.raw_seq(tmp_path / "a.seq", data)
    arr = imseq.imread(tmp_path / "a.seq")
    from napari_imseq.export import backing_sequence

    backing = backing_sequence(arr)
    assert backing is not None
    calls = []
    original = type(backing).iter_frames
    monkeypatch.setattr(
        type(backing), "iter_frames", lambda self, *a: calls.append(a) or original(self, *a)
    )
    summary = imseq.export(layer(arr), tmp_path / "b.tif", mode="data", frames=(2, 9, 3),
                           progress=False)  # fmt: skip
    assert calls == [(2, 9, 3)] and summary["frames"] == 3
    np.testing.assert_array_equal(imseq.imread(tmp_path / "b.tif").compute(), data[2:9:3])


def test_default_fps_is_stated_never_a_silent_one(tmp_path):
    src = layer(np.zeros((3, 8, 8), np.uint8))
    summary = imseq.export(src, tmp_path / "a.mkv", progress=False)
    assert summary["fps"] == 30.0
    assert "default" in summary["fps_source"]
    with imseq.open_sequence(tmp_path / "a.mkv") as seq:
        assert seq.fps == pytest.approx(30.0)
    summary = imseq.export(src, tmp_path / "b.mkv", fps=12.5, progress=False)
    assert summary["fps_source"] == "given"
    with imseq.open_sequence(tmp_path / "b.mkv") as seq:
        assert seq.fps == pytest.approx(12.5)


def test_progress_reaches_the_total(tmp_path):
    seen = []
    imseq.export(three_layers(T=7), tmp_path / "p.mov", progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 8))
    assert seen[-1].fraction == 1.0 and seen[-1].remaining == 0 and seen[-1].rate > 0


class _Gated:
    """Frames from ``hold`` on are readable only once ``gate`` is set (or after 30 s), so a
    cancel asked for at frame 3 is seen before the export can run to the end, however fast
    the machine."""

    def __init__(self, data, gate, hold):
        self._data, self._gate, self._hold = data, gate, hold
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __len__(self):
        return len(self._data)

    def __getitem__(self, key):
        t = key[0] if isinstance(key, tuple) else key
        if isinstance(t, slice):
            t = t.stop - 1 if t.stop is not None else len(self._data) - 1
        if isinstance(t, (int, np.integer)) and t >= self._hold:
            self._gate.wait(30)
        return self._data[key]


def test_cancel_mid_way_leaves_no_complete_looking_file(tmp_path):
    cancel = threading.Event()

    def progress(p):
        if p.done == 3:
            cancel.set()

    data = np.random.default_rng(3).integers(0, 256, (200, 32, 32), dtype=np.uint8)
    out = tmp_path / "c.mkv"
    with pytest.raises(imseq.ExportCancelled, match="cancelled.*partial"):
        imseq.export(layer(_Gated(data, cancel, hold=20)), out, progress=progress, cancel=cancel)
    assert not out.exists()
    with imseq.open_sequence(str(out) + ".partial") as seq:
        assert 3 <= len(seq) < 200  # every frame written so far, readable


def test_errors_are_clear(tmp_path):
    src = layer(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ExportError, match="selects no frame"):
        imseq.export(src, tmp_path / "a.mkv", frames=(5, 9), progress=False)
    with pytest.raises(FileNotFoundError, match="destination folder does not exist"):
        imseq.export(src, tmp_path / "missing" / "a.mkv", progress=False)
    (tmp_path / "there.mkv").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        imseq.export(src, tmp_path / "there.mkv", progress=False)
    with pytest.raises(ExportError, match="mode="):
        imseq.export(src, tmp_path / "a.mkv", mode="raw")
    with pytest.raises(ExportError, match="nothing to export"):
        imseq.export([], tmp_path / "a.mkv")
    with pytest.raises(ExportError, match="napari's renderer"):
        imseq.export([layer(np.zeros((3, 2)), kind="points")], tmp_path / "a.mkv")
    float_layer = layer(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(imseq.UnsupportedWriteError, match="float32"):
        imseq.export(float_layer, tmp_path / "f.mkv", mode="data", progress=False)
    assert not (tmp_path / "f.mkv").exists()


def test_a_writer_that_fails_mid_way_keeps_only_a_partial_file(tmp_path, monkeypatch):
    from napari_imseq.io.video import VideoWriter

    original = VideoWriter._write

    def failing(self, frame, timestamp):
        if self.count == 4:
            raise OSError(28, "No space left on device")
        original(self, frame, timestamp)

    monkeypatch.setattr(VideoWriter, "_write", failing)
    out = tmp_path / "full.mkv"
    with pytest.raises(OSError, match="No space left") as info:
        imseq.export(three_layers(T=10), out, progress=False)
    told = " ".join([str(info.value), *getattr(info.value, "__notes__", [])])
    assert "full.mkv" in told  # the error names the file
    assert not out.exists() and os.path.exists(str(out) + ".partial")


def test_overlays_and_even_sizes_for_h264(tmp_path):
    src = layer(np.zeros((3, 61, 81), np.uint8), metadata={"fps": 10.0})
    plain = imseq.export(src, tmp_path / "p.mkv", progress=False)
    summary = imseq.export(src, tmp_path / "o.mkv", progress=False,
                           overlays={"timestamp": True, "scale_bar": True, "text": "hello"})  # fmt: skip
    assert plain["size"] == summary["size"] == [61, 81]
    with imseq.open_sequence(tmp_path / "o.mkv") as seq:
        assert seq[1].max() == 255  # text and bar burnt in (the layer is black)
    h264 = imseq.export(src, tmp_path / "o.mp4", progress=False)
    assert h264["size"] == [62, 82] and h264["lossy"]
    with pytest.raises(ExportError, match="unknown overlay"):
        imseq.export(src, tmp_path / "x.mkv", overlays={"logo": 1})


class CountingArray:
    """An array that counts the 2-D slices read from it."""

    def __init__(self, data):
        self.data, self.reads = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        self.reads.append(key[0] if isinstance(key, tuple) else key)
        return self.data[key]


def test_every_frame_is_read_once_and_the_announced_shape_is_written(tmp_path):
    rng = np.random.default_rng(5)
    moving = CountingArray(rng.integers(0, 256, (6, 21, 33), dtype=np.uint8))
    still = CountingArray(rng.integers(0, 256, (21, 33, 3), dtype=np.uint8))
    layers = [layer(moving, metadata={"fps": 5.0}), layer(still, rgb=True, blending="additive")]
    summary = imseq.export(layers, tmp_path / "r.mp4", frames=(1, 6, 2), size=(15, 25),
                           progress=False)  # fmt: skip
    assert sorted(moving.reads) == [1, 3, 5]  # no extra read to learn the frame shape
    assert len(still.reads) == 1  # a layer without the time axis is read once
    assert summary["size"] == [16, 26]  # resized, then padded to even for H.264
    with imseq.open_sequence(tmp_path / "r.mp4") as seq:
        assert len(seq) == 3 and seq.frame_shape == (16, 26, 3)
    rgb = layer(rng.integers(0, 2**16, (3, 9, 7, 3), dtype=np.uint16), rgb=True)
    data = imseq.export([rgb], tmp_path / "d.tif", mode="data", progress=False)
    assert data["size"] == [9, 7]
    with imseq.open_sequence(tmp_path / "d.tif") as seq:
        assert seq.frame_shape == (9, 7, 3) and seq.dtype == np.uint16
        np.testing.assert_array_equal(seq[2], rgb.data[2])


def test_h264_exports_default_to_a_fast_preset_unless_one_is_given(tmp_path):
    src = layer(np.random.default_rng(6).integers(0, 256, (2, 16, 24), dtype=np.uint8))
    # x264's subpixel refinement level: faster 4, medium 7
    for name, options, subme in (("d.mp4", {}, b"subme=4 "), ("m.mp4", {"preset": "medium"},
                                 b"subme=7 "), ("c.mov", {"codec": "libx264"}, b"subme=4 ")):  # fmt: skip
        imseq.export(src, tmp_path / name, progress=False, **options)
        with open(tmp_path / name, "rb") as f:
            assert subme in f.read()  # x264 writes its settings into the stream
