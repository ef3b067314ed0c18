"""Closing while other threads read, and the memory budget shared by open videos."""

import threading

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq.io import _cache

from ..conftest import sample
from . import videomaker as vm


def test_close_while_threads_read_gives_frames_or_a_closed_error():
    path = sample("imageio_realshort.mp4")
    truth = vm.sequential(path)
    seq = imseq.open_sequence(path, cache_bytes=0)
    results, errors, started = [], [], threading.Barrier(9)

    def reader(seed):
        rng = np.random.default_rng(seed)
        started.wait()
        for _ in range(200):
            i = int(rng.integers(len(truth)))
            try:
                results.append((i, seq[i]))
            except imseq.SequenceError as err:
                errors.append(err)
                return
            except Exception as err:  # noqa: BLE001 - any other error fails the test
                errors.append(err)
                return

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    started.wait()
    while len(results) < 10:
        threading.Event().wait(0.01)
    seq.close()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a read hung after close()"
    for i, frame in results:
        np.testing.assert_array_equal(frame, truth[i], err_msg=f"frame {i}")
    assert errors, "reads after close() should fail"
    for err in errors:
        assert isinstance(err, imseq.SequenceError) and "closed" in str(err), repr(err)
        assert "realshort.mp4" in str(err)


def test_closing_inside_iteration_does_not_hang():
    with imseq.open_sequence(sample("imageio_realshort.mp4")) as seq:
        frames = seq.iter_frames()
        next(frames)
        seq.close()
        with pytest.raises(imseq.SequenceError, match="closed"):
            next(frames)


def test_open_videos_share_one_bounded_frame_cache(monkeypatch):
    monkeypatch.setattr(_cache, "frames", _cache.FrameCache(_cache.frame_cache_budget()))
    _cache.set_frame_cache_budget(3 << 20)
    paths = [sample("imageio_realshort.mp4"), sample("imageio_cockatoo.mp4")]
    seqs = [imseq.open_sequence(p) for p in paths]
    try:
        for seq in seqs:
            for i in range(0, min(len(seq), 30)):
                seq[i]
                assert _cache.frames.nbytes <= 3 << 20
        assert _cache.frames.nbytes > 0
    finally:
        for seq in seqs:
            seq.close()
    assert _cache.frames.nbytes == 0  # closing a file drops its entries


def test_frame_cache_evicts_least_recently_used_within_owner_limits():
    cache = _cache.FrameCache(100)
    assert cache.put("a", 1, "x", 40) and cache.put("a", 2, "y", 40)
    assert cache.get("a", 1) == "x"  # 1 is now the most recent
    assert cache.put("b", 1, "z", 40)  # over budget: a/2 goes
    assert cache.get("a", 2) is None and cache.get("a", 1) == "x"
    assert not cache.put("c", 1, "big", 101)
    assert cache.put("b", 2, "w", 30, limit=60)  # b may hold 60: its oldest goes
    assert cache.get("b", 1) is None and cache.get("b", 2) == "w"
    cache.drop("a")
    assert cache.nbytes == 30
