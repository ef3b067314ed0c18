"""Streaming writers: bit-exact round trips, lossy floors, metadata, safety, error messages."""

import os

import av
import dask.array as da
import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

import napari_imseq as imseq
from napari_imseq.io._writer import writer_for

from . import videomaker as vm
from .test_seq import independent_parse

RNG = np.random.default_rng(7)


def data(shape, dtype, n=6):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    if info is None:
        return RNG.random((n, *shape)).astype(dtype)
    return RNG.integers(info.min, info.max, size=(n, *shape), dtype=dtype, endpoint=True)


def independent(path):
    """Read back with the format's own library, not with napari_imseq."""
    p = str(path)
    if p.endswith((".mkv", ".avi", ".mov")):
        with av.open(p) as c:
            out = []
            for f in c.decode(video=0):
                name = f.format.name
                if name.startswith("gray"):
                    arr = np.array(f.to_ndarray(), dtype=np.uint16 if "16" in name else np.uint8)
                elif name in ("gbrp16le", "rgb48be", "rgb48le"):
                    arr = f.to_ndarray(format="rgb48le")
                elif name in ("gbrap16le", "rgba64be", "rgba64le"):
                    arr = f.to_ndarray(format="rgba64le")
                elif name in ("bgra", "rgba"):
                    arr = f.to_ndarray(format="rgba")
                else:
                    arr = f.to_ndarray(format="rgb24")
                out.append(np.array(arr))
            return np.stack(out)
    if p.endswith((".tif", ".tiff")):
        return tifffile.imread(p)
    if p.endswith(".zarr"):
        return zarr.open_group(p, mode="r")["frames"][:]
    if p.endswith(".seq"):
        if "rgb" in os.path.basename(p):
            return None  # independent_parse reads mono files
        return independent_parse(p)[0]
    if os.path.isdir(p):
        return np.stack(
            [
                imagecodecs.imread(os.path.join(p, f))
                if f.endswith(".png")
                else tifffile.imread(os.path.join(p, f))
                for f in sorted(os.listdir(p))
                if not f.startswith(".")  # the writer's marker file
            ]
        )
    raise AssertionError(p)


LOSSLESS = [
    ("a.mkv", (24, 30), np.uint8), ("a.mkv", (24, 30), np.uint16),
    ("a.mkv", (24, 30, 3), np.uint8), ("a.mkv", (24, 30, 3), np.uint16),
    ("a.mkv", (24, 30, 4), np.uint8), ("a.mkv", (24, 30, 4), np.uint16),
    ("a.avi", (24, 30), np.uint16), ("a.avi", (24, 30, 3), np.uint8),
    ("a.mov", (24, 30), np.uint16), ("a.mov", (24, 30, 3), np.uint16), ("a.mov", (24, 30, 3), np.uint8),
    ("a.tif", (24, 30), np.uint8), ("a.tif", (24, 30), np.uint16), ("a.tif", (24, 30), np.float32),
    ("a.tif", (24, 30, 3), np.uint8), ("a.tif", (24, 30), np.int16),
    ("a.zarr", (24, 30), np.uint16), ("a.zarr", (24, 30), np.float32), ("a.zarr", (24, 30, 3), np.uint8),
    ("a.seq", (24, 30), np.uint8), ("a.seq", (24, 30), np.uint16), ("rgb.seq", (24, 30, 3), np.uint8),
    ("frames/", (24, 30), np.uint16), ("frames/", (24, 30, 3), np.uint8),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "shape", "dtype"), LOSSLESS, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_lossless_round_trip_is_bit_exact(tmp_path, name, shape, dtype):
    frames = data(shape, dtype)
    path = os.path.join(tmp_path, name)
    writer = imseq.imwrite(path, frames, fps=12.5)
    assert not writer.lossy and writer.count == len(frames)
    assert not os.path.exists(writer.partial)
    with imseq.open_sequence(path) as seq:
        assert seq.dtype == frames.dtype and seq.shape == frames.shape
        np.testing.assert_array_equal(seq[:], frames)
        if not name.endswith("/"):  # int16 TIFF: a shaped series, the rate in its description
            assert seq.fps == pytest.approx(12.5, rel=1e-3)
    other = independent(path)
    if other is not None:
        np.testing.assert_array_equal(other, frames)


