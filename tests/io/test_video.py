"""Frame-exact video and GIF reading: real samples and files written here, against a plain
sequential PyAV decode."""

import os
import random
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _cache, video
from napari_imseq.io.video import VideoFile

from ..conftest import SAMPLES, sample
from . import videomaker as vm

VIDEO_SAMPLES = [
    "dlc_tests_vid.avi",
    "imageio_cockatoo.mp4",
    "imageio_newtonscradle.gif",
    "imageio_realshort.mp4",
    "mediaconch_ffv1_gray_coder-1_level-3.mkv",
    "nwbvw_stub_mjpeg.avi",
    "rustav_ffv1_v3_gbrp16le.mkv",
]


def check_exact(path, *, threads=4, **options):
    """Sequential, random-order and multi-threaded reads all equal the sequential decode."""
    truth = vm.sequential(path)
    with imseq.open_sequence(path, **options) as seq:
        assert isinstance(seq, VideoFile)
        assert len(seq) == len(truth), "frame count differs from a sequential decode"
        assert seq.shape == truth.shape and seq.dtype == truth.dtype
        order = list(range(len(seq)))
        random.Random(3).shuffle(order)
        # every frame in random order on short files; a random 60 on long ones (every frame
        # is still checked by the sequential pass below)
        for i in order[: max(60, len(order) if len(order) <= 100 else 0)]:
            np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i} (random order)")
        np.testing.assert_array_equal(np.stack(list(seq.iter_frames())), truth)
    with imseq.open_sequence(path, cache_bytes=0, **options) as seq:
        rng = random.Random(4)
        picks = [rng.randrange(len(truth)) for _ in range(min(40, 4 * len(truth)))]
        with ThreadPoolExecutor(threads) as pool:
            for i, frame in pool.map(lambda i: (i, seq[i]), picks):
                np.testing.assert_array_equal(frame, truth[i], err_msg=f"frame {i} (threads)")
    return truth


@pytest.mark.parametrize("name", VIDEO_SAMPLES)
def test_real_samples_are_frame_exact(name):
    check_exact(sample(name))


def test_h264_444_from_old_x264_needs_the_first_packet():
    # FFmpeg switches an x264 bug workaround on the encoder version in packet 0's SEI; a
    # decoder that seeks straight to a later IDR decodes different pixels without it
    path = sample("imageio_cockatoo.mp4")
    truth = vm.sequential(path)
    with imseq.open_sequence(path, cache_bytes=0) as seq:
        np.testing.assert_array_equal(seq[94], truth[94])
        assert seq.metadata["source"]["keyframes"] == 3


def test_sample_metadata():
    with imseq.open_sequence(sample("imageio_realshort.mp4")) as seq:
        md = seq.metadata
        assert md["fps"] == pytest.approx(45000 / 1499)
        assert md["codec"] == "h264" and md["pixel_format"] == "yuv420p"
        assert len(md["timestamps"]) == 36 and md["timestamps"][0] == 0
        assert md["frame_count"] == 36 and md["duration"] > 1.1
    with imseq.open_sequence(sample("mediaconch_ffv1_gray_coder-1_level-3.mkv")) as seq:
        assert seq.metadata["source"]["stated_frames"] == 0  # MKV states no count
        assert len(seq) == 25 and seq.dtype == np.uint8 and seq.ndim == 3
    with imseq.open_sequence(sample("rustav_ffv1_v3_gbrp16le.mkv")) as seq:
        assert seq.dtype == np.uint16 and seq.shape == (1, 360, 640, 3) and seq.bit_depth == 16
    with imseq.open_sequence(sample("imageio_newtonscradle.gif")) as seq:
        assert seq.shape[-1] == 3 and seq.rgb  # every frame opaque: RGB


def test_gbrp16le_is_unconverted_rgb():
    path = sample("rustav_ffv1_v3_gbrp16le.mkv")
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        g, b, r = (
            np.frombuffer(p, "<u2").reshape(p.height, -1)[:, : p.width] for p in frame.planes
        )
    with imseq.open_sequence(path) as seq:
        got = seq[0]
    np.testing.assert_array_equal(got[..., 0], r)
    np.testing.assert_array_equal(got[..., 1], g)
    np.testing.assert_array_equal(got[..., 2], b)


# ---- files written here ------------------------------------------------------------------
@pytest.mark.parametrize("gop", [1, None])
def test_ffv1_gray16(tmp_path, gop):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 65535, (48, 64), dtype=np.uint16) for _ in range(30)]
    path = tmp_path / "g16.mkv"
    vm.write(path, frames, codec="ffv1", pix_fmt="gray16le", fmt_in="gray16le", gop=gop)
    truth = check_exact(path)
    np.testing.assert_array_equal(truth, np.stack(frames))  # FFV1 is lossless
    with imseq.open_sequence(path) as seq:
        assert seq.dtype == np.uint16 and seq.bit_depth == 16 and seq.ndim == 3


