"""Parked decoders: idle decoders stay where they stopped, so that a read that comes back to a
GOP decodes on from the nearest one, within a byte budget shared by every open video."""

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _cache
from napari_imseq.io.video import _decode

from . import videomaker as vm


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """60 frames, GOPs of 30 (two keyframes), B-frames: frames differ everywhere."""
    path = tmp_path_factory.mktemp("parked") / "a.mp4"
    frames = [np.repeat(f[..., None], 3, axis=2) for f in vm.pattern(60, 48, 64)]
    vm.write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt_in="rgb24", gop=30,
             bframes=2, options={"x264-params": "scenecut=0"})  # fmt: skip
    return path, vm.sequential(path)


@pytest.fixture
def seeks(monkeypatch):
    """How many times a decoder went back to a keyframe (or the start) for a read."""
    count = []
    real = _decode._Decoder._reposition

    def counting(self, target):
        count.append(target)
        return real(self, target)

    monkeypatch.setattr(_decode._Decoder, "_reposition", counting)
    monkeypatch.setattr(_cache.frames, "budget", 0)  # every read decodes
    return count


def test_a_read_back_in_a_gop_decodes_on_from_the_parked_decoder(long_gop, seeks, monkeypatch):
    path, truth = long_gop
    monkeypatch.setattr(_cache, "decoders", _cache.DecoderPark(1 << 30))  # this test's own
    with imseq.open_sequence(path) as seq:
        order = [50, 35, 52, 38, 55, 10, 40, 12, 57]
        got = [seq[i] for i in order]
        # 50 and 35 seek to the keyframe at 30; 52 goes on from 50, 38 from 35, 55 from 52;
        # 10 goes on from the start of a new decoder; 40 from 38, 12 from 10, 57 from 55. One
        # decoder would seek for every read but the first of the file's first GOP
        assert seeks == [50, 35], seeks
        assert len(seq._idle) == 3
        assert _cache.decoders.nbytes == 3 * seq._decoder_bytes
    assert _cache.decoders.nbytes == 0  # close() unparks them
    for i, arr in zip(order, got, strict=True):
        np.testing.assert_array_equal(arr, truth[i], err_msg=f"frame {i}")


def test_without_budget_one_decoder_moves_as_before(long_gop, seeks, monkeypatch):
    path, truth = long_gop
    monkeypatch.setattr(_cache, "decoders", _cache.DecoderPark(0))
    with imseq.open_sequence(path) as seq:
        for i in (50, 35, 52, 38):
            np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i}")
        assert seeks == [50, 35, 38]  # 52 goes on from 35
        assert len(seq._idle) == 1


def test_parked_decoders_of_all_files_share_the_budget_and_each_keeps_its_last(
    long_gop, seeks, monkeypatch
):
    path, truth = long_gop
    park = _cache.DecoderPark(0)  # this test's own: files other tests left open stay out
    monkeypatch.setattr(_cache, "decoders", park)
    with imseq.open_sequence(path) as a, imseq.open_sequence(path) as b:
        size = a._decoder_bytes
        park.budget = 3 * size
        a[20], a[5], a[40]  # noqa: B018 - three parked decoders of a
        assert len(a._idle) == 3
        b[20]  # over budget: a's least recently parked decoder (at 20) is closed
        assert len(a._idle) == 2 and len(b._idle) == 1
        assert {d.position for d in a._idle} == {6, 41}  # (the next frame each decodes)
        assert _cache.decoders.nbytes == 3 * size
        park.budget = 0
        b[5]  # no room: b's one decoder moves; a keeps what it has until it parks again
        assert len(b._idle) == 1
        a[50]  # a's decoder at 40 goes on to 50; parking it evicts a's other one (not a's last)
        assert len(a._idle) == 1
        for seq in (a, b):
            for i in (6, 51, 21):
                np.testing.assert_array_equal(seq[i], truth[i], err_msg=f"frame {i}")


def test_the_park_does_not_keep_a_file_nobody_holds(long_gop, seeks, monkeypatch):
    import gc
    import weakref

    path, _ = long_gop
    park = _cache.DecoderPark(1 << 30)
    monkeypatch.setattr(_cache, "decoders", park)
    seq = imseq.open_sequence(path)
    seq[50], seq[35]  # noqa: B018 - two parked decoders
    assert len(seq._idle) == 2 and park.nbytes == 2 * seq._decoder_bytes
    alive = weakref.ref(seq)
    del seq
    gc.collect()
    assert alive() is None
    assert park.nbytes == 0


def test_the_budget_comes_from_the_environment_and_can_be_set(monkeypatch):
    monkeypatch.setenv("NAPARI_IMSEQ_DECODER_CACHE_MB", "32")
    assert _cache._default_budget("NAPARI_IMSEQ_DECODER_CACHE_MB", 256) == 32 << 20
    monkeypatch.setenv("NAPARI_IMSEQ_DECODER_CACHE_MB", "lots")
    assert _cache._default_budget("NAPARI_IMSEQ_DECODER_CACHE_MB", 256) == 256 << 20
    monkeypatch.setattr(_cache, "decoders", _cache.DecoderPark(1 << 30))
    _cache.set_decoder_budget(-5)
    assert _cache.decoders.budget == 0 and not _cache.decoders.room(1)