def test_rawvideo_avi_and_compressed_tiff(tmp_path):
    frames = data((16, 20, 3), np.uint8)
    imseq.imwrite(tmp_path / "r.avi", frames, codec="rawvideo")
    np.testing.assert_array_equal(imseq.open_sequence(tmp_path / "r.avi")[:], frames)
    gray16 = data((16, 20), np.uint16)
    imseq.imwrite(tmp_path / "z.tif", gray16, compression="zstd")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "z.tif"), gray16)
    np.testing.assert_array_equal(imseq.open_sequence(tmp_path / "z.tif")[:], gray16)


def test_ffv1_is_level3_gop1_with_slice_crcs(tmp_path):
    imseq.imwrite(tmp_path / "f.mkv", data((32, 32), np.uint16, n=5))
    with av.open(str(tmp_path / "f.mkv")) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        cc = c.streams.video[0].codec_context
        assert cc.name == "ffv1" and cc.pix_fmt == "gray16le"
        assert all(p.is_keyframe for p in packets)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse) if mse else np.inf


def smooth(n=10, h=64, w=96):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack(
        [np.stack([(x * 2 + i) % 256, y * 3, (x + y + 4 * i) % 256], -1) for i in range(n)]
    ).astype(np.uint8)


@pytest.mark.parametrize(("name", "floor", "options"), [
    ("a.mp4", 35, {}), ("a.webm", 30, {}), ("m.avi", 28, {"codec": "mjpeg"}), ("a.gif", 25, {}),
])  # fmt: skip
def test_lossy_formats_keep_shape_and_a_psnr_floor(tmp_path, name, floor, options):
    frames = smooth()
    writer = imseq.imwrite(tmp_path / name, frames, fps=10, **options)
    assert writer.lossy
    with imseq.open_sequence(tmp_path / name) as seq:
        got = seq[:][..., :3]
    assert got.shape == frames.shape
    assert psnr(got, frames) > floor


def test_gif_loops_forever_with_fps(tmp_path):
    imseq.imwrite(tmp_path / "a.gif", smooth(4), fps=20)
    assert b"NETSCAPE2.0" in (tmp_path / "a.gif").read_bytes()
    with imseq.open_sequence(tmp_path / "a.gif") as seq:
        np.testing.assert_allclose(np.diff(seq.timestamps), 0.05)


def test_uint16_to_mp4_needs_an_explicit_display_range(tmp_path):
    frames = (smooth()[..., 0].astype(np.uint16) * 16)[..., None].repeat(3, -1)
    with pytest.raises(
        imseq.UnsupportedWriteError, match=r"a\.mp4.*display_range=\(lo, hi\).*FFV1 \(\.mkv\)"
    ):
        imseq.imwrite(tmp_path / "a.mp4", frames)
    assert not os.path.exists(tmp_path / "a.mp4.partial") and not os.path.exists(tmp_path / "a.mp4")
    w = imseq.imwrite(tmp_path / "a.mp4", frames, display_range="auto")
    assert w.lossy
    with imseq.open_sequence(tmp_path / "a.mp4") as seq:
        assert seq.dtype == np.uint8 and seq.shape == frames.shape


@pytest.mark.parametrize(("name", "frame", "pattern"), [
    ("a.mkv", np.zeros((8, 8), np.float32), r"float32 cannot be stored in ffv1; use \.tif or \.zarr, or pass display_range="),
    ("a.mp4", np.zeros((8, 8, 4), np.uint8), r"cannot store 4 channels .*FFV1"),
    ("a.mp4", np.zeros((9, 8, 3), np.uint8), r"even width and height.*9 x 8.*FFV1"),
    ("a.seq", np.zeros((8, 8), np.float32), r"SEQ stores .*use \.tif or \.zarr"),
    ("a.mkv", np.zeros((2, 8, 8, 3), np.uint8), r"cannot be stored in video"),
])  # fmt: skip
def test_unsupported_combinations_fail_before_writing(tmp_path, name, frame, pattern):
    path = tmp_path / name
    with pytest.raises(imseq.UnsupportedWriteError, match=pattern):
        with imseq.open_writer(path) as w:
            w.write(frame)
    assert not os.path.exists(str(path) + ".partial") and not os.path.exists(path)