@pytest.mark.parametrize("pix_fmt, bits", [("gray10le", 10), ("gray12le", 12)])
def test_ffv1_gray_high_bit_depth_is_unscaled(tmp_path, pix_fmt, bits):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 2**bits, (32, 40), dtype=np.uint16) for _ in range(6)]
    path = tmp_path / "g.mkv"
    vm.write(path, frames, codec="ffv1", pix_fmt=pix_fmt, fmt_in=pix_fmt)
    with imseq.open_sequence(path) as seq:
        assert seq.bit_depth == bits and seq.dtype == np.uint16
        np.testing.assert_array_equal(seq[:], np.stack(frames))
        assert seq[:].max() < 2**bits


def test_h264_bframes_long_gop(tmp_path):
    frames = [np.stack([f, f[::-1], f[:, ::-1]], -1) for f in vm.pattern(300, 64, 96)]
    path = tmp_path / "b.mp4"
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=250,
             options={"bf": "3", "preset": "fast"}, bframes=3)  # fmt: skip
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(video=0) if p.size]
        assert any(p.pts != p.dts for p in packets), "the file should have reordered frames"
    check_exact(path)


def test_hevc_and_vp9(tmp_path):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(40, 64, 64)]
    vm.write(tmp_path / "h.mkv", frames, codec="libx265", pix_fmt="yuv420p", fmt_in="rgb24",
             gop=12, options={"x265-params": "log-level=none:bframes=3"})  # fmt: skip
    check_exact(tmp_path / "h.mkv")
    vm.write(
        tmp_path / "v.webm", frames, codec="libvpx-vp9", pix_fmt="yuv420p", fmt_in="rgb24", gop=10
    )
    check_exact(tmp_path / "v.webm")


def test_mpeg4_in_avi_with_interleaved_audio(tmp_path):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(50, 48, 64)]
    path = tmp_path / "a.avi"
    vm.write(
        path, frames, codec="mpeg4", pix_fmt="yuv420p", fmt_in="rgb24", gop=10, audio="pcm_s16le"
    )
    with av.open(str(path)) as c:
        assert len(c.streams.audio) == 1
    check_exact(path)


def test_variable_frame_rate_and_nonzero_start(tmp_path):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(30, 32, 48)]
    tb = Fraction(1, 1000)
    pts = list(np.cumsum([500] + [int(x) for x in np.random.default_rng(2).integers(10, 90, 29)]))
    path = tmp_path / "vfr.mkv"
    vm.write(
        path, frames, codec="ffv1", pix_fmt="bgr0", fmt_in="rgb24", gop=8, pts=pts, time_base=tb
    )
    truth = check_exact(path)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_allclose(seq.timestamps, np.array(pts) / 1000)
        assert seq.timestamps[0] == pytest.approx(0.5)
    np.testing.assert_array_equal(truth, np.stack(frames))


def test_mjpeg_and_gif_written_here(tmp_path):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(12, 32, 48)]
    vm.write(tmp_path / "m.avi", frames, codec="mjpeg", pix_fmt="yuvj420p", fmt_in="rgb24")
    check_exact(tmp_path / "m.avi")
    vm.write(tmp_path / "g.gif", frames, codec="gif", pix_fmt="rgb8", fmt_in="rgb24", fps=10)
    check_exact(tmp_path / "g.gif")


# ---- index cache ---------------------------------------------------------------------------
def test_index_is_cached_and_a_corrupt_cache_is_rebuilt(monkeypatch):
    path = str(sample("imageio_realshort.mp4"))
    scans = []
    original = VideoFile._scan
    monkeypatch.setattr(
        VideoFile, "_scan", staticmethod(lambda c, s: scans.append(1) or original(c, s))
    )
    imseq.open_sequence(path).close()
    with imseq.open_sequence(path) as seq:
        first = seq[5]
    assert scans == [1]
    with open(_cache.entry_path(path, video._INDEX_KIND), "wb") as f:
        f.write(b"\0not an npz")
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[5], first)
    assert scans == [1, 1]


def test_changed_file_gets_a_new_index(tmp_path):
    frames = [np.stack([f] * 3, -1) for f in vm.pattern(10, 16, 16)]
    path = tmp_path / "x.mkv"
    vm.write(path, frames, codec="ffv1", pix_fmt="bgr0", fmt_in="rgb24")
    assert len(imseq.open_sequence(path)) == 10
    vm.write(path, frames[:4], codec="ffv1", pix_fmt="bgr0", fmt_in="rgb24")
    os.utime(path, ns=(1, 1))
    assert len(imseq.open_sequence(path)) == 4


