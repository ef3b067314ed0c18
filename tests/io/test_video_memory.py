"""Frames the cache keeps are copies out of their decoder's buffer pool: a pool keeps every
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
           "gbrp10le", "rgb24", "bgr0", "rgba", "yuva420p", "pal8"]  # fmt: skip


def _frame(fmt, w=48, h=20):
    """A frame of ``fmt`` whose every plane holds distinct bytes (rows padded past the pixels
    in most formats)."""
    rng = np.random.default_rng(len(fmt))
    if fmt == "pal8":  # swscale makes no palette: indices and a palette of our own
        frame = av.VideoFrame(w, h, "pal8")
        for p in frame.planes:
            raw = np.frombuffer(p, np.uint8)
            raw[:] = rng.integers(0, 256, raw.size, dtype=np.uint8)
    else:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    frame.pts, frame.colorspace, frame.color_range = 7, Colorspace.ITU709, ColorRange.JPEG
    return frame


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_detached_frame_has_its_own_buffers_and_the_same_pixels(fmt):
    frame = _frame(fmt)
    copy = _pixfmt.detach(frame)
    assert copy is not frame
    for a, b in zip(frame.planes, copy.planes, strict=True):
        assert a.buffer_ptr != b.buffer_ptr
    assert (copy.width, copy.height, copy.format.name) == (frame.width, frame.height, fmt)
    assert (copy.pts, copy.colorspace, copy.color_range) == (7, frame.colorspace, frame.color_range)
    target = "rgba" if fmt in ("rgba", "yuva420p", "pal8") else "rgb48le"
    np.testing.assert_array_equal(
        copy.reformat(format=target).to_ndarray(), frame.reformat(format=target).to_ndarray()
    )
    # and the copy owes nothing to the original's memory
    want = copy.reformat(format=target).to_ndarray()
    for p in frame.planes:
        np.frombuffer(p, np.uint8)[:] = 0
    np.testing.assert_array_equal(copy.reformat(format=target).to_ndarray(), want)


def test_frames_decoded_on_the_way_are_cached_as_copies(tmp_path, monkeypatch):
    """Reading frame 20 of a GOP keeps frames 0-19 in the cache: copies, never the decoder's
    frames; a second read of them converts the copies to the same pixels."""
    path = tmp_path / "a.mp4"
    frames = [np.repeat(f[..., None], 3, axis=2) for f in vm.pattern(24, 32, 48)]
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=24,
             bframes=2)  # fmt: skip
    truth = vm.sequential(path)
    monkeypatch.setattr(_cache, "frames", _cache.FrameCache(64 << 20))  # this test's own
    originals, copies = [], []
    real = _reader.detach

    def recording(frame):
        held = real(frame)
        originals.append(frame)
        copies.append(held)
        return held

    monkeypatch.setattr(_reader, "detach", recording)
    with imseq.open_sequence(path) as seq:
        np.testing.assert_array_equal(seq[20], truth[20])
        held = [item for (owner, _), (item, _) in _cache.frames._items.items()
                if owner is seq._cache_owner and not isinstance(item, np.ndarray)]  # fmt: skip
        assert len(held) >= 15 and len(originals) == len(copies)
        assert all(any(h is c for c in copies) for h in held)
        assert not any(h is o for h in held for o in originals)
        ptrs = {o.planes[0].buffer_ptr for o in originals}
        assert not any(h.planes[0].buffer_ptr in ptrs for h in held)
        for i in range(20):
            np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i}")