def test_unknown_extension_and_codec(tmp_path):
    with pytest.raises(imseq.UnsupportedWriteError, match=r"\.xyz.*no writer"):
        imseq.open_writer(tmp_path / "a.xyz")
    with pytest.raises(imseq.UnsupportedWriteError, match="not available"):
        imseq.open_writer(tmp_path / "a.mkv", codec="nosuchcodec")
    assert writer_for("x.mkv", format="zarr").format_name == "zarr"


def test_mismatched_frame_names_the_frame_and_both_shapes(tmp_path):
    path = tmp_path / "a.mkv"
    w = imseq.open_writer(path)
    w.write(np.zeros((8, 10), np.uint8))
    w.write(np.ones((8, 10), np.uint8))
    with pytest.raises(
        imseq.FrameMismatchError, match=r"frame 2 has shape \(8, 11\).*started with shape \(8, 10\)"
    ):
        w.write(np.zeros((8, 11), np.uint8))
    with pytest.raises(imseq.FrameMismatchError, match=r"dtype uint16.*dtype uint8"):
        w.write(np.zeros((8, 10), np.uint16))
    w.close()
    with imseq.open_sequence(path) as seq:
        assert len(seq) == 2 and seq[1].max() == 1


def test_no_overwrite_without_consent(tmp_path):
    path = tmp_path / "a.tif"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"a\.tif exists; pass overwrite=True"):
        imseq.imwrite(path, data((4, 4), np.uint8))
    assert path.read_bytes() == b"precious"
    imseq.imwrite(path, data((4, 4), np.uint8), overwrite=True)
    assert imseq.open_sequence(path).shape == (6, 4, 4)
    (tmp_path / "b.mkv.partial").write_bytes(b"from a crash")
    with pytest.raises(FileExistsError, match="partial file from an interrupted write"):
        imseq.open_writer(tmp_path / "b.mkv")


@pytest.mark.parametrize("name", ["a.mkv", "a.tif", "a.seq", "a.zarr", "a.avi"])
def test_an_exception_keeps_a_readable_partial_file(tmp_path, name):
    frames = data((16, 16), np.uint16, n=10)
    path = tmp_path / name

    def frames_then_fail():
        yield from frames[:7]
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        imseq.imwrite(path, frames_then_fail())
    assert not os.path.exists(path), "an interrupted write must not look complete"
    partial = str(path) + ".partial"
    with imseq.open_sequence(partial) as seq:
        assert len(seq) == 7
        np.testing.assert_array_equal(seq[:], frames[:7])


def test_metadata_travels(tmp_path):
    frames = data((8, 8), np.uint16, n=5)
    times = np.array([0.0, 0.01, 0.035, 0.05, 0.09])
    for name in ("t.mkv", "t.zarr", "t.seq"):
        with imseq.open_writer(tmp_path / name, fps=50) as w:
            for f, t in zip(frames, times, strict=True):
                w.write(f, timestamp=t)
        with imseq.open_sequence(tmp_path / name) as seq:
            got = seq.timestamps - seq.timestamps[0]
            np.testing.assert_allclose(got, times, atol=1.1e-3, err_msg=name)
    imseq.imwrite(tmp_path / "t.tif", frames, fps=40)
    with tifffile.TiffFile(tmp_path / "t.tif") as tif:
        assert tif.imagej_metadata["finterval"] == pytest.approx(0.025)
        assert tif.series[0].axes == "TYX"