# ---- bad input -----------------------------------------------------------------------------
def test_truncated_video_reads_up_to_the_cut(tmp_path):
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 255, (64, 64), dtype=np.uint8) for _ in range(20)]
    path = tmp_path / "cut.mkv"
    vm.write(path, frames, codec="ffv1", pix_fmt="gray", fmt_in="gray", gop=1)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * 0.6)])
    with pytest.warns(
        imseq.SequenceWarning, match=r"cut\.mkv: the header declares [\d.]+ s but the \d+ readable"
    ):
        seq = imseq.open_sequence(path)
    with seq:
        assert 0 < len(seq) < 20
        for i in range(len(seq)):
            np.testing.assert_array_equal(seq[i], frames[i])


def test_no_video_stream(tmp_path):
    path = tmp_path / "sound.mka"
    with av.open(str(path), "w") as out:
        a = out.add_stream("pcm_s16le", rate=8000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate = 8000
        for p in a.encode(af):
            out.mux(p)
        for p in a.encode():
            out.mux(p)
    with pytest.raises(imseq.SequenceFormatError, match=r"sound\.mka.*no video stream"):
        VideoFile(path)
    with pytest.raises(imseq.SequenceFormatError, match=r"sound\.mka.*no video stream"):
        imseq.open_sequence(path)


def test_text_with_a_video_extension(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video at all\n" * 10)
    with pytest.raises(imseq.SequenceFormatError, match=r"notes\.mp4.*not a video"):
        imseq.open_sequence(path)


def test_samples_folder_is_known():
    assert SAMPLES.name == "samples"


def test_forward_reads_in_a_gop_do_not_seek(tmp_path, monkeypatch):
    from napari_imseq.io import video

    frames = [np.stack([f] * 3, -1) for f in vm.pattern(60, 32, 32)]
    path = tmp_path / "g.mp4"
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=30,
             options={"bf": "2"}, bframes=2)  # fmt: skip
    truth = vm.sequential(path)
    seeks = []
    original = video._Decoder._seek
    monkeypatch.setattr(
        video._Decoder, "_seek", lambda self, k: seeks.append(k) or original(self, k)
    )
    with imseq.open_sequence(path, cache_bytes=0) as seq:
        for i in (3, 7, 8, 20, 29, 45):  # always ahead of the decoder: decode on, no seek
            np.testing.assert_array_equal(seq[i], truth[i])
        assert seeks == []
        # backwards: a second decoder, which starts at frame 0 (primed) and decodes on
        np.testing.assert_array_equal(seq[10], truth[10])
        assert seeks == []
        np.testing.assert_array_equal(seq[50], truth[50])  # the first decoder (at 46) goes on
        assert seeks == []
        np.testing.assert_array_equal(seq[35], truth[35])  # nobody is in [30, 35]: one seek
        assert len(seeks) == 1  # to the keyframe of frame 30


@pytest.mark.parametrize("cache_bytes", [0, 1000, 256 << 20])
def test_returned_frames_never_alias_the_cache(cache_bytes):
    path = sample("imageio_realshort.mp4")
    truth = vm.sequential(path)
    with imseq.open_sequence(path, cache_bytes=cache_bytes) as seq:
        first = seq[3]
        first[:] = 0  # the caller owns what it got
        np.testing.assert_array_equal(seq[3], truth[3])
        np.testing.assert_array_equal(seq[3], truth[3])


@pytest.mark.parametrize("ext", ["mkv", "mov", "nut"])
def test_one_channel_frames_keep_their_axis(tmp_path, ext):
    """(H, W, 1) frames read back as (H, W, 1) in every read path (a container tag of ours);
    2-D frames stay 2-D."""
    frames = np.random.default_rng(3).integers(0, 65536, (4, 10, 12, 1), dtype=np.uint16)
    p = str(tmp_path / f"a.{ext}")
    imseq.imwrite(p, frames, fps=10)
    s = imseq.open_sequence(p)
    assert s.frame_shape == (10, 12, 1) and not s.rgb
    assert np.array_equal(np.stack([s[i] for i in (3, 0, 2, 1)]), frames[[3, 0, 2, 1]])
    assert np.array_equal(np.stack(list(s.iter_frames())), frames)
    assert np.array_equal(np.asarray(imseq.imread(p)), frames)
    s.close()
    flat = str(tmp_path / f"b.{ext}")
    imseq.imwrite(flat, frames[..., 0], fps=10)
    assert imseq.open_sequence(flat).frame_shape == (10, 12)


def test_one_channel_frames_refused_where_the_axis_cannot_be_kept(tmp_path):
    frames = np.zeros((2, 8, 8, 1), np.uint8)
    with pytest.raises(imseq.UnsupportedWriteError, match=r"frames\[\.\.\., 0\]"):
        imseq.imwrite(str(tmp_path / "a.avi"), frames, fps=10)
    assert os.listdir(tmp_path) == []
