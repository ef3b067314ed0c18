"""Sequence.iter_chunks and napari_imseq.map_frames: order, exactness, bounded memory, errors,
cancellation."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import numpy as np
import pytest

import napari_imseq as imseq
from napari_imseq import map_frames

FRAMES = (np.arange(30 * 24 * 32) % 251).astype(np.uint8).reshape(30, 24, 32)


@pytest.fixture(scope="module", params=["tif", "seq", "mkv"])
def path(request, tmp_path_factory):
    p = tmp_path_factory.mktemp("chunks") / f"clip.{request.param}"
    imseq.imwrite(p, FRAMES, fps=25)
    return str(p)


# ---- functions for worker processes (module level: they pickle) ------------------------------
def frame_sum(frame: np.ndarray) -> int:
    return int(frame.sum(dtype=np.int64))


def chunk_sums(chunk: np.ndarray) -> list[int]:
    return [int(f.sum(dtype=np.int64)) for f in chunk]


def fail_on_frame_7(frame: np.ndarray) -> int:
    if int(frame.sum(dtype=np.int64)) == int(FRAMES[7].sum(dtype=np.int64)):
        raise ZeroDivisionError("bad frame")
    return 0


SUMS = [int(f.sum(dtype=np.int64)) for f in FRAMES]


# ---- iter_chunks -----------------------------------------------------------------------------
@pytest.mark.parametrize("n, start, stop", [(1, None, None), (7, None, None), (64, None, None),
                                            (4, 3, 22), (5, -10, None), (3, 20, 10)])  # fmt: skip
def test_iter_chunks_are_the_sequential_frames_in_order(path, n, start, stop):
    want = FRAMES[start:stop]
    with imseq.open_sequence(path) as seq:
        chunks = list(seq.iter_chunks(n, start, stop))
    assert all(len(c) == n for c in chunks[:-1]) and (not chunks or 1 <= len(chunks[-1]) <= n)
    got = np.concatenate(chunks) if chunks else np.empty((0, *FRAMES.shape[1:]), np.uint8)
    np.testing.assert_array_equal(got, want)
    assert len({id(c) for c in chunks}) == len(chunks)  # each chunk its own array


def test_iter_chunks_refuses_bad_sizes_and_closed_sequences(path):
    seq = imseq.open_sequence(path)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="positive integer"):
            next(seq.iter_chunks(bad))
    seq.close()
    with pytest.raises(imseq.SequenceError, match="closed"):
        next(seq.iter_chunks(4))


def test_a_chunk_loop_left_early_frees_the_video_decoder(tmp_path):
    p = tmp_path / "v.mkv"
    imseq.imwrite(p, FRAMES, fps=25)
    with imseq.open_sequence(p) as seq:
        chunks = seq.iter_chunks(4)
        next(chunks)
        assert seq._busy  # the sequential decoder is in use
        chunks.close()
        assert not seq._busy


# ---- map_frames: results -----------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 3])
def test_threads_give_the_sequential_results_in_order(path, workers):
    assert list(map_frames(frame_sum, path, workers=workers)) == SUMS
    got = list(map_frames(chunk_sums, path, workers=workers, chunk=4, start=2, stop=25))
    assert [len(r) for r in got] == [4] * 5 + [3]
    assert [s for r in got for s in r] == SUMS[2:25]


def test_unordered_results_carry_their_index(path):
    got = list(map_frames(frame_sum, path, workers=3, ordered=False, start=5))
    assert sorted(got) == list(enumerate(SUMS))[5:]
    got = list(map_frames(chunk_sums, path, workers=2, ordered=False, chunk=8))
    assert sorted(i for i, _ in got) == [0, 8, 16, 24]


def test_processes_give_the_sequential_results_in_order(tmp_path):
    p = tmp_path / "v.mkv"
    imseq.imwrite(p, FRAMES, fps=25)
    with imseq.open_sequence(p) as seq:
        assert list(map_frames(frame_sum, seq, workers=2, processes=True, batch=4)) == SUMS
        got = list(map_frames(chunk_sums, seq, workers=2, processes=True, chunk=8, start=3))
        assert [s for r in got for s in r] == SUMS[3:]
        assert not seq.closed  # a Sequence passed in stays open


def test_processes_need_a_function_that_pickles(path):
    with pytest.raises(TypeError, match="cannot be pickled"):
        map_frames(lambda f: f, path, processes=True)


def test_results_feed_a_writer(tmp_path, path):
    out = tmp_path / "inverted.tif"
    imseq.imwrite(out, map_frames(np.invert, path, workers=2), fps=25)
    with imseq.open_sequence(out) as seq:
        np.testing.assert_array_equal(seq[:], 255 - FRAMES)


def test_bad_arguments_are_refused(path):
    for kwargs, match in (
        ({"workers": 0}, "workers"),
        ({"chunk": 0}, "chunk"),
        ({"max_in_flight": 0}, "max_in_flight"),
    ):
        with pytest.raises(ValueError, match=match):
            map_frames(frame_sum, path, **kwargs)
    with imseq.open_sequence(path) as seq, pytest.raises(TypeError, match="options"):
        map_frames(frame_sum, seq, pattern="*.png")


# ---- bounded memory ----------------------------------------------------------------------------
def test_tasks_in_flight_stay_bounded_whatever_the_consumer_does(path):
    started = []
    lock = threading.Lock()

    def slow_first(frame):
        with lock:
            started.append(1)
        return frame_sum(frame)

    consumed = 0
    for _ in map_frames(slow_first, path, workers=3, max_in_flight=4):
        consumed += 1
        time.sleep(0.002)  # a slow consumer: the pool must not race ahead
        assert len(started) <= consumed + 4
    assert consumed == len(FRAMES)


def test_peak_memory_is_a_few_frames_not_the_sequence(tmp_path):
    big = np.zeros((120, 256, 512), np.uint8)  # 15.7 MB in all, 131 kB a frame
    big[:, 0, 0] = np.arange(120)
    p = tmp_path / "big.seq"
    imseq.imwrite(p, big, fps=25)
    frame_bytes = big[0].nbytes
    del big
    gc.collect()
    with imseq.open_sequence(p) as seq:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            n = sum(1 for _ in map_frames(np.invert, seq, workers=2, max_in_flight=4))
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    assert n == 120
    # frames in flight (4), their results (4), one being read and the consumer's: ~10 frames;
    # loading everything would be 240 (the frames and their results)
    assert peak < 16 * frame_bytes, peak / frame_bytes


# ---- errors and cancellation -----------------------------------------------------------------
@pytest.mark.parametrize("processes", [False, True])
def test_an_error_in_func_names_the_frame_and_stops_the_rest(tmp_path, processes):
    p = tmp_path / "e.tif"
    imseq.imwrite(p, FRAMES, fps=25)
    it = map_frames(fail_on_frame_7, str(p), workers=2, processes=processes, batch=2)
    got = []
    with pytest.raises(ZeroDivisionError, match="bad frame") as info:
        for r in it:
            got.append(r)
    assert got == [0] * 7  # every frame before the failing one
    assert info.value.frame_index == 7
    assert any("frame 7" in note for note in info.value.__notes__)
    with pytest.raises(StopIteration):
        next(it)


def _map_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("imseq-map")]


@pytest.mark.parametrize("how", ["close", "with", "break"])
def test_closing_or_leaving_cancels_the_rest(path, how):
    calls = []

    def count(frame):
        calls.append(1)
        time.sleep(0.001)
        return 0

    with imseq.open_sequence(path) as seq:
        if how == "close":
            it = map_frames(count, seq, workers=2, max_in_flight=3)
            next(it), next(it)
            it.close()
        elif how == "with":
            with map_frames(count, seq, workers=2, max_in_flight=3) as it:
                next(it)
        else:
            for _ in map_frames(count, seq, workers=2, max_in_flight=3):
                break
            gc.collect()
        assert not _map_threads()  # the pool is shut down, its threads ended
        n = len(calls)
        assert n <= 2 + 3  # what was handed out plus what was in flight
        time.sleep(0.05)
        assert len(calls) == n  # nothing runs after the close
        assert not getattr(seq, "_busy", ()) and not seq.closed  # a video frees its decoder


@pytest.mark.parametrize(
    "lo, hi, step, points, starts",
    [
        (0, 100, 10, None, list(range(0, 100, 10))),
        (0, 100, 10, [0, 40, 80], [0, 40, 80]),  # worker ranges start on keyframes
        (5, 95, 10, [0, 40, 80], [5, 40, 80]),
        (0, 30, 4, list(range(30)), list(range(0, 30, 4))),  # every frame a keyframe
        (0, 7, 10, [0, 3], [0]),
        (0, 1000, 10, [0, 250, 500, 750], None),  # a GOP longer than 4 steps is cut anyway
    ],
)
def test_worker_ranges_cover_the_frames_and_start_on_decode_points(lo, hi, step, points, starts):
    from napari_imseq._map import _ranges

    got = _ranges(lo, hi, step, None if points is None else np.array(points))
    assert got[0][0] == lo and got[-1][1] == hi
    assert all(a < b for a, b in got)
    assert all(got[k][1] == got[k + 1][0] for k in range(len(got) - 1))
    assert max(b - a for a, b in got) <= 4 * step
    if starts is not None:
        assert [a for a, _ in got] == starts
    else:
        assert {250, 500, 750} <= {a for a, _ in got}


def test_a_source_opened_by_map_frames_is_closed_whatever_happens(path, monkeypatch):
    from napari_imseq.io import _registry

    opened = []
    real = _registry.open_sequence
    monkeypatch.setattr(
        _registry, "open_sequence", lambda *a, **k: opened.append(real(*a, **k)) or opened[-1]
    )
    assert list(map_frames(frame_sum, path, workers=2)) == SUMS  # run to the end
    for _ in map_frames(frame_sum, path, workers=2):  # left early
        break
    gc.collect()
    with pytest.raises(AttributeError):  # the pool cannot start: nothing runs
        map_frames(frame_sum, path, processes=True, mp_context="not a context")
    assert len(opened) == 3 and all(seq.closed for seq in opened)