def test_dask_arrays_are_written_chunk_by_chunk(tmp_path):
    computed = []

    def make(block, block_info=None):
        computed.append(block_info[None]["chunk-location"][0])
        return np.full(block.shape, block_info[None]["chunk-location"][0], np.uint16)

    lazy = da.zeros((20, 16, 16), dtype=np.uint16, chunks=(1, 16, 16)).map_blocks(
        make, dtype=np.uint16
    )
    imseq.imwrite(tmp_path / "d.mkv", lazy)
    assert sorted(computed) == list(range(20))
    with imseq.open_sequence(tmp_path / "d.mkv") as seq:
        assert [int(seq[i][0, 0]) for i in range(20)] == list(range(20))


def test_sequence_to_writer_keeps_timestamps(tmp_path):
    src = tmp_path / "s.seq"
    frames = data((8, 8), np.uint16, n=4)
    imseq.imwrite(src, frames, fps=100)
    imseq.imwrite(tmp_path / "s.mkv", imseq.open_sequence(src))
    a, b = imseq.open_sequence(src), imseq.open_sequence(tmp_path / "s.mkv")
    np.testing.assert_allclose(
        b.timestamps - b.timestamps[0], a.timestamps - a.timestamps[0], atol=1e-3
    )
    assert vm.sequential(tmp_path / "s.mkv").shape == (4, 8, 8)


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((16, 20, 2), np.uint8), ((2, 6, 8, 3), np.uint16), ((6, 8, 4), np.uint16),
     ((4, 6, 8), np.float64), ((6, 8), np.int16)],
)  # fmt: skip
def test_tiff_keeps_any_frame_shape_as_one_frame(tmp_path, shape, dtype, compression):
    frames = data(shape, dtype, n=3)
    imseq.imwrite(tmp_path / "s.tif", frames, compression=compression)
    with imseq.open_sequence(tmp_path / "s.tif") as seq:
        assert len(seq) == 3 and seq.frame_shape == shape and seq.dtype == dtype
        np.testing.assert_array_equal(seq[:], frames)
        np.testing.assert_array_equal(seq[2], frames[2])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "s.tif"), frames)


def test_a_cut_off_shaped_tiff_keeps_the_frames_written(tmp_path):
    frames = data((16, 20, 2), np.uint8, n=5)

    def three_then_fail():
        yield from frames[:3]
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        imseq.imwrite(tmp_path / "s.tif", three_then_fail(), compression="zstd")
    with imseq.open_sequence(tmp_path / "s.tif.partial") as seq:
        assert seq.shape == (3, 16, 20, 2)
        np.testing.assert_array_equal(seq[:], frames[:3])


@pytest.mark.parametrize(
    "name", ["a.tif", "a.zarr", "a.seq", "frames/", "a.mkv", "a.mov", "a.mp4", "a.gif", "a.avi"]
)
@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -float("inf"), -1, 0, 1e-9, 2e9, "x"])
def test_fps_must_be_finite_and_positive_before_any_byte(tmp_path, name, fps):
    path = os.path.join(tmp_path, name)
    with pytest.raises(imseq.UnsupportedWriteError, match=r"fps=.*finite number from 1e-06 to"):
        imseq.imwrite(path, data((8, 8), np.uint8, n=2), fps=fps)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["a.tif", "a.seq", "a.mkv", "frames/"])
def test_bool_frames_are_refused_with_what_keeps_them(tmp_path, name):
    path = os.path.join(tmp_path, name)
    with pytest.raises(imseq.UnsupportedWriteError, match=r"(bool|\.zarr)"):
        imseq.imwrite(path, np.zeros((2, 8, 8), bool))
    assert os.listdir(tmp_path) == []


def test_bool_frames_round_trip_through_zarr(tmp_path):
    frames = RNG.random((3, 8, 9)) > 0.5
    imseq.imwrite(tmp_path / "b.zarr", frames)
    with imseq.open_sequence(tmp_path / "b.zarr") as seq:
        assert seq.dtype == bool
        np.testing.assert_array_equal(seq[:], frames)


