"""Frames the cache keeps are moved out of their decoder's buffer pool: a pool keeps every
buffer given back until the decoder closes, so cached and then dropped frames would stay
allocated while the file is open (benchmarks/bench_memory.py measures it)."""

import av
import numpy as np
import pytest
from av.video.reformatter import ColorRange, Colorspace

import napari_imseq as imseq
from napari_imseq.io import _cache
from napari_imseq.io.video import _pixfmt, _reader

from . import videomaker as vm

FORMATS = ["yuv420p", "yuv420p10le", "yuv422p", "yuv444p", "nv12", "gray", "gray16le", "gbrp",
           "gbrp10le", "rgb24", "bgr0", "rgba", "yuva420p"]  # fmt: skip
#: planes export DLPack (PyAV 15+), which detach needs to move a frame nobody else references
needs_dlpack = pytest.mark.skipif(
    not hasattr(av.video.plane.VideoPlane, "__dlpack__"),
    reason="this PyAV's planes have no DLPack export: frames move only when shared",
)
STAYS = {"bgr0"}  # no DLPack export in PyAV (3 of 4 bytes used): moved only when shared


def _frame(fmt, w=48, h=20):
    """A frame of ``fmt`` whose every plane holds distinct bytes (rows padded past the pixels
    in most formats)."""
    rng = np.random.default_rng(len(fmt))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    frame.pts, frame.colorspace, frame.color_range = 7, Colorspace.ITU709, ColorRange.JPEG
    return frame


@needs_dlpack
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_detached_frame_has_its_own_buffers_and_the_same_pixels(fmt):
    frame = _frame(fmt)
    target = "rgba" if fmt in ("rgba", "yuva420p") else "rgb48le"
    want = frame.reformat(format=target).to_ndarray().copy()  # (may be a view on the frame)
    before = [p.buffer_ptr for p in frame.planes]
    assert _pixfmt.detach(frame) is frame
    moved = [p.buffer_ptr != b for p, b in zip(frame.planes, before, strict=True)]
    assert all(moved) if fmt not in STAYS else not any(moved)
    assert (frame.width, frame.height, frame.format.name) == (48, 20, fmt)
    assert (frame.pts, frame.colorspace, frame.color_range) == (7, 1, 2)
    np.testing.assert_array_equal(frame.reformat(format=target).to_ndarray(), want)


@needs_dlpack
def test_a_detached_decoded_frame_converts_as_before(tmp_path):
    """Fields PyAV does not show (the chroma location of this 10-bit H.264 stream) stay:
    a new frame with the pixels copied in converts differently, the detached frame does not."""
    path = tmp_path / "a.mkv"
    frames = [np.repeat(f[..., None], 3, axis=2).astype(np.uint16) * 257
              for f in vm.pattern(6, 32, 48)]  # fmt: skip
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p10le", fmt_in="rgb48le", gop=3)
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            want = frame.reformat(format="rgb48le").to_ndarray().copy()
            before = frame.planes[0].buffer_ptr
            _pixfmt.detach(frame)
            assert frame.planes[0].buffer_ptr != before
            np.testing.assert_array_equal(frame.reformat(format="rgb48le").to_ndarray(), want)


@needs_dlpack
def test_frames_decoded_on_the_way_are_cached_out_of_the_pool(tmp_path, monkeypatch):
    """Reading frame 20 of a GOP keeps frames 0-19 in the cache, each moved out of the
    decoder's buffers; a second read of them converts them to the same pixels."""
    path = tmp_path / "a.mp4"
    frames = [np.repeat(f[..., None], 3, axis=2) for f in vm.pattern(24, 32, 48)]
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=24,
             bframes=2)  # fmt: skip
    truth = vm.sequential(path)
    monkeypatch.setattr(_cache, "frames", _cache.FrameCache(64 << 20))  # this test's own
    originals, copies = [], []
    real = _reader.detach

    def recording(frame):
        ptr = frame.planes[0].buffer_ptr
        held = real(frame)
        originals.append(ptr)
        copies.append(held)
        return held

    monkeypatch.setattr(_reader, "detach", recording)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[20], truth[20])
        held = [item for (owner, _), (item, _) in _cache.frames._items.items()
                if owner is seq._cache_owner and not isinstance(item, np.ndarray)]  # fmt: skip
        assert len(held) >= 15 and len(originals) == len(copies)
        assert all(any(h is c for c in copies) for h in held)
        assert not any(h.planes[0].buffer_ptr in set(originals) for h in held)
        for i in range(20):
            np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i}")
