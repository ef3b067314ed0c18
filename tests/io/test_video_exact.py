"""Frame identity on files whose timestamps cannot be taken at their word: B-frames in AVI
(decode stamps), repeated, zero or missing stamps. Every frame, in any order and from many
threads, equals the plain sequential PyAV decode; no read hangs."""

import random
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest

import napari_imseq as imseq

from ..conftest import sample
from . import videomaker as vm


def check_every_frame(path, *, threads=8):
    """Every frame by random index (shuffled, cold), from ``threads`` threads, by iter_frames
    and through dask equals the sequential decode; returns the sequential decode."""
    truth = vm.sequential(path)
    order = list(range(len(truth)))
    random.Random(7).shuffle(order)
    with imseq.open_sequence(path, cache_bytes=0) as seq:
        assert len(seq) == len(truth)
        for i in order:
            np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i} (shuffled)")
        np.testing.assert_array_equal(np.stack(list(seq.iter_frames())), truth)
        np.testing.assert_array_equal(np.stack(list(seq.iter_frames(5, None, 3))), truth[5::3])
    with imseq.open_sequence(path, cache_bytes=0) as seq:
        with ThreadPoolExecutor(threads) as pool:
            for i, frame in pool.map(lambda i: (i, seq[i]), order):
                np.testing.assert_array_equal(frame, truth[i], err_msg=f"frame {i} (threads)")
    lazy = imseq.imread(path)
    np.testing.assert_array_equal(lazy.compute(scheduler="threads", num_workers=threads), truth)
    return truth


def rgb_frames(n, h=48, w=64):
    return [np.stack([f, f[::-1], f[:, ::-1]], -1) for f in vm.pattern(n, h, w)]


def numbering(path):
    with imseq.open_sequence(path) as seq:
        return seq.metadata["source"]["frame_numbering"]


def test_mpeg4_b_frames_in_avi(tmp_path):
    # MPEG-4 Part 2 B-frames follow their keyframe in decode order but show before it (open
    # GOPs): FFmpeg's parser gives the packets presentation stamps, which identify frames
    path = tmp_path / "b.avi"
    vm.write(path, rgb_frames(60), codec="mpeg4", pix_fmt="yuv420p", fmt_in="rgb24", gop=12,
             bframes=2)  # fmt: skip
    with av.open(str(path)) as c:
        pts = [p.pts for p in c.demux(video=0) if p.size]
        assert pts != sorted(pts), "the file should have B-frames"
    check_every_frame(path)
    assert numbering(path) == "presentation time"


def test_h264_b_frames_in_avi(tmp_path):
    # AVI stamps of H.264 are decode stamps: frames are counted from keyframes whose GOPs
    # prove closed (the decoded frames carry exactly the GOP's own packets)
    path = tmp_path / "h.avi"
    vm.write(path, rgb_frames(60), codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=12,
             bframes=2, options={"bf": "2"})  # fmt: skip
    check_every_frame(path)
    assert numbering(path).startswith("decoder output counted from closed keyframes")


def test_h264_open_gops_in_avi_fall_back_to_decoding_from_the_start(tmp_path):
    path = tmp_path / "open.avi"
    vm.write(path, rgb_frames(72), codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=12,
             bframes=3, options={"bf": "3", "x264-params": "open-gop=1:scenecut=0"})  # fmt: skip
    truth = vm.sequential(path)
    with imseq.open_sequence(path, cache_bytes=0) as seq:
        got = {}
        with pytest.warns(imseq.SequenceWarning, match="numbered in the decoder's output order"):
            for i in (50, 30, 70, 13, 0, 26):
                got[i] = seq[i]
        for i, frame in got.items():
            np.testing.assert_array_equal(frame, truth[i], err_msg=f"frame {i}")
        assert seq.metadata["source"]["frame_numbering"].startswith("decoder output")


def test_deeplabcut_avi_sample():
    check_every_frame(sample("dlc_tests_vid.avi"))


@pytest.mark.parametrize(
    "codec, pix_fmt, stamps",
    [
        ("ffv1", "bgr0", "zero"),
        ("ffv1", "bgr0", "repeat"),
        ("libx264", "yuv420p", "zero"),
        ("libx264", "yuv420p", "repeat"),
    ],
)
def test_repeated_timestamps_never_hang(tmp_path, codec, pix_fmt, stamps):
    # files from other software: every packet stamped 0, or stamps that repeat (a time base
    # too coarse for the frame rate); frames are told apart by packet or by counting
    n = 40
    pts = [0] * n if stamps == "zero" else [i // 3 for i in range(n)]
    path = tmp_path / f"{codec}-{stamps}.mkv"
    vm.write(path, rgb_frames(n, 32, 48), codec=codec, pix_fmt=pix_fmt, fmt_in="rgb24", gop=8,
             pts=pts, time_base=Fraction(1, 1000), bframes=2 if codec == "libx264" else None)  # fmt: skip
    check_every_frame(path, threads=4)
    with imseq.open_sequence(path) as seq:
        md = seq.metadata
        assert md["source"]["numbering_reason"] is not None
        assert len(md["timestamps"]) == n


# ---- GIF channels --------------------------------------------------------------------------


def test_opaque_gifs_are_rgb_even_with_a_transparent_colour_for_unchanged_pixels(tmp_path):
    # our writer (FFmpeg's GIF encoder) marks unchanged pixels transparent in later frames: the
    # decoded frames stay opaque, so the file reads as RGB, decided from the block headers
    path = tmp_path / "w.gif"
    imseq.imwrite(path, np.stack(rgb_frames(12)), fps=20)
    truth = check_every_frame(path, threads=4)
    assert truth.shape[-1] == 3
    with imseq.open_sequence(path) as seq:
        assert seq.shape[-1] == 3 and seq.rgb
    with imseq.open_sequence(path, gif_alpha=True) as seq:
        assert seq.shape[-1] == 4 and np.all(seq[:][..., 3] == 255)


def test_gifs_that_show_transparency_are_rgba(tmp_path):
    frames = [np.full((16, 20), 1 + (i % 3), np.uint8) for i in range(6)]
    frames[0][:4, :4] = 0  # palette index 0 is transparent: a hole in the first frame
    from PIL import Image

    path = tmp_path / "t.gif"
    images = [Image.fromarray(f, mode="P") for f in frames]
    for im in images:
        im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 12))
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0,
                   transparency=0, disposal=2)  # fmt: skip
    truth = vm.sequential(path)
    assert truth.shape[-1] == 4 and truth[0][..., 3].min() == 0
    with imseq.open_sequence(path) as seq:
        assert seq.shape[-1] == 4
        np.testing.assert_array_equal(seq[:], truth)