@pytest.mark.parametrize(
    ("frame", "pattern"),
    [(np.zeros(8, np.uint8), r"shape \(8,\) is not an image"),
     (np.zeros((0, 8), np.uint8), r"no empty axis"),
     (np.zeros((4, 4), complex), r"complex128 frames cannot be written")],
)  # fmt: skip
def test_frames_that_are_not_images_are_refused(tmp_path, frame, pattern):
    for name in ("a.tif", "a.zarr"):
        with pytest.raises(imseq.UnsupportedWriteError, match=pattern):
            imseq.imwrite(tmp_path / name, [frame])
    assert os.listdir(tmp_path) == []


def test_timestamps_must_be_finite(tmp_path):
    w = imseq.open_writer(tmp_path / "t.zarr")
    w.write(np.zeros((4, 4), np.uint8), 0.0)
    with pytest.raises(imseq.UnsupportedWriteError, match="frame 1 has timestamp nan"):
        w.write(np.zeros((4, 4), np.uint8), float("nan"))
    w.close()
    with imseq.open_sequence(tmp_path / "t.zarr") as seq:
        assert len(seq) == 1


@pytest.mark.parametrize("fps", [None, 10.0, 29.97, 1 / 3])
@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 3)])
def test_imagej_description_is_rewritten_in_place(tmp_path, shape, fps):
    """A file past 4 GB cannot point to a description appended at its end (tifffile then
    fails with struct.error at close): the final description must fit where the first was."""
    frames = data(shape, np.uint8, n=1200)
    imseq.imwrite(tmp_path / "a.tif", frames, fps=fps)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        page = tif.pages[0]
        assert page.tags["ImageDescription"].valueoffset < page.dataoffsets[0]
        assert tif.imagej_metadata["frames"] == 1200 and tif.series[0].axes[0] == "T"
    with imseq.open_sequence(tmp_path / "a.tif") as seq:
        assert len(seq) == 1200 and (fps is None or seq.fps == pytest.approx(fps))
        np.testing.assert_array_equal(seq[1199], frames[1199])


def test_seq_relative_times_stay_relative_past_1e8_seconds(tmp_path):
    times = [0.0, 5e7, 1e8, 1.5e8]  # a first time before 1973: the whole clock is relative
    with imseq.open_writer(tmp_path / "t.seq", fps=1e-6) as w:
        for i, t in enumerate(times):
            w.write(np.full((4, 4), i, np.uint8), t)
    with imseq.open_sequence(tmp_path / "t.seq") as seq:
        np.testing.assert_allclose(np.diff(seq.timestamps), 5e7)


@pytest.mark.parametrize(("name", "options", "pattern"), [
    ("a.zarr", {"compression": "bogus"}, r"unknown zarr compression 'bogus'.*zstd"),
    ("a.tif", {"compression": "bogus"}, r"unknown TIFF compression 'bogus'.*zlib"),
    ("a.tif", {"imagej": True, "compression": "zlib"}, r"ImageJ TIFF is written uncompressed"),
])  # fmt: skip
def test_bad_options_are_refused_before_writing(tmp_path, name, options, pattern):
    with pytest.raises(imseq.UnsupportedWriteError, match=pattern):
        imseq.imwrite(tmp_path / name, data((8, 8), np.uint8), **options)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bit_depth", [12, 0, -1, 2.5, "x", True])
def test_a_bit_depth_the_frames_cannot_hold_is_refused(tmp_path, bit_depth):
    for name in ("a.seq", "a.zarr"):
        with pytest.raises(imseq.UnsupportedWriteError, match=r"bit_depth=.* does not fit uint8"):
            imseq.imwrite(tmp_path / name, data((8, 8), np.uint8), bit_depth=bit_depth)
    assert os.listdir(tmp_path) == []
    imseq.imwrite(tmp_path / "b.seq", data((8, 8), np.uint16), bit_depth=12)
    with imseq.open_sequence(tmp_path / "b.seq") as seq:
        assert seq.bit_depth == 12
